"""FSDKaggle2018 / DCASE2018 Task 2 adapter (41 classes, single label, a verified share of the train set).

Released layout (Zenodo 2552860):
  FSDKaggle2018.meta/train_post_competition.csv              fname,label,manually_verified,freesound_id,license
  FSDKaggle2018.meta/test_post_competition_scoring_clips.csv fname,label,usage,freesound_id,license
  FSDKaggle2018.audio_train/<fname>, FSDKaggle2018.audio_test/<fname>   (fname has its extension)
Only the 1,600 scored test clips have labels; the rest of `audio_test/` (padding clips the competition
added so that the test set could not be labelled by hand) is listed as ignored.

Or as the Kaggle competition distributed it: `train.csv` (`fname,label,manually_verified`), `audio_train/`,
`audio_test/` and `sample_submission.csv` at the root; the test labels were withheld, so `audio_test/` is
listed as ignored and the dataset has no test split.

Splits: `train` (flag `manually_verified`) and `test`; the vocabulary is the sorted set of labels.
"""
from __future__ import annotations

from apache_beam.io.filesystems import FileSystems

from beam_jobs.datasets.common import (csv_rows, csv_text, fields_of, flag_of, header_index, list_folders, unique_clips,
                                       unlisted_files)
from beam_jobs.contracts.manifest import DatasetError, Manifest, ManifestRow
from beam_jobs.contracts.storage import join, write_text

META = "FSDKaggle2018.meta"
RELEASED = {  # split -> (metadata file, required columns, audio folder)
    "train": ("train_post_competition.csv", ["fname", "label", "manually_verified"], "FSDKaggle2018.audio_train"),
    "test": ("test_post_competition_scoring_clips.csv", ["fname", "label"], "FSDKaggle2018.audio_test"),
}
COMPETITION = {"train": ("train.csv", ["fname", "label", "manually_verified"], "audio_train")}


def _rows(path: str, required: list[str], audio_dir: str, split: str) -> list[tuple[ManifestRow, str]]:
    table = csv_rows(path)
    columns = header_index(path, table, required, allowed_extra=True)
    result = []
    for number, row in table[1:]:
        fields = fields_of(path, number, row, columns)
        if not fields["fname"] or not fields["label"]:
            raise DatasetError(f"{path}:{number}: empty fname or label")
        flags = ({"manually_verified": flag_of(path, number, "manually_verified", fields["manually_verified"])}
                 if "manually_verified" in required else {})  # the test file has no flag
        result.append((ManifestRow(clip_id=f"{split}/{fields['fname'].rsplit('.', 1)[0]}",
                                   audio_path=join(audio_dir, fields["fname"]), split=split,
                                   labels=(fields["label"],), flags=flags), f"{path}:{number}"))
    return result


def read_fsdkaggle2018(root: str) -> Manifest:
    source = {"format": "fsdkaggle2018", "root": root}
    if FileSystems.exists(join(root, META)):
        meta, subsets = join(root, META), RELEASED
        folders = [join(root, audio_dir) for _, _, audio_dir in RELEASED.values()]
    elif FileSystems.exists(join(root, "train.csv")):
        meta, subsets, folders = root, COMPETITION, [join(root, "audio_train")]
        source.update(layout="competition", ignored=[{"path": join(root, "audio_test"), "reason": "the competition "
                                                      "withheld the test labels: no test split"}])
    else:
        raise DatasetError(f"{root}: neither the released layout ({META}/train_post_competition.csv, ...) nor the "
                           "competition's (train.csv, audio_train/, ...)")
    located = []
    for split, (name, required, audio_dir) in subsets.items():
        located += _rows(join(meta, name), required, join(root, audio_dir), split)
    if not located:
        raise DatasetError(f"{meta}: no clips listed")
    rows = unique_clips(located)
    source["ignored"] = source.get("ignored", []) + unlisted_files(list_folders(folders), rows)
    return Manifest(rows=rows, vocabulary=tuple(sorted({row.labels[0] for row in rows})), source=source)

# A synthetic dataset in this layout (beam_jobs.synthetic): how its dev clips split, where a clip's audio goes,
# and its metadata files. `plans` are beam_jobs.synthetic's ClipPlan records, `mid` a class's ontology id.

def synthetic_split(position: float, in_val_uploaders: bool) -> tuple[str, dict, bool]:
    verified = position < 0.4  # about 40% of the released train set was verified
    return "train", {"manually_verified": verified}, not verified


def synthetic_audio_path(root: str, plan) -> str:
    return join(root, RELEASED[plan.split][2], plan.fname + ".wav")


def write_synthetic(plans, root: str, vocabulary, mid) -> None:
    train = [[p.fname + ".wav", p.labels[0], int(dict(p.flags)["manually_verified"]), str(p.index), "CC0"]
             for p in plans if p.split == "train"]
    test = [[p.fname + ".wav", p.labels[0], "Private" if p.index % 2 else "Public", str(p.index), "CC0"]
            for p in plans if p.split == "test"]
    write_text(join(root, META, RELEASED["train"][0]),
               csv_text(["fname", "label", "manually_verified", "freesound_id", "license"], train))
    write_text(join(root, META, RELEASED["test"][0]),
               csv_text(["fname", "label", "usage", "freesound_id", "license"], test))
