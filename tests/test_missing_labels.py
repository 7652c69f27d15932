import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs import relabel, scoring
from beam_jobs.contracts import schema, score_table
from beam_jobs.contracts.manifest import read_manifest, write_manifest
from beam_jobs.contracts.feature_set import load_feature_set, shard_pattern
from keras_models import model_input
from keras_models.evaluate import predict_clips
from keras_models.model_folder import load_model
from keras_models.losses import LossParams
from keras_models.train import TrainParams, train_classifier


@pytest.fixture(scope="module")
def teacher_dir(tiny_classifier_dir):
    return tiny_classifier_dir


@pytest.fixture(scope="module")
def scores_dir(teacher_dir, features_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("scores"))
    scoring.score_clips(teacher_dir, features_dir, directory)
    return directory


@pytest.fixture(scope="module")
def manifest_with_negatives(manifest_dir, tmp_path_factory):
    """The fixture's manifest with the first two absent classes of every clip verified absent."""
    manifest = read_manifest(manifest_dir)
    rows = tuple(dataclasses.replace(row, negatives=tuple(c for c in manifest.vocabulary if c not in row.labels)[:2])
                 for row in manifest.rows)
    directory = str(tmp_path_factory.mktemp("manifest_negatives"))
    write_manifest(directory, dataclasses.replace(manifest, rows=rows))
    return directory


def read_split(features_dir, split="train"):
    patches = []
    for path in sorted(glob.glob(shard_pattern(features_dir, split))):
        patches += [schema.decode_patch(record.numpy()) for record in tf.data.TFRecordDataset(path)]
    return sorted(patches, key=lambda patch: (patch[schema.CLIP_ID], patch[schema.PATCH_INDEX]))


def test_scoring_job_matches_in_process_prediction(teacher_dir, features_dir, scores_dir):
    table = score_table.load_score_table(scores_dir)
    features = load_feature_set(features_dir)
    clips, expected, _ = predict_clips(load_model(teacher_dir), model_input.patch_dataset(features, "train", 16))
    assert sorted(table) == sorted(clips)
    for clip, scores in zip(clips, expected):
        np.testing.assert_allclose(table[clip], scores, rtol=1e-4, atol=1e-6)
    with open(os.path.join(scores_dir, "scoring.json")) as handle:
        summary = json.load(handle)
    assert summary["clips"] == features.counts["train"]["written"]
    assert summary["patches"] == features.patches("train")


def test_geometric_mean_aggregation(teacher_dir, features_dir, scores_dir, tmp_path):
    scoring.score_clips(teacher_dir, features_dir, str(tmp_path), aggregation="geometric_mean")
    geometric, arithmetic = score_table.load_score_table(str(tmp_path)), score_table.load_score_table(scores_dir)
    for clip in arithmetic:  # AM-GM: the geometric mean never exceeds the mean
        assert np.all(geometric[clip] <= arithmetic[clip] * (1 + 1e-4))
    patch_counts = {}
    for patch in read_split(features_dir):
        patch_counts[patch[schema.CLIP_ID]] = patch_counts.get(patch[schema.CLIP_ID], 0) + 1
    one_patch = [clip for clip, count in patch_counts.items() if count == 1]
    assert one_patch
    for clip in one_patch:  # one patch: both means are that patch's scores
        np.testing.assert_allclose(geometric[clip], arithmetic[clip], rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="Unknown aggregation"):
        scoring.score_clips(teacher_dir, features_dir, str(tmp_path / "x"), aggregation="max")


def test_tc_zero_reproduces_the_original_labels(features_dir, manifest_with_negatives, scores_dir, tmp_path):
    output = str(tmp_path / "relabelled")
    report = relabel.relabel(features_dir, manifest_with_negatives, scores_dir, 0.0, output)
    assert report["flagged"] == 0 and report["implicit_negatives"] > 0
    original, relabelled = read_split(features_dir), read_split(output)
    assert len(original) == len(relabelled)
    for before, after in zip(original, relabelled):
        assert before[schema.CLIP_ID] == after[schema.CLIP_ID]
        np.testing.assert_array_equal(before[schema.LABELS], after[schema.LABELS])
        np.testing.assert_array_equal(before[schema.LABEL_MASK], after[schema.LABEL_MASK])
        np.testing.assert_array_equal(before[schema.LOGMEL], after[schema.LOGMEL])
    # the other splits and the metadata are carried over, so the folder is a complete feature set
    features = load_feature_set(output)
    assert features.patches("val") == load_feature_set(features_dir).patches("val")
    assert len(read_split(output, "eval")) == len(read_split(features_dir, "eval"))


def test_relabel_flags_the_top_scored_implicit_negatives_per_class(features_dir, manifest_with_negatives,
                                                                   scores_dir, tmp_path):
    tc = 20.0
    output = str(tmp_path / "relabelled")
    report = relabel.relabel(features_dir, manifest_with_negatives, scores_dir, tc, output)
    manifest = read_manifest(manifest_with_negatives)
    vocabulary = manifest.vocabulary
    table = score_table.load_score_table(scores_dir)
    rows = {row.clip_id: row for row in manifest.rows if row.clip_id in table}
    expected = set()
    for c, label in enumerate(vocabulary):
        implicit = [clip for clip, row in rows.items() if label not in row.labels and label not in row.negatives]
        entry = report["classes"][label]
        assert entry["implicit_negatives"] == len(implicit)
        if not implicit:
            continue
        scores = np.array([table[clip][c] for clip in implicit])
        threshold = np.quantile(scores, 1 - tc / 100, method="inverted_cdf")  # what Beam's quantiles return
        expected |= {(clip, label) for clip, score in zip(implicit, scores) if score > threshold}
        # the top 20%, rounded down (strictly above the inverted-CDF quantile)
        assert entry["flagged"] == int(np.floor(tc / 100 * len(implicit) + 1e-9))
    with open(os.path.join(output, relabel.FLAGGED_FILE)) as handle:
        flagged = {tuple(line.split(",")[:2]) for line in handle.read().splitlines()[1:]}
    assert flagged == expected
    assert all(label not in rows[clip].labels and label not in rows[clip].negatives for clip, label in flagged)
    # patches: mask zero exactly on the flagged (clip, class) entries, labels untouched
    for patch in read_split(output):
        clip = patch[schema.CLIP_ID]
        masked = {vocabulary[c] for c in np.flatnonzero(patch[schema.LABEL_MASK] == 0)}
        assert masked == {label for flagged_clip, label in flagged if flagged_clip == clip}
        assert set(np.asarray(vocabulary)[patch[schema.LABELS] > 0]) == set(rows[clip].labels)


def test_relabel_rejects_bad_input_before_work(features_dir, manifest_dir, scores_dir, tmp_path):
    with pytest.raises(ValueError, match="tc_percent"):
        relabel.relabel(features_dir, manifest_dir, scores_dir, 100.0, str(tmp_path / "x"))


def test_student_trains_with_the_masked_loss(features_dir, manifest_with_negatives, scores_dir, tmp_path):
    output = str(tmp_path / "relabelled")
    relabel.relabel(features_dir, manifest_with_negatives, scores_dir, 10.0, output)
    summary = train_classifier(output, str(tmp_path / "student"),
                               TrainParams(width=0.25, epochs=1, batch_size=16, loss=LossParams("masked_bce")))
    assert 0 <= summary["best_val_mAP"] <= 1


def _losing_one_clip(monkeypatch, transform, clip_id):
    """Makes `transform` lose the elements of one clip, as a runner that drops outputs would."""
    import apache_beam as beam

    original = transform.expand
    monkeypatch.setattr(transform, "expand", lambda self, pcoll: original(self, pcoll) | "LoseOneClip" >> beam.Filter(
        lambda element: element[0] != clip_id))


@pytest.mark.parametrize("job", ["scoring", "relabel", "prune"])
def test_a_runner_that_loses_elements_fails_each_job_before_it_publishes(job, teacher_dir, features_dir,
                                                                         manifest_with_negatives, scores_dir,
                                                                         tmp_path, monkeypatch):
    from beam_jobs import prune
    from beam_jobs.contracts import feature_set

    lost = read_split(features_dir)[0][schema.CLIP_ID]
    output = tmp_path / job
    transform, run = {
        "scoring": (scoring.NormalisePatches, lambda: scoring.score_clips(teacher_dir, features_dir, str(output))),
        "relabel": (feature_set.ReadPatchesByClip,
                    lambda: relabel.relabel(features_dir, manifest_with_negatives, scores_dir, 10.0, str(output))),
        "prune": (prune.ClipLosses, lambda: prune.prune(features_dir, scores_dir, str(output), 90.0))}[job]
    _losing_one_clip(monkeypatch, transform, lost)
    with pytest.raises(RuntimeError, match="written where the input holds .*the runner lost elements"):
        run()
    assert not (output / "_COMPLETE.json").exists()
