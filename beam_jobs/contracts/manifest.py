"""The manifest: one row per clip, the common currency between dataset adapters and feature jobs.

A manifest folder holds `manifest.jsonl` (one `ManifestRow` per line), `vocabulary.json` (class names
in index order), `source.json` (which adapter read which root) and the completion marker
(beam_jobs.contracts.publish); a split step adds its report beside.
"""
from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.publish import check_complete, publishing
from beam_jobs.contracts.storage import join, read_text, write_text

MANIFEST_FILE = "manifest.jsonl"
VOCABULARY_FILE = "vocabulary.json"
SOURCE_FILE = "source.json"


class DatasetError(ValueError):
    """A dataset or config problem found before any work starts; the message names file and row."""


POSITIVE, EXPLICIT_NEGATIVE, IMPLICIT_NEGATIVE = "positive", "explicit_negative", "implicit_negative"


@dataclasses.dataclass(frozen=True)
class ManifestRow:
    """One clip. Per class, its label state is: positive if in `labels`, explicit negative (verified
    absent) if in `negatives`, implicit negative (never verified) otherwise. `flags` holds per-clip
    dataset flags such as FSDnoisy18k's `manually_verified`."""

    clip_id: str
    audio_path: str
    split: str
    labels: tuple[str, ...]
    uploader: str = ""
    negatives: tuple[str, ...] = ()
    flags: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, line: str) -> "ManifestRow":
        values = json.loads(line)
        values["labels"] = tuple(values["labels"])
        values["negatives"] = tuple(values.get("negatives", ()))
        return cls(**values)

    def label_states(self, vocabulary: tuple[str, ...]) -> list[str]:
        positives, negatives = set(self.labels), set(self.negatives)
        return [POSITIVE if label in positives else EXPLICIT_NEGATIVE if label in negatives
                else IMPLICIT_NEGATIVE for label in vocabulary]


@dataclasses.dataclass(frozen=True)
class Manifest:
    rows: tuple[ManifestRow, ...]
    vocabulary: tuple[str, ...]
    source: dict
    mids: tuple[str, ...] = ()  # ontology ids of the vocabulary, where the format gives them

    @property
    def splits(self) -> list[str]:
        return sorted({row.split for row in self.rows})


def write_manifest(manifest_dir: str, manifest: Manifest, extra_files: dict[str, str] | None = None,
                   keep: tuple[str, ...] = ()) -> None:
    """Publishes the manifest folder whole (with `extra_files`, {name: text}, beside it), keeping the
    entries named in `keep` (a dataset that lives inside the folder)."""
    with publishing(manifest_dir, "manifest", keep) as publication:
        files = {MANIFEST_FILE: "".join(row.to_json() + "\n" for row in manifest.rows),
                 VOCABULARY_FILE: json.dumps(list(manifest.vocabulary), indent=1),
                 SOURCE_FILE: json.dumps(manifest.source, indent=2, sort_keys=True), **(extra_files or {})}
        for name, text in files.items():
            write_text(join(publication.staging, name), text)
        publication.summary.update(clips=len(manifest.rows), classes=len(manifest.vocabulary),
                                   splits={split: sum(row.split == split for row in manifest.rows)
                                           for split in manifest.splits})


def read_manifest(manifest_dir: str) -> Manifest:
    """Reads and validates a manifest folder; raises DatasetError naming the file and line."""
    manifest_path = join(manifest_dir, MANIFEST_FILE)
    vocabulary_path = join(manifest_dir, VOCABULARY_FILE)
    for path in (manifest_path, vocabulary_path):
        if not FileSystems.exists(path):
            raise DatasetError(f"{path}: missing (is {manifest_dir} a manifest folder?)")
    check_complete(manifest_dir, "a manifest (beam_jobs.ingest or a split step)")
    vocabulary = tuple(json.loads(read_text(vocabulary_path)))
    known = set(vocabulary)
    rows, seen = [], set()
    for line_number, line in enumerate(read_text(manifest_path).splitlines(), start=1):
        try:
            row = ManifestRow.from_json(line)
        except (ValueError, TypeError, KeyError) as error:
            raise DatasetError(f"{manifest_path}:{line_number}: malformed row: {error}") from error
        unknown = [label for label in row.labels + row.negatives if label not in known]
        if unknown:
            raise DatasetError(f"{manifest_path}:{line_number}: labels not in the vocabulary: {unknown}")
        if set(row.labels) & set(row.negatives):
            raise DatasetError(f"{manifest_path}:{line_number}: labels both positive and explicit negative: "
                               f"{sorted(set(row.labels) & set(row.negatives))}")
        if row.clip_id in seen:
            raise DatasetError(f"{manifest_path}:{line_number}: duplicate clip id {row.clip_id!r}")
        seen.add(row.clip_id)
        rows.append(row)
    if not rows:
        raise DatasetError(f"{manifest_path}: no clips")
    source_path = join(manifest_dir, SOURCE_FILE)
    source = json.loads(read_text(source_path)) if FileSystems.exists(source_path) else {}
    return Manifest(rows=tuple(rows), vocabulary=vocabulary, source=source)


class ReadManifestRows(beam.PTransform):
    """The manifest's rows of the given splits; `spread`: redistributed, so that the steps after run on every
    worker (read from one small file and fused with them, they would all run on the worker that read it)."""

    def __init__(self, manifest_dir: str, splits: list[str], spread: bool = False):
        super().__init__()
        self.manifest_dir, self.splits, self.spread = manifest_dir, list(splits), spread

    def expand(self, pipeline):
        splits = self.splits
        rows = (pipeline
                | "ReadManifest" >> beam.io.ReadFromText(join(self.manifest_dir, MANIFEST_FILE))
                | "ParseRows" >> beam.Map(ManifestRow.from_json)
                | "OfSplits" >> beam.Filter(lambda row: row.split in splits))
        return rows | "Spread" >> beam.Reshuffle() if self.spread else rows
