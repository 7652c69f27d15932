"""Re-split feature sets: a re-split or subset of one extraction is what extracting it afresh writes."""
import dataclasses
import glob
import os

import pytest
import tensorflow as tf

from beam_jobs.contracts import feature_set
from beam_jobs.contracts.manifest import Manifest, read_manifest, write_manifest
from beam_jobs.contracts.publish import publishing
from beam_jobs.extract import extract
from beam_jobs.splits import resplit, select_train_pool, subsample_split
from beam_jobs.resplit import resplit_features


def folder_contents(features_dir, splits):
    """Everything a feature set holds that a reader sees, order-free where Beam's sharding decides order."""
    def text(name):
        with open(os.path.join(features_dir, name)) as handle:
            return handle.read()

    def lines(pattern):
        return sorted(line for path in glob.glob(os.path.join(features_dir, pattern)) for line in open(path))

    records = {split: sorted(record.numpy() for record in tf.data.TFRecordDataset(
        sorted(glob.glob(feature_set.shard_pattern(features_dir, split))))) for split in splits}
    return {"records": records, "stats": text(feature_set.STATS_FILE), "counts": text(feature_set.COUNTS_FILE),
            "params": text(feature_set.PARAMS_FILE), "vocabulary": text("vocabulary.json"),
            "dead_letters": lines(feature_set.DEAD_LETTERS_FILE), "clip_sums": lines("clip_sums-*.jsonl")}


@pytest.fixture(scope="module")
def source(manifest_dir, tmp_path_factory):
    """The shared synthetic manifest with two unreadable clips, extracted once."""
    work = tmp_path_factory.mktemp("view_source")
    manifest = read_manifest(manifest_dir)
    rows = list(manifest.rows)
    for index in (0, 5):
        broken = work / f"broken{index}.wav"
        broken.write_bytes(b"RIFF....WAVEnot really")
        rows[index] = dataclasses.replace(rows[index], audio_path=str(broken))
    source_manifest = str(work / "manifest")
    write_manifest(source_manifest, Manifest(rows=tuple(rows), vocabulary=manifest.vocabulary, source={}))
    extract(source_manifest, str(work / "features"))
    return source_manifest, str(work / "features")


@pytest.mark.parametrize("strategy", ["uploader", "subset"])
def test_a_view_holds_exactly_what_extracting_its_split_manifest_writes(source, tmp_path, strategy):
    source_manifest, features_dir = source
    manifest = read_manifest(source_manifest)
    if strategy == "subset":  # a train subset with its own val split, the test split kept (select_train_set)
        split_manifest, _ = resplit(select_train_pool(manifest, ("train",), ""), "uploader", 0.3, seed=1)
        split_manifest = subsample_split(split_manifest, 0.5, seed=2)
    else:  # the development clips re-split (split_dev_set)
        split_manifest, _ = resplit(manifest, "uploader", 0.25, seed=3)
    split_dir = str(tmp_path / "split_manifest")
    write_manifest(split_dir, split_manifest)
    assert len(split_manifest.rows) < len(manifest.rows) or strategy == "uploader"

    counts = resplit_features(features_dir, split_dir, str(tmp_path / "view"))
    direct = extract(split_dir, str(tmp_path / "direct"))
    assert counts == direct
    if strategy == "uploader":
        assert sum(split["rejected"] for split in counts.values()) == 2  # the broken clips, rejected once
    assert folder_contents(str(tmp_path / "view"), counts) == folder_contents(str(tmp_path / "direct"), counts)
    # a view of a view is a view too
    assert resplit_features(str(tmp_path / "view"), split_dir, str(tmp_path / "view_of_view")) == direct


def test_a_view_of_clips_the_feature_set_lacks_fails_before_any_output(source, manifest_dir, tmp_path):
    source_manifest, features_dir = source
    manifest = read_manifest(source_manifest)
    stranger = dataclasses.replace(manifest.rows[1], clip_id="not_extracted")
    write_manifest(str(tmp_path / "split"), dataclasses.replace(manifest, rows=manifest.rows + (stranger,)))
    with pytest.raises(ValueError, match="1 clips of .* are not in"):
        resplit_features(features_dir, str(tmp_path / "split"), str(tmp_path / "view"))
    assert not (tmp_path / "view").exists()


def test_a_feature_set_without_clip_sums_cannot_be_viewed(source, tmp_path):
    source_manifest, features_dir = source
    copied = str(tmp_path / "relabelled")
    with publishing(copied, "relabel") as publication:  # as relabel and prune copy a set
        counts = feature_set.read_counts(features_dir)
        feature_set.copy_feature_set(features_dir, publication.staging, "nothing", counts)
    with pytest.raises(ValueError, match="no per-clip sums"):
        resplit_features(copied, source_manifest, str(tmp_path / "view"))
