import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix

from beam_jobs import prune, scoring
from beam_jobs.contracts import schema, score_table
from beam_jobs.contracts.manifest import read_manifest
from beam_jobs.splits import select_train_pool
from beam_jobs.contracts.feature_set import load_feature_set, shard_pattern
from keras_models import model_input
from keras_models.evaluate import evaluate_single_label
from keras_models.model_folder import load_model
from keras_models.losses import LossParams, lq_per_example
from keras_models.metrics import single_label_metrics
from keras_models.train import TrainParams, train_classifier

SINGLE_LABEL = TrainParams(width=0.25, epochs=1, batch_size=16, loss=LossParams("lq"))


@pytest.fixture(scope="module")
def stage1_dir(noisy_features_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("stage1"))
    train_classifier(noisy_features_dir, directory, SINGLE_LABEL)
    return directory


def test_single_label_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    classes = rng.integers(0, 5, size=200)
    classes[classes == 3] = 2  # class 3 has no clip: left out of the balanced accuracy
    truth = np.eye(5)[classes]
    scores = rng.random((200, 5)) + truth * 0.4
    metrics = single_label_metrics(truth, scores)
    predicted = scores.argmax(axis=1)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(classes, predicted))
    with pytest.warns(UserWarning, match="classes not in y_true"):  # class 3 is predicted but has no clip
        reference = balanced_accuracy_score(classes, predicted)
    assert metrics["balanced_accuracy"] == pytest.approx(reference)
    np.testing.assert_array_equal(metrics["confusion_matrix"], confusion_matrix(classes, predicted, labels=range(5)))
    assert np.isnan(metrics["per_class"]["accuracy"][3]) and metrics["per_class"]["clips"][3] == 0
    with pytest.raises(ValueError, match="exactly one label"):
        single_label_metrics(np.ones((2, 5)), scores[:2])


def test_train_pool_selects_fsdnoisy18k_subsets(noisy_manifest_dir):
    manifest = read_manifest(noisy_manifest_dir)
    dev = [row for row in manifest.rows if row.split in ("train", "val")]
    clean = select_train_pool(manifest, ("train", "val"), "manually_verified")
    noisy = select_train_pool(manifest, ("train", "val"), "!manually_verified")
    clean_ids = {row.clip_id for row in clean.rows if row.split == "train"}
    noisy_ids = {row.clip_id for row in noisy.rows if row.split == "train"}
    assert clean_ids == {row.clip_id for row in dev if row.flags["manually_verified"]}
    assert noisy_ids == {row.clip_id for row in dev if not row.flags["manually_verified"]}
    assert clean_ids and noisy_ids
    test = {row.clip_id for row in manifest.rows if row.split == "test"}
    assert {row.clip_id for row in clean.rows if row.split == "test"} == test
    with pytest.raises(ValueError, match="has no flag"):
        select_train_pool(manifest, ("train",), "curated")
    with pytest.raises(ValueError, match="not in the dataset"):
        select_train_pool(manifest, ("train_noisy",))


def test_single_label_training_uses_softmax_and_reports_accuracy(noisy_features_dir, stage1_dir):
    model = load_model(stage1_dir)
    features = load_feature_set(noisy_features_dir)
    batch = next(iter(model_input.patch_dataset(features, "test", 8)))
    np.testing.assert_allclose(model(batch[schema.LOGMEL]).numpy().sum(axis=1), 1.0, rtol=1e-5)
    with open(os.path.join(stage1_dir, "checkpoints", "best.json")) as handle:
        assert "val_accuracy" in json.load(handle)
    evaluation = evaluate_single_label(stage1_dir, noisy_features_dir, "test")
    assert evaluation.clips == features.counts["test"]["written"]
    assert 0 <= evaluation.metrics["balanced_accuracy"] <= 1
    assert evaluation.metrics["confusion_matrix"].sum() == evaluation.clips
    assert "| class | clips | accuracy |" in evaluation.markdown("test")
    geometric = evaluate_single_label(stage1_dir, noisy_features_dir, "test", aggregation="geometric_mean")
    assert geometric.clips == evaluation.clips


def test_warm_start_continues_from_the_initial_weights(noisy_features_dir, stage1_dir, tmp_path):
    initial = load_model(stage1_dir)
    params = TrainParams(width=0.25, epochs=1, batch_size=16, learning_rate=1e-9, loss=LossParams("lq"))
    train_classifier(noisy_features_dir, str(tmp_path / "continued"), params, initial_model_dir=stage1_dir)
    continued = load_model(str(tmp_path / "continued"))
    features = load_feature_set(noisy_features_dir)
    batch = next(iter(model_input.patch_dataset(features, "test", 8)))[schema.LOGMEL]
    # a negligible learning rate leaves the weights where stage 1 left them (BatchNorm statistics move a bit)
    np.testing.assert_allclose(continued(batch).numpy(), initial(batch).numpy(), atol=0.05)


def test_pruning_drops_the_clips_above_the_loss_percentile(noisy_features_dir, stage1_dir, tmp_path):
    scores_dir, output = str(tmp_path / "scores"), str(tmp_path / "pruned")
    scoring.score_clips(stage1_dir, noisy_features_dir, scores_dir)
    report = prune.prune(noisy_features_dir, scores_dir, output, percentile=80.0, loss=LossParams("lq"))
    table = score_table.load_score_table(scores_dir)
    labels = {}
    for path in glob.glob(shard_pattern(noisy_features_dir, "train")):
        for record in tf.data.TFRecordDataset(path):
            patch = schema.decode_patch(record.numpy())
            labels[patch[schema.CLIP_ID]] = patch[schema.LABELS]
    clips = sorted(table)
    losses = np.asarray(lq_per_example(np.stack([labels[c] for c in clips]), np.stack([table[c] for c in clips])
                                       .astype(np.float32), 0.7))
    threshold = np.quantile(losses, 0.8, method="inverted_cdf")
    expected = {clip for clip, loss in zip(clips, losses) if loss > threshold}
    with open(os.path.join(output, prune.PRUNED_FILE)) as handle:
        rows = [line.split(",") for line in handle.read().splitlines()[1:]]
    assert {row[0] for row in rows} == expected and expected
    assert all("80th percentile" in row[3] for row in rows)
    assert report["pruned"] == len(expected) and report["kept"] == len(clips) - len(expected)
    kept = set()
    patches = 0
    for path in glob.glob(shard_pattern(output, "train")):
        for record in tf.data.TFRecordDataset(path):
            kept.add(schema.decode_patch(record.numpy())[schema.CLIP_ID])
            patches += 1
    assert kept == set(clips) - expected
    features = load_feature_set(output)
    counts = features.counts["train"]
    assert counts["written"] == len(kept) and counts["patches"] == patches
    assert counts["read"] == counts["written"] + counts["rejected"]
    assert features.patches("test") == load_feature_set(noisy_features_dir).patches("test")
    # training continues from the stage-1 checkpoint on the pruned set
    summary = train_classifier(output, str(tmp_path / "stage2"), SINGLE_LABEL, initial_model_dir=stage1_dir)
    assert 0 <= summary["best_val_accuracy"] <= 1
