"""Small files (JSON reports, manifests, tables) on any Beam filesystem: local paths, gs://, ..."""
from __future__ import annotations

import csv
import io
import json
import os

from apache_beam.io.filesystems import FileSystems


def join(*parts: str) -> str:
    return FileSystems.join(*parts)


def write_bytes(path: str, data: bytes) -> None:
    """Writes whole or not at all: a local file goes to a temporary name first and is renamed (a full disk
    leaves no truncated report); an object store publishes an object only when it is closed."""
    if FileSystems.get_scheme(path) is None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        temporary = f"{path}.tmp-{os.getpid()}"
        try:
            with open(temporary, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        return
    with FileSystems.create(path) as handle:
        handle.write(data)


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def read_text(path: str) -> str:
    with FileSystems.open(path) as handle:
        return handle.read().decode("utf-8")


def write_json(path: str, value, sort_keys: bool = False) -> None:
    write_text(path, json.dumps(value, indent=1, sort_keys=sort_keys))


def read_json(path: str, what: str = ""):
    """The JSON file at `path`; a missing file names `what` should have written it."""
    if not FileSystems.exists(path):
        raise FileNotFoundError(f"{path}: missing" + (f"; is the folder {what}?" if what else ""))
    return json.loads(read_text(path))


def csv_line(fields) -> str:
    """One CSV record without its line end, quoted where a field needs it (class names such as AudioSet's
    "Male speech, man speaking" hold commas)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


def parse_csv_line(line: str) -> list[str]:
    return next(csv.reader([line]))


def is_folder(path: str) -> bool:
    """A local directory, or an object-store prefix holding at least one object (object stores have no
    folders: FileSystems.exists is false for a prefix)."""
    if FileSystems.get_scheme(path) is None:
        return os.path.isdir(path)
    return bool(FileSystems.match([join(path, "**")], limits=[1])[0].metadata_list)


def list_files(pattern: str) -> list[str]:
    """Sorted paths matching a glob."""
    return sorted(match.path for match in FileSystems.match([pattern])[0].metadata_list)


def read_json_lines(pattern: str) -> list:
    """The JSON values, one per line, of the files matching a glob (a Beam job's text shards)."""
    return [json.loads(line) for path in list_files(pattern) for line in read_text(path).splitlines() if line]
