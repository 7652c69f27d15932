"""The raw material of dataset creation, read and checked before any work: clips with Freesound-style
metadata, an AudioSet-schema ontology, a keyword file and (optionally) rater votes.

A raw-material folder:
  metadata.jsonl    one JSON record per clip, as Freesound's API returns them: `id`, `username` (or
                    `uploader`), `name` (or `title`), `tags` (a list), `description`, `license`
  audio/<id>.<ext>  the clips, any format the feature job decodes (WAV, FLAC, OGG, ...)
  ontology.json     AudioSet schema; classes restricted `abstract` or `blacklist` nominate nothing
  keywords.json     {class id or exact ontology name: [keyword, ...]}
  votes.csv         header `clip,class,rater,vote`; vote PP (present and predominant), PNP (present but not
                    predominant), U (unsure) or NP (not present); class an id or exact ontology name

`gather` accounts for every record and file: a record without audio or without uploader is rejected with
its reason, an audio file without a record is listed as ignored; a malformed line fails with file:line.
"""
from __future__ import annotations

import dataclasses
import json
import os

from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts.features import AUDIO_EXTENSIONS
from beam_jobs.contracts.manifest import DatasetError
from beam_jobs.contracts.storage import join, read_text
from beam_jobs.datasets.common import csv_rows, fields_of, header_index, list_folders
from beam_jobs.ontology import Ontology, load_ontology

METADATA_FILE = "metadata.jsonl"
AUDIO_DIR = "audio"
ONTOLOGY_FILE = "ontology.json"
KEYWORDS_FILE = "keywords.json"
VOTES_FILE = "votes.csv"
VOTES_HEADER = ["clip", "class", "rater", "vote"]
VOTES = ("PP", "PNP", "U", "NP")
RATING_VALUES = {"PP": 1.0, "PNP": 0.5, "U": 0.0, "NP": -1.0}  # as FSD50K's pp_pnp_ratings file encodes them
ALIASES = {"uploader": ("uploader", "username"), "title": ("title", "name")}


@dataclasses.dataclass(frozen=True)
class ClipRecord:
    clip_id: str
    uploader: str
    title: str
    tags: tuple[str, ...]
    description: str
    license: str
    audio_path: str

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, line: str) -> "ClipRecord":
        values = json.loads(line)
        return cls(**{**values, "tags": tuple(values["tags"])})


@dataclasses.dataclass
class RawMaterial:
    records: list[ClipRecord]
    rejected: list[dict]  # {clip, reason}
    ignored: list[dict]  # {path, reason}
    ontology: Ontology
    keywords: dict[str, tuple[str, ...]]  # class id -> keywords, labelable classes only
    votes: list[tuple[str, str, str, str]]  # (clip, class id, rater, vote)


def _field(record: dict, name: str):
    for key in ALIASES.get(name, (name,)):
        if key in record:
            return record[key]
    return None


def read_records(root: str) -> tuple[list[ClipRecord], list[dict], list[dict]]:
    """(records with audio, rejected records, ignored files) of a raw-material folder."""
    path = join(root, METADATA_FILE)
    if not FileSystems.exists(path):
        raise DatasetError(f"{path}: file not found (one JSON record per clip)")
    audio_dir = join(root, AUDIO_DIR)
    audio = {}
    for file in list_folders([audio_dir]).get(audio_dir, []):
        name = file.rsplit("/", 1)[-1]
        stem, extension = os.path.splitext(name)
        if extension.lower() in AUDIO_EXTENSIONS and not name.startswith("."):
            audio.setdefault(stem, []).append(file)
    records, rejected, seen = [], [], {}
    for number, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except ValueError as error:
            raise DatasetError(f"{where}: malformed JSON: {error}") from error
        if not isinstance(record, dict) or record.get("id") in (None, ""):
            raise DatasetError(f"{where}: a record is a JSON object with an `id`")
        clip = str(record["id"])
        if clip in seen:
            raise DatasetError(f"{where}: clip {clip} is listed twice (first at line {seen[clip]})")
        seen[clip] = number
        tags = _field(record, "tags") or []
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise DatasetError(f"{where}: `tags` must be a list of strings")
        uploader = str(_field(record, "uploader") or "").strip()
        files = audio.get(clip, [])
        if not files:
            rejected.append({"clip": clip, "reason": f"no audio file {AUDIO_DIR}/{clip}.<ext>"})
        elif len(files) > 1:
            rejected.append({"clip": clip, "reason": f"several audio files: {sorted(files)}"})
        elif not uploader:
            rejected.append({"clip": clip, "reason": "no uploader (the splits keep each uploader on one side)"})
        else:
            records.append(ClipRecord(clip_id=clip, uploader=uploader, title=str(_field(record, "title") or ""),
                                      tags=tuple(tags), description=str(record.get("description") or ""),
                                      license=str(record.get("license") or ""), audio_path=files[0]))
    if not seen:
        raise DatasetError(f"{path}: no records")
    unlisted = sorted(file for stem, files in audio.items() if stem not in seen for file in files)
    ignored = [{"path": audio_dir, "reason": f"{len(unlisted)} audio files that {METADATA_FILE} does not list",
                "files": len(unlisted), "examples": unlisted[:10]}] if unlisted else []
    return records, rejected, ignored


def class_id(ontology: Ontology, key: str, where: str) -> str:
    """An ontology id, given the id or the exact class name."""
    if key in ontology.names:
        return key
    matches = [node for node, name in ontology.names.items() if name == key]
    if len(matches) != 1:
        kind = "an ambiguous" if matches else "no"
        raise DatasetError(f"{where}: {key!r} is {kind} class id or name of the ontology")
    return matches[0]


def read_keywords(path: str, ontology: Ontology) -> tuple[dict[str, tuple[str, ...]], list[dict]]:
    """(class id -> keywords for labelable classes, ignored entries with their reason)."""
    try:
        entries = json.loads(read_text(path))
    except (ValueError, OSError) as error:
        raise DatasetError(f"{path}: {error}") from error
    if not isinstance(entries, dict):
        raise DatasetError(f"{path}: expected {{class: [keyword, ...]}}")
    keywords, ignored = {}, []
    for key, words in entries.items():
        node = class_id(ontology, key, path)
        if not isinstance(words, list) or not words or not all(isinstance(w, str) and w.strip() for w in words):
            raise DatasetError(f"{path}: {key!r} needs a non-empty list of non-empty keywords")
        if not ontology.labelable(node):
            ignored.append({"class": ontology.names[node],
                            "reason": f"restricted {sorted(ontology.restrictions[node])}: nominates nothing"})
            continue
        keywords[node] = tuple(words)
    return keywords, ignored


def read_votes(path: str, ontology: Ontology, clips: set[str]) -> list[tuple[str, str, str, str]]:
    rows = csv_rows(path)
    columns = header_index(path, rows, VOTES_HEADER, allowed_extra=False)
    votes, seen = [], {}
    for number, row in rows[1:]:
        fields = fields_of(path, number, row, columns)
        where = f"{path}:{number}"
        vote = fields["vote"].upper()
        if vote not in VOTES:
            raise DatasetError(f"{where}: vote {fields['vote']!r} is not one of {VOTES}")
        if fields["clip"] not in clips:
            raise DatasetError(f"{where}: clip {fields['clip']!r} is not in {METADATA_FILE}")
        if not fields["rater"]:
            raise DatasetError(f"{where}: empty rater")
        key = (fields["clip"], class_id(ontology, fields["class"], where), fields["rater"])
        if key in seen:
            raise DatasetError(f"{where}: rater {key[2]} voted on clip {key[0]}, class {key[1]} before "
                               f"(line {seen[key]})")
        seen[key] = number
        votes.append((*key[:2], key[2], vote))
    return votes


def gather(root: str) -> RawMaterial:
    """Reads and checks a raw-material folder; votes.csv may be absent (nothing validated yet)."""
    records, rejected, ignored = read_records(root)
    ontology = load_ontology(join(root, ONTOLOGY_FILE))
    keywords, ignored_keywords = read_keywords(join(root, KEYWORDS_FILE), ontology)
    votes_path = join(root, VOTES_FILE)
    all_clips = {record.clip_id for record in records} | {entry["clip"] for entry in rejected}
    votes = read_votes(votes_path, ontology, all_clips) if FileSystems.exists(votes_path) else []
    return RawMaterial(records=records, rejected=rejected, ignored=ignored + ignored_keywords, ontology=ontology,
                       keywords=keywords, votes=votes)
