"""Helpers shared by the dataset adapters: CSV reading with file:row errors, header checks."""
from __future__ import annotations

import csv
import io
import os

from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.manifest import DatasetError
from beam_jobs.contracts.storage import join, read_text


def csv_rows(path: str, comment: str | None = None) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty row; DatasetError naming the file if it cannot be read."""
    if not FileSystems.exists(path):
        raise DatasetError(f"{path}: file not found")
    try:
        text = read_text(path).removeprefix("\ufeff")  # a byte-order mark, as files saved on Windows start
        rows = [(number, [field.strip() for field in row])
                for number, row in enumerate(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True), 1)
                if row]
    except (csv.Error, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: malformed CSV: {error}") from error
    if comment:
        rows = [(number, row) for number, row in rows if not row[0].startswith(comment)]
    return rows


def header_index(path: str, rows: list, required: list[str], allowed_extra: bool) -> dict[str, int]:
    """Column positions from the first row; unknown columns are an error unless `allowed_extra`."""
    if not rows:
        raise DatasetError(f"{path}: empty file, expected header {','.join(required)}")
    number, header = rows[0]
    missing = [name for name in required if name not in header]
    if missing:
        raise DatasetError(f"{path}:{number}: header {','.join(header)} lacks columns {missing}")
    extra = [name for name in header if name not in required]
    if extra and not allowed_extra:
        raise DatasetError(f"{path}:{number}: unknown columns {extra}; expected {','.join(required)}")
    return {name: header.index(name) for name in header}


def fields_of(path: str, number: int, row: list[str], columns: dict[str, int]) -> dict[str, str]:
    if len(row) != len(columns):
        raise DatasetError(f"{path}:{number}: expected {len(columns)} fields, got {len(row)}: {row}")
    return {name: row[index] for name, index in columns.items()}


def flag_of(path: str, number: int, name: str, value: str) -> bool:
    """A 0/1 flag column (FSDnoisy18k's and FSDKaggle2018's `manually_verified`); anything else fails."""
    if value not in ("0", "1"):
        raise DatasetError(f"{path}:{number}: {name} must be 0 or 1, got {value!r}")
    return value == "1"


def split_labels(text: str) -> tuple[str, ...]:
    return tuple(label.strip() for label in text.split(",") if label.strip())


def unique_clips(located: list) -> tuple:
    """The rows of [(row, where it was read: file:line)], each clip once; a duplicate names both places."""
    seen = {}
    for row, location in located:
        if row.clip_id in seen:
            raise DatasetError(f"clip {row.clip_id} is listed twice: at {seen[row.clip_id]} and at {location}")
        seen[row.clip_id] = location
    return tuple(row for row, _ in located)


def list_folders(folders: list[str]) -> dict[str, list[str]]:
    """folder -> the paths of its files (hidden ones too; a glob would skip them), for the folders that
    exist; each folder is listed once, however many uses the adapter makes of it."""
    listing = {}
    for folder in folders:
        if not FileSystems.exists(folder):
            continue
        if FileSystems.get_scheme(folder) is None:
            listing[folder] = [join(folder, name) for name in os.listdir(folder)
                               if os.path.isfile(os.path.join(folder, name))]
        else:
            listing[folder] = [match.path for match in FileSystems.match([join(folder, "*")])[0].metadata_list]
    return listing


def unlisted_files(listing: dict[str, list[str]], rows) -> list[dict]:
    """source.json "ignored" entries for the audio folders' files (`list_folders`) that no manifest row
    reads (one entry per folder: the count and the first examples), so that every file under the root is
    accounted for."""
    listed = {row.audio_path for row in rows}
    entries = []
    for folder, paths in listing.items():
        extra = sorted(path for path in paths if path not in listed)
        if extra:
            entries.append({"path": folder, "reason": f"{len(extra)} files that the metadata does not list",
                            "files": len(extra), "examples": extra[:10]})
    return entries


def csv_text(header, rows) -> str:
    """A CSV file's text as the releases write it (comma-separated, quoted where needed, \\n line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()
