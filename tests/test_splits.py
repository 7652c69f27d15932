import dataclasses

import numpy as np
import pytest

from beam_jobs import splits
from beam_jobs.contracts.manifest import Manifest, ManifestRow

CLASSES = ("a", "b", "c", "d")


def dev_set(clips=400, uploaders=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(clips):
        labels = tuple(sorted(set(rng.choice(CLASSES, size=rng.integers(1, 3), p=[0.55, 0.25, 0.15, 0.05]))))
        rows.append(ManifestRow(clip_id=str(i), audio_path=f"{i}.wav", split="train", labels=labels,
                                uploader=f"u{rng.integers(uploaders)}"))
    rows.append(ManifestRow(clip_id="e1", audio_path="e1.wav", split="eval", labels=("a",), uploader="u0"))
    return Manifest(rows=tuple(rows), vocabulary=CLASSES, source={})


@pytest.mark.parametrize("strategy", splits.STRATEGIES)
def test_strategies_are_deterministic_and_keep_other_splits(strategy):
    manifest = dev_set()
    first, report = splits.resplit(manifest, strategy, 0.2, seed=3)
    again, _ = splits.resplit(manifest, strategy, 0.2, seed=3)
    other, _ = splits.resplit(manifest, strategy, 0.2, seed=4)
    assert [row.split for row in first.rows] == [row.split for row in again.rows]
    assert [row.split for row in first.rows] != [row.split for row in other.rows]
    assert first.rows[-1].split == "eval"
    assert report.train_clips + report.val_clips == 400
    assert 0.1 < report.val_clips / 400 < 0.3


def test_iterative_stratification_balances_rare_classes_better_than_random():
    manifest = dev_set(seed=1)

    def spread(strategy):
        shares = [splits.resplit(manifest, strategy, 0.2, seed)[1].val_share for seed in range(10)]
        return np.mean([abs(share[label] - 0.2) for share in shares for label in CLASSES])

    assert spread("iterative_stratification") < spread("random") / 2


def test_uploader_split_has_no_within_class_contamination_but_allows_between_class():
    manifest = dev_set(seed=2)
    _, uploader = splits.resplit(manifest, "uploader", 0.2, seed=0)
    _, random = splits.resplit(manifest, "random", 0.2, seed=0)
    assert uploader.wc_contamination == 0 and random.wc_contamination > 20
    assert uploader.bc_contamination > 0
    assert all(0.05 < share < 0.5 for share in uploader.val_share.values())


def test_contamination_counts_by_hand():
    rows = [ManifestRow("1", "1.wav", "train", ("a",), "u1"), ManifestRow("2", "2.wav", "train", ("b",), "u1"),
            ManifestRow("3", "3.wav", "train", ("a",), "u2")]
    assignment = {"1": "train", "2": "val", "3": "val"}
    report = splits.contamination_report(rows, assignment, ("a", "b"), "manual")
    # u1: a in train, b in val -> one BC pair; u2 only in val -> nothing
    assert (report.wc_contamination, report.bc_contamination) == (0, 1)
    assignment = {"1": "train", "2": "val", "3": "train"}
    rows[2] = ManifestRow("3", "3.wav", "train", ("b",), "u1")
    assert splits.contamination_report(rows, assignment, ("a", "b"), "manual").wc_contamination == 1
    assert report.val_share == {"a": 0.5, "b": 1.0}


def test_bad_split_config_fails_fast():
    with pytest.raises(ValueError, match="Unknown split strategy"):
        splits.resplit(dev_set(), "alphabetical")
    with pytest.raises(ValueError, match="val_fraction"):
        splits.resplit(dev_set(), "random", 1.5)


def test_subsample_split_keeps_a_fraction_of_train_only(manifest_dir):
    from beam_jobs.contracts.manifest import read_manifest
    from beam_jobs.splits import subsample_split

    manifest = read_manifest(manifest_dir)
    train = [row for row in manifest.rows if row.split == "train"]
    small = subsample_split(manifest, 0.5, seed=1)
    small_train = [row for row in small.rows if row.split == "train"]
    assert len(small_train) == round(0.5 * len(train))
    assert {row.clip_id for row in small.rows if row.split != "train"} == \
        {row.clip_id for row in manifest.rows if row.split != "train"}
    assert subsample_split(manifest, 0.5, seed=1) == small
    assert subsample_split(manifest, 1.0).rows == manifest.rows
    with pytest.raises(ValueError, match="train fraction"):
        subsample_split(manifest, 0.0)


def test_a_split_without_val_or_train_clips_fails_before_training():
    rows = tuple(ManifestRow(clip_id=str(i), audio_path=f"{i}.wav", split="train", labels=("a",), uploader="u")
                 for i in range(3))
    manifest = Manifest(rows=rows, vocabulary=("a",), source={})
    with pytest.raises(ValueError, match="both must be non-empty"):
        splits.resplit(manifest, "uploader", 0.15, seed=0)  # one uploader: one group, all in one split


def test_the_uploader_split_of_a_dataset_without_uploaders_says_so_and_stratifies(capsys):
    rows = tuple(ManifestRow(f"c{i}", f"/a/{i}.wav", "train", (("a", "b")[i % 2],)) for i in range(40))
    manifest = Manifest(rows=rows, vocabulary=("a", "b"), source={"format": "fsdnoisy18k"})
    _, report = splits.resplit(manifest, "uploader", 0.25, seed=0)
    assert report.strategy == "uploader" and report.applied == "iterative_stratification"
    assert "records no uploader (fsdnoisy18k ships none)" in report.note
    assert "records no uploader" in capsys.readouterr().out
    assert report.val_share == {"a": 0.25, "b": 0.25}  # stratified, not random
    with_uploaders = Manifest(rows=tuple(dataclasses.replace(row, uploader=f"u{i % 7}") for i, row in enumerate(rows)),
                              vocabulary=("a", "b"), source={})
    assert splits.resplit(with_uploaders, "uploader", 0.25, seed=0)[1].note == ""


def own_manifest(sources: int, takes: int, classes=("bark", "chime", "hum")) -> Manifest:
    """A folder dataset without split folders: `sources` recording sessions of `takes` clips each."""
    rows = tuple(ManifestRow(f"train/{classes[s % len(classes)]}/s{s}_t{t}", f"/a/s{s}_t{t}.wav", "train",
                             (classes[s % len(classes)],), uploader=f"s{s}") for s in range(sources) for t in range(takes))
    return Manifest(rows=rows, vocabulary=tuple(sorted(classes)), source={"format": "folder", "grouped_by": "prefix"})


def test_made_splits_keep_each_source_on_one_side_stratified_by_class_and_reproducible():
    manifest = own_manifest(sources=90, takes=2)
    made, report = splits.make_splits(manifest, ["train", "val", "eval"], seed=3)
    assert splits.make_splits(manifest, ["train", "val", "eval"], seed=3)[0] == made
    assert splits.make_splits(manifest, ["train", "val", "eval"], seed=4)[0] != made
    sides = {}
    for row in made.rows:
        sides.setdefault(row.uploader, set()).add(row.split)
    assert all(len(side) == 1 for side in sides.values())
    assert report["clips"] == {split: sum(row.split == split for row in made.rows) for split in ("eval", "train", "val")}
    assert abs(report["clips"]["eval"] / 180 - splits.HELD_OUT_FRACTION) < 0.03
    assert abs(report["clips"]["val"] / (180 - report["clips"]["eval"]) - splits.MADE_VAL_FRACTION) < 0.03
    for label, counts in report["per_class"].items():  # every class on every side, near its share
        assert abs(counts["eval"] / 60 - splits.HELD_OUT_FRACTION) < 0.05, label
    assert made.source["made_splits"]["held_out"] == "eval"


def test_a_held_out_test_split_is_made_without_val_and_a_tiny_dataset_still_gets_every_split():
    made, report = splits.make_splits(own_manifest(sources=30, takes=1), ["train", "test"], seed=0)
    assert made.splits == ["test", "train"] and report["val_fraction"] == 0
    tiny, _ = splits.make_splits(own_manifest(sources=5, takes=4), ["train", "val", "eval"], seed=0)
    assert tiny.splits == ["eval", "train", "val"]  # large groups: each side still gets one
    with pytest.raises(ValueError, match="all train"):
        splits.make_splits(made, ["train", "test"], seed=0)


def test_the_folder_reader_groups_clips_by_prefix_or_subfolder(tmp_path):
    from beam_jobs.datasets.folder import read_folder

    for path in ("bark/dog01_take1.wav", "bark/dog01-take2.wav", "bark/dog02 take1.wav", "hum/fridge.1.wav"):
        (tmp_path / "prefix" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "prefix" / path).write_bytes(b"")
    rows = read_folder(str(tmp_path / "prefix"), group_by="prefix").rows
    assert {row.clip_id: row.uploader for row in rows} == {
        "train/bark/dog01_take1": "dog01", "train/bark/dog01-take2": "dog01", "train/bark/dog02 take1": "dog02",
        "train/hum/fridge.1": "fridge"}
    for path in ("bark/dog01/a.wav", "bark/dog02/a.wav", "hum/kitchen/a.wav", "hum/stray.wav"):
        (tmp_path / "sub" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "sub" / path).write_bytes(b"")
    manifest = read_folder(str(tmp_path / "sub"), group_by="subfolder")
    assert {row.clip_id: row.uploader for row in manifest.rows} == {
        "train/bark/dog01/a": "dog01", "train/bark/dog02/a": "dog02", "train/hum/kitchen/a": "kitchen"}
    assert manifest.source["ignored"] == [{"path": "hum/stray.wav",
                                           "reason": "nested shallower than the layout <class>/<source>/<clip>"}]
    assert manifest.source["split_folders"] is False and manifest.source["grouped_by"] == "subfolder"
