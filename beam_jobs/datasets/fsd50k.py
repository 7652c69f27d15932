"""FSD50K adapter: reads the released on-disk layout into a manifest, validating before any work.

Layout (methods.md section 1):
  FSD50K.ground_truth/vocabulary.csv   no header; rows `index,label,mid`
  FSD50K.ground_truth/dev.csv          `fname,labels,mids,split` (split: train | val)
  FSD50K.ground_truth/eval.csv         `fname,labels,mids`
  FSD50K.dev_audio/<fname>.wav, FSD50K.eval_audio/<fname>.wav
  FSD50K.metadata/dev_clips_info_FSD50K.json, eval_clips_info_FSD50K.json (optional, for uploaders)
"""
from __future__ import annotations

import json

from apache_beam.io.filesystems import FileSystems

from beam_jobs.datasets.common import (csv_rows, csv_text, fields_of, header_index, list_folders, split_labels,
                                       unique_clips, unlisted_files)
from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join, read_text, write_text

GROUND_TRUTH = "FSD50K.ground_truth"
METADATA = "FSD50K.metadata"
DEV_AUDIO = "FSD50K.dev_audio"
EVAL_AUDIO = "FSD50K.eval_audio"
DEV_HEADER = ["fname", "labels", "mids", "split"]
EVAL_HEADER = ["fname", "labels", "mids"]
DEV_SPLITS = ("train", "val")


def read_vocabulary(path: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """Returns (labels in index order, label -> mid)."""
    labels, mids = [], {}
    for number, row in csv_rows(path):
        if len(row) != 3:
            raise DatasetError(f"{path}:{number}: expected 3 fields 'index,label,mid', got {len(row)}: {row}")
        index, label, mid = row
        if not index.strip().isdigit():
            raise DatasetError(f"{path}:{number}: index {index!r} is not an integer "
                               "(vocabulary.csv has no header row)")
        if int(index) != len(labels):
            raise DatasetError(f"{path}:{number}: index {index} out of order, expected {len(labels)}")
        if label in mids:
            raise DatasetError(f"{path}:{number}: duplicate label {label!r}")
        labels.append(label)
        mids[label] = mid
    if not labels:
        raise DatasetError(f"{path}: empty vocabulary")
    return tuple(labels), mids


def _read_clip_uploaders(path: str) -> dict[str, str]:
    if not FileSystems.exists(path):
        return {}
    try:
        info = json.loads(read_text(path))
    except ValueError as error:
        raise DatasetError(f"{path}: malformed JSON: {error}") from error
    return {str(fname): str(entry.get("uploader", "")) for fname, entry in info.items()}


def _read_ground_truth(path: str, header: list[str], mids: dict[str, str], audio_dir: str,
                       uploaders: dict[str, str], default_split: str | None) -> list[tuple[ManifestRow, str]]:
    rows = csv_rows(path)
    columns = header_index(path, rows, header, allowed_extra=False)
    result = []
    for number, row in rows[1:]:
        fields = fields_of(path, number, row, columns)
        fname = fields["fname"].strip()
        if not fname:
            raise DatasetError(f"{path}:{number}: empty fname")
        labels = split_labels(fields["labels"])
        if not labels:
            raise DatasetError(f"{path}:{number}: clip {fname} has no labels")
        unknown = [label for label in labels if label not in mids]
        if unknown:
            raise DatasetError(f"{path}:{number}: labels not in the vocabulary: {unknown}")
        row_mids = split_labels(fields["mids"])
        expected_mids = tuple(mids[label] for label in labels)
        if row_mids != expected_mids:
            raise DatasetError(f"{path}:{number}: mids {list(row_mids)} do not match labels "
                               f"{list(labels)} (expected {list(expected_mids)})")
        split = fields.get("split", default_split)
        if default_split is None and split not in DEV_SPLITS:
            raise DatasetError(f"{path}:{number}: split {split!r} is not one of {DEV_SPLITS}")
        result.append((ManifestRow(clip_id=fname, audio_path=join(audio_dir, fname + ".wav"), split=split,
                                   labels=labels, uploader=uploaders.get(fname, "")), f"{path}:{number}"))
    return result


def read_fsd50k(root: str) -> Manifest:
    """Reads and validates an FSD50K-format folder; raises DatasetError naming the file and row."""
    truth = join(root, GROUND_TRUTH)
    vocabulary, mids = read_vocabulary(join(truth, "vocabulary.csv"))
    dev = _read_ground_truth(join(truth, "dev.csv"), DEV_HEADER, mids, join(root, DEV_AUDIO),
                             _read_clip_uploaders(join(root, METADATA, "dev_clips_info_FSD50K.json")), None)
    evaluation = _read_ground_truth(join(truth, "eval.csv"), EVAL_HEADER, mids, join(root, EVAL_AUDIO),
                                    _read_clip_uploaders(join(root, METADATA, "eval_clips_info_FSD50K.json")),
                                    "eval")
    if not dev + evaluation:
        raise DatasetError(f"{truth}: dev.csv and eval.csv list no clips")
    rows = unique_clips(dev + evaluation)
    ignored = unlisted_files(list_folders([join(root, DEV_AUDIO), join(root, EVAL_AUDIO)]), rows)
    return Manifest(rows=rows, vocabulary=vocabulary, source={"format": "fsd50k", "root": root, "ignored": ignored},
                    mids=tuple(mids[label] for label in vocabulary))

# A synthetic dataset in this layout (beam_jobs.synthetic): how its dev clips split, where a clip's audio goes,
# and its metadata files. `plans` are beam_jobs.synthetic's ClipPlan records, `mid` a class's ontology id.

def synthetic_split(position: float, in_val_uploaders: bool) -> tuple[str, dict, bool]:
    return ("val" if in_val_uploaders else "train"), {}, False  # an uploader-disjoint validation set


def synthetic_audio_path(root: str, plan) -> str:
    return join(root, EVAL_AUDIO if plan.split == "eval" else DEV_AUDIO, plan.fname + ".wav")


def write_synthetic(plans, root: str, vocabulary, mid) -> None:
    truth = join(root, GROUND_TRUTH)
    classes = [(i, label, mid(label)) for i, label in enumerate(vocabulary)]
    write_text(join(truth, "vocabulary.csv"), csv_text(None, classes))

    def labels_row(plan):
        return [plan.fname, ",".join(plan.labels), ",".join(mid(label) for label in plan.labels)]

    dev = [plan for plan in plans if plan.split != "eval"]
    evaluation = [plan for plan in plans if plan.split == "eval"]
    write_text(join(truth, "dev.csv"), csv_text(DEV_HEADER, [labels_row(p) + [p.split] for p in dev]))
    write_text(join(truth, "eval.csv"), csv_text(EVAL_HEADER, [labels_row(p) for p in evaluation]))
    for name, subset in (("dev", dev), ("eval", evaluation)):
        info = {plan.fname: {"uploader": plan.uploader, "license": "http://creativecommons.org/publicdomain/zero/1.0/",
                             "title": f"synthetic_{plan.fname}.wav", "tags": list(plan.labels),
                             "description": "Procedurally generated.", "duration": plan.seconds,
                             "sample_rate": plan.sample_rate, "channels": plan.channels}
                for plan in subset}
        write_text(join(root, METADATA, f"{name}_clips_info_FSD50K.json"), json.dumps(info, indent=1))
