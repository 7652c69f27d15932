"""Atomic publication of a job's output folder, and the completion marker every reader checks.

A job writes into a staging folder inside its output folder; only when it has finished are the folder's
previous contents removed, the staged files moved into place and `_COMPLETE.json` written, last. The
marker lists every file (with its size), the folders kept from before (e.g. the synthetic dataset that a
manifest points into) and the job's summary (counts, parameters). A reader refuses a folder without the
marker, or holding a file the marker does not list or of another size, so a killed run, a run on top of
an older one or a half-copied folder is never read as a result. Rerunning into the same folder replaces
it whole. While a job writes, it holds the folder's lock (beam_jobs.contracts.folder_lock): a second run into
the folder fails at once.

    with publishing(output_dir, "extract") as publication:
        ... write into publication.staging ...
        publication.summary.update(counts=...)
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import time

from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts import folder_lock
from beam_jobs.contracts.storage import join, read_text, write_text

MARKER_FILE = "_COMPLETE.json"
PUBLISHING_FILE = "_PUBLISHING"  # present while a publication replaces the folder's contents
STAGING_DIR = ".staging"
UNPUBLISHED = (STAGING_DIR, PUBLISHING_FILE, folder_lock.LOCK_FILE)  # a run's working files, never its output


class IncompleteOutputError(RuntimeError):
    """A folder that is not the complete output of one run of a job."""


@dataclasses.dataclass
class Publication:
    output_dir: str
    job: str
    keep: tuple[str, ...] = ()
    summary: dict = dataclasses.field(default_factory=dict)

    @property
    def staging(self) -> str:
        return join(self.output_dir, STAGING_DIR)


def _relative(folder: str, path: str) -> str:
    return path[len(folder.rstrip("/")) + 1:]


def _entries(folder: str) -> dict[str, int]:
    """Every file below `folder` (recursively), relative path -> size."""
    if FileSystems.get_scheme(folder) is None and not FileSystems.exists(folder):
        return {}  # (an object store has no folders: a prefix without objects matches nothing)
    found = {}
    for pattern in (join(folder, "**"), join(folder, ".*"), join(folder, ".*", "**")):
        for match in FileSystems.match([pattern])[0].metadata_list:
            found[_relative(folder, match.path)] = match.size_in_bytes
    return found


def _top(relative: str) -> str:
    return relative.split("/", 1)[0]


def _delete(paths: list[str]) -> None:
    existing = [path for path in paths if FileSystems.exists(path)]
    if existing:
        FileSystems.delete(existing)


def _delete_tree(folder: str) -> None:
    if FileSystems.get_scheme(folder) is None:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        _delete([join(folder, name) for name in _entries(folder)])


def _check_replaceable(publication: Publication) -> None:
    """Only a folder this project published (or began to) is replaced; anything else is left alone."""
    entries = {_top(name) for name in _entries(publication.output_dir)} - set(publication.keep) - {STAGING_DIR,
                                                                                          folder_lock.LOCK_FILE}
    if entries and not ({MARKER_FILE, PUBLISHING_FILE} & entries):
        raise IncompleteOutputError(
            f"{publication.output_dir}: holds files that no run of this project published "
            f"({sorted(entries)[:5]}); give the job an empty or new output folder")


@contextlib.contextmanager
def publishing(output_dir: str, job: str, keep: tuple[str, ...] = ()):
    """Yields a Publication whose `staging` folder the job writes into; publishes it when the block ends
    without an error, and removes it when the block fails. The folder is locked throughout: a live run
    already writing it makes this fail before the block starts (folder_lock.FolderBusyError)."""
    publication = Publication(output_dir.rstrip("/"), job, tuple(keep))
    with folder_lock.holding(publication.output_dir, job) as check_lock:
        _check_replaceable(publication)
        _delete_tree(publication.staging)  # a killed run's leftovers
        FileSystems.mkdirs(publication.staging)
        try:
            yield publication
            check_lock()
        except BaseException:
            _delete_tree(publication.staging)
            raise
        _publish(publication)


def _publish(publication: Publication) -> None:
    folder = publication.output_dir
    staged = _entries(publication.staging)
    write_text(join(folder, PUBLISHING_FILE), publication.job)
    _delete([join(folder, MARKER_FILE)])
    old = [join(folder, name) for name in _entries(folder)
           if _top(name) not in (*publication.keep, *UNPUBLISHED)]
    _delete(old)
    names = sorted(staged)
    for parent in sorted({join(folder, name.rsplit("/", 1)[0]) for name in names if "/" in name}):
        if not FileSystems.exists(parent):  # nested outputs (a SavedModel); object stores need no folders
            FileSystems.mkdirs(parent)
    FileSystems.rename([join(publication.staging, name) for name in names], [join(folder, name) for name in names])
    _delete_tree(publication.staging)
    marker = {"job": publication.job, "files": {name: staged[name] for name in names},
              "kept": list(publication.keep), "summary": publication.summary,
              "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_text(join(folder, MARKER_FILE), json.dumps(marker, indent=1, sort_keys=True, default=str))
    _delete([join(folder, PUBLISHING_FILE)])


def check_complete(folder: str, what: str) -> dict:
    """The marker of a complete published folder; IncompleteOutputError saying what to do otherwise."""
    folder = folder.rstrip("/")
    marker_path = join(folder, MARKER_FILE)
    if not FileSystems.exists(marker_path):
        if not FileSystems.exists(folder):
            raise IncompleteOutputError(f"{folder}: no such folder; expected {what}")
        raise IncompleteOutputError(
            f"{folder}: no {MARKER_FILE}, so it is not the complete output of {what} (the run failed, was "
            f"killed or is still running, or the folder was written by hand or by an older version); rerun it "
            f"into this folder")
    marker = json.loads(read_text(marker_path))
    listed, kept = marker["files"], tuple(marker.get("kept", ()))
    present = {name: size for name, size in _entries(folder).items()
               if name not in (MARKER_FILE, folder_lock.LOCK_FILE) and _top(name) not in kept}
    unlisted = sorted(set(present) - set(listed))
    missing = sorted(set(listed) - set(present))
    resized = sorted(name for name in set(listed) & set(present) if listed[name] != present[name])
    if unlisted or missing or resized:
        problems = [f"{label}: {names[:5]}" for label, names in
                    (("files the run did not write", unlisted), ("missing files", missing),
                     ("files of another size than written", resized)) if names]
        raise IncompleteOutputError(f"{folder} is not as {what} published it ({'; '.join(problems)}); rerun it "
                                    f"into this folder")
    return marker
