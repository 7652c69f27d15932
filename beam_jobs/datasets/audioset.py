"""AudioSet-style adapter: explicit positives, explicit negatives and (by omission) implicit negatives.

Layout (AudioSet's released CSV format, plus a negatives file of the same shape):
  class_labels_indices.csv        header `index,mid,display_name`
  <split>_segments.csv            3 comment lines (#...), then `YTID, start_seconds, end_seconds, "mid1,mid2"`
                                  (the explicit positives; split e.g. balanced_train, unbalanced_train, eval)
  <split>_negatives.csv           optional, same format: classes verified absent (explicit negatives)
  audio/<split>/<YTID>.wav        any format soundfile reads (.wav, .flac, ...)
A class neither positive nor explicitly negative for a clip is an implicit negative (never verified:
possibly a missing positive).
"""
from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from beam_jobs.datasets.common import csv_rows, fields_of, header_index, split_labels, unique_clips
from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join

VOCABULARY_FILE = "class_labels_indices.csv"
SEGMENT_COLUMNS = ["YTID", "start_seconds", "end_seconds", "positive_labels"]
AUDIO_EXTENSION = ".wav"


def read_class_labels(path: str) -> dict[str, str]:
    """mid -> display name, in index order."""
    rows = csv_rows(path)
    columns = header_index(path, rows, ["index", "mid", "display_name"], allowed_extra=False)
    mids = {}
    for number, row in rows[1:]:
        fields = fields_of(path, number, row, columns)
        if fields["index"] != str(len(mids)):
            raise DatasetError(f"{path}:{number}: index {fields['index']} out of order, expected {len(mids)}")
        if fields["mid"] in mids:
            raise DatasetError(f"{path}:{number}: duplicate mid {fields['mid']}")
        mids[fields["mid"]] = fields["display_name"]
    if not mids:
        raise DatasetError(f"{path}: no classes")
    return mids


def read_segments(path: str, mids: dict[str, str]) -> dict[str, tuple[str, ...]]:
    """YTID -> class display names, from a segments file in AudioSet's format."""
    result = {}
    for number, row in csv_rows(path, comment="#"):
        if len(row) != len(SEGMENT_COLUMNS):
            raise DatasetError(f"{path}:{number}: expected {len(SEGMENT_COLUMNS)} fields "
                               f"{','.join(SEGMENT_COLUMNS)}, got {len(row)}: {row}")
        ytid, _, _, labels = row
        unknown = [mid for mid in split_labels(labels) if mid not in mids]
        if unknown:
            raise DatasetError(f"{path}:{number}: labels not in {VOCABULARY_FILE}: {unknown}")
        if ytid in result:
            raise DatasetError(f"{path}:{number}: duplicate YTID {ytid}")
        result[ytid] = tuple(mids[mid] for mid in split_labels(labels))
    return result


def read_audioset(root: str) -> Manifest:
    mids = read_class_labels(join(root, VOCABULARY_FILE))
    segment_files = sorted(match.path for match in FileSystems.match([join(root, "*_segments.csv")])[0].metadata_list)
    if not segment_files:
        raise DatasetError(f"{root}: no <split>_segments.csv files")
    rows = []
    for path in segment_files:
        split = path.rsplit("/", 1)[-1][: -len("_segments.csv")]
        positives = read_segments(path, mids)
        negatives_path = join(root, f"{split}_negatives.csv")
        negatives = read_segments(negatives_path, mids) if FileSystems.exists(negatives_path) else {}
        for ytid in negatives:
            if ytid not in positives:
                raise DatasetError(f"{negatives_path}: clip {ytid} is not in {path}")
            both = set(positives[ytid]) & set(negatives[ytid])
            if both:
                raise DatasetError(f"{negatives_path}: clip {ytid} has {sorted(both)} as positive and negative")
        order = list(mids.values())
        for ytid, labels in positives.items():
            rows.append((ManifestRow(
                clip_id=ytid, audio_path=join(root, "audio", split, ytid + AUDIO_EXTENSION), split=split,
                labels=tuple(sorted(labels, key=order.index)),
                negatives=tuple(sorted(negatives.get(ytid, ()), key=order.index))), path))
    return Manifest(rows=unique_clips(rows), vocabulary=tuple(mids.values()), source={"format": "audioset", "root": root},
                    mids=tuple(mids))
