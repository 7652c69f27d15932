"""FSDnoisy18k adapter (single-label, 20 classes, noisy train set with a clean subset).

Layout (methods.md section 1):
  FSDnoisy18k.meta/train.csv   fname,label,aso_id,manually_verified,noisy_small   (fname has its extension)
  FSDnoisy18k.meta/test.csv    fname,label,aso_id
  FSDnoisy18k.audio_train/<fname>, FSDnoisy18k.audio_test/<fname>
The vocabulary is the sorted set of labels; splits are `train` and `test`; `manually_verified` and
`noisy_small` become flags.
"""
from __future__ import annotations

from beam_jobs.datasets.common import (csv_rows, csv_text, fields_of, flag_of, header_index, list_folders, unique_clips,
                                       unlisted_files)
from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join, write_text

META = "FSDnoisy18k.meta"
AUDIO = "FSDnoisy18k.audio_{split}"
TRAIN_HEADER = ["fname", "label", "aso_id", "manually_verified", "noisy_small"]
TEST_HEADER = ["fname", "label", "aso_id"]


def _read(path: str, header: list[str], audio_dir: str, split: str, label_ids: dict) -> list[tuple[ManifestRow, str]]:
    rows = csv_rows(path)
    columns = header_index(path, rows, header, allowed_extra=False)
    result = []
    for number, row in rows[1:]:
        fields = fields_of(path, number, row, columns)
        if not fields["fname"] or not fields["label"]:
            raise DatasetError(f"{path}:{number}: empty fname or label")
        known_id = label_ids.setdefault(fields["label"], fields["aso_id"])
        if known_id != fields["aso_id"]:
            raise DatasetError(f"{path}:{number}: label {fields['label']} has aso_id {fields['aso_id']}, "
                               f"elsewhere {known_id}")
        flags = {name: flag_of(path, number, name, fields[name]) for name in header[3:]}
        result.append((ManifestRow(clip_id=fields["fname"].rsplit(".", 1)[0],
                                   audio_path=join(audio_dir, fields["fname"]), split=split, labels=(fields["label"],),
                                   flags=flags), f"{path}:{number}"))
    return result


def read_fsdnoisy18k(root: str) -> Manifest:
    label_ids: dict[str, str] = {}
    audio = {split: join(root, AUDIO.format(split=split)) for split in ("train", "test")}
    rows = (_read(join(root, META, "train.csv"), TRAIN_HEADER, audio["train"], "train", label_ids)
            + _read(join(root, META, "test.csv"), TEST_HEADER, audio["test"], "test", label_ids))
    if not rows:
        raise DatasetError(f"{join(root, META)}: train.csv and test.csv list no clips")
    vocabulary, rows = tuple(sorted(label_ids)), unique_clips(rows)
    ignored = unlisted_files(list_folders(list(audio.values())), rows)
    source = {"format": "fsdnoisy18k", "root": root, "ignored": ignored}
    return Manifest(rows=rows, vocabulary=vocabulary, source=source,
                    mids=tuple(label_ids[label] for label in vocabulary))

# A synthetic dataset in this layout (beam_jobs.synthetic): how its dev clips split, where a clip's audio goes,
# and its metadata files. `plans` are beam_jobs.synthetic's ClipPlan records, `mid` a class's ontology id.

def synthetic_split(position: float, in_val_uploaders: bool) -> tuple[str, dict, bool]:
    verified = position < 0.1  # the clean subset; noisy_small: a noisy subset of about the same size
    return "train", {"manually_verified": verified, "noisy_small": not verified and position < 0.2}, not verified


def synthetic_audio_path(root: str, plan) -> str:
    return join(root, AUDIO.format(split=plan.split), plan.fname + ".wav")


def write_synthetic(plans, root: str, vocabulary, mid) -> None:
    train = [[p.fname + ".wav", p.labels[0], mid(p.labels[0]), int(dict(p.flags)["manually_verified"]),
              int(dict(p.flags)["noisy_small"])] for p in plans if p.split == "train"]
    test = [[p.fname + ".wav", p.labels[0], mid(p.labels[0])] for p in plans if p.split == "test"]
    write_text(join(root, META, "train.csv"), csv_text(TRAIN_HEADER, train))
    write_text(join(root, META, "test.csv"), csv_text(TEST_HEADER, test))
