"""A cheap content fingerprint of an external location (a dataset root, a folder of audio to tag): what KFP's
cache must key on, since a task that takes the location as a string is cached on the string alone.

    python -m beam_jobs.fingerprint LOCATION
"""
from __future__ import annotations

import hashlib
import sys

from apache_beam.io.filesystems import FileSystems


def location_fingerprint(location: str) -> str:
    """A digest of every file under `location` (or of the file itself): its path relative to the location,
    its size and its modification time (an object's update time on object stores). No file is read. It
    changes when a file is added, removed, replaced or rewritten; "" for an empty location (a synthetic
    dataset, which the run's parameters determine)."""
    if not location:
        return ""
    root = location.rstrip("/")
    entries = FileSystems.match([f"{root}/**"])[0].metadata_list  # a folder: every file under it
    if not entries and FileSystems.exists(root):  # a file
        entries = FileSystems.match([root])[0].metadata_list
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda entry: entry.path):
        digest.update(f"{entry.path[len(root):]}\t{entry.size_in_bytes}\t{entry.last_updated_in_seconds}\n".encode())
    return f"{len(entries)} files, sha256:{digest.hexdigest()}"


if __name__ == "__main__":
    print(location_fingerprint(sys.argv[1]))
