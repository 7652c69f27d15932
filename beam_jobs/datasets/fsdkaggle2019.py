"""FSDKaggle2019 / DCASE2019 Task 2 adapter (80 classes, multi-label).

Layout (methods.md section 1):
  FSDKaggle2019.meta/train_curated_post_competition.csv (or the competition's train_curated.csv)
  FSDKaggle2019.meta/train_noisy_post_competition.csv   (or train_noisy.csv)
  FSDKaggle2019.meta/test_post_competition.csv
  FSDKaggle2019.meta/vocabulary.csv   optional, no header: index,label[,mid]
  FSDKaggle2019.audio_train_curated/, FSDKaggle2019.audio_train_noisy/, FSDKaggle2019.audio_test/
Every file has `fname` (with .wav) and `labels` (comma-separated, quoted); the post-competition files'
extra columns (freesound_id, license, usage, ...) are tolerated. Splits: train_curated, train_noisy, test.

Or as the Kaggle competition distributed it: `train_curated.csv`, `train_curated/`, `train_noisy.csv`,
`train_noisy/`, `test/` and `sample_submission.csv` at the root. The vocabulary is then
sample_submission.csv's class columns; the test labels were withheld, so `test/` is listed as ignored and
the dataset has no test split.
"""
from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from beam_jobs.datasets.common import (csv_rows, csv_text, fields_of, header_index, list_folders, split_labels,
                                       unique_clips, unlisted_files)
from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join, write_text

META = "FSDKaggle2019.meta"
SUBSETS = {  # split -> (candidate metadata files, audio folder)
    "train_curated": (("train_curated_post_competition.csv", "train_curated.csv"), "FSDKaggle2019.audio_train_curated"),
    "train_noisy": (("train_noisy_post_competition.csv", "train_noisy.csv"), "FSDKaggle2019.audio_train_noisy"),
    "test": (("test_post_competition.csv", "test.csv"), "FSDKaggle2019.audio_test"),
}
COMPETITION_SUBSETS = {"train_curated": (("train_curated.csv",), "train_curated"),
                       "train_noisy": (("train_noisy.csv",), "train_noisy")}
SUBMISSION = "sample_submission.csv"


def _vocabulary(path: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
    """(labels, mids) from vocabulary.csv; (None, ()) when the file is absent."""
    if not FileSystems.exists(path):
        return None, ()
    labels, mids = [], []
    for number, row in csv_rows(path):
        if len(row) not in (2, 3) or not row[0].isdigit() or int(row[0]) != len(labels):
            raise DatasetError(f"{path}:{number}: expected 'index,label[,mid]' with index {len(labels)}, got {row}")
        labels.append(row[1])
        mids.append(row[2] if len(row) == 3 else "")
    return tuple(labels), tuple(mids) if all(mids) else ()


def _submission_vocabulary(path: str) -> tuple[str, ...]:
    """The class columns of the competition's sample_submission.csv (after `fname`)."""
    rows = csv_rows(path)
    if not rows or rows[0][1][0] != "fname" or len(rows[0][1]) < 2:
        raise DatasetError(f"{path}: expected a header `fname,<class>,...`")
    return tuple(rows[0][1][1:])


def read_fsdkaggle2019(root: str) -> Manifest:
    source = {"format": "fsdkaggle2019", "root": root}
    if FileSystems.exists(join(root, META)):
        meta, subsets = join(root, META), SUBSETS
        vocabulary, mids = _vocabulary(join(meta, "vocabulary.csv"))
    elif FileSystems.exists(join(root, "train_curated.csv")):
        meta, subsets, mids = root, COMPETITION_SUBSETS, ()
        submission = join(root, SUBMISSION)
        vocabulary = _submission_vocabulary(submission) if FileSystems.exists(submission) else None
        source.update(layout="competition", ignored=[{"path": join(root, "test"), "reason": "the competition withheld "
                                                      "the test labels: no test split"}])
    else:
        raise DatasetError(f"{root}: neither the released layout ({META}/ with train_curated_post_competition.csv, "
                           f"...) nor the competition's (train_curated.csv, train_curated/, ...)")
    rows, seen_labels = [], set()
    for split, (candidates, audio_dir) in subsets.items():
        path = next((join(meta, name) for name in candidates if FileSystems.exists(join(meta, name))), None)
        if path is None:
            if split == "test":
                continue  # the test set's labels may be withheld
            raise DatasetError(f"{meta}: none of {list(candidates)} found")
        table = csv_rows(path)
        columns = header_index(path, table, ["fname", "labels"], allowed_extra=True)
        for number, row in table[1:]:
            fields = fields_of(path, number, row, columns)
            labels = split_labels(fields["labels"])
            if not fields["fname"] or not labels:
                raise DatasetError(f"{path}:{number}: empty fname or labels")
            if vocabulary is not None:
                unknown = [label for label in labels if label not in vocabulary]
                if unknown:
                    raise DatasetError(f"{path}:{number}: labels not in the vocabulary: {unknown}")
            seen_labels.update(labels)
            rows.append((ManifestRow(clip_id=f"{split}/{fields['fname'].rsplit('.', 1)[0]}",
                                     audio_path=join(root, audio_dir, fields["fname"]), split=split, labels=labels),
                         f"{path}:{number}"))
    if not rows:
        raise DatasetError(f"{meta}: no clips listed")
    rows = unique_clips(rows)
    folders = [join(root, audio_dir) for _, audio_dir in subsets.values()]
    source["ignored"] = source.get("ignored", []) + unlisted_files(list_folders(folders), rows)
    return Manifest(rows=rows, vocabulary=vocabulary or tuple(sorted(seen_labels)), source=source, mids=mids)

# A synthetic dataset in this layout (beam_jobs.synthetic): how its dev clips split, where a clip's audio goes,
# and its metadata files. `plans` are beam_jobs.synthetic's ClipPlan records, `mid` a class's ontology id.

def synthetic_split(position: float, in_val_uploaders: bool) -> tuple[str, dict, bool]:
    return ("train_curated", {}, False) if position < 0.3 else ("train_noisy", {}, True)


def synthetic_audio_path(root: str, plan) -> str:
    return join(root, SUBSETS[plan.split][1], plan.fname + ".wav")


def write_synthetic(plans, root: str, vocabulary, mid) -> None:
    write_text(join(root, META, "vocabulary.csv"), csv_text(None, list(enumerate(vocabulary))))
    for split, (files, _) in SUBSETS.items():
        rows = [[p.fname + ".wav", ",".join(p.labels), str(p.index), "CC0"] for p in plans if p.split == split]
        write_text(join(root, META, files[0]), csv_text(["fname", "labels", "freesound_id", "license"], rows))
