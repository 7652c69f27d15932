import json
import os

import keras
import numpy as np
import pytest

from beam_jobs.contracts import schema
from beam_jobs.contracts.feature_set import load_feature_set
from keras_models import model_input
from keras_models.architectures import build_encoder, build_model
from keras_models.evaluate import evaluate_classifier, predict_clips
from beam_jobs.contracts.model_folder import read_history
from keras_models.train import TrainParams, train_classifier

TINY = TrainParams(width=0.25, epochs=2, batch_size=16)


class StopAfterEpoch(keras.callbacks.Callback):
    """Simulates a preempted worker: dies at the end of a given epoch (after checkpoints are written)."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epoch:
            raise RuntimeError("preempted")


class EpochCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch + 1)


def test_vgg_like_width_scales_filters():
    full = build_model("vgg_like", (101, 96), 200, width=1.0)
    tiny = build_model("vgg_like", (101, 96), 200, width=0.25)
    assert full.count_params() == 313_576  # docs/recipes.md: the paper's table says 0.27M
    assert tiny.count_params() < full.count_params() / 5
    assert full.output_shape == (None, 200)
    with pytest.raises(ValueError, match="Unknown architecture"):
        build_model("vgg99", (101, 96), 3, 1.0)


def test_training_keeps_the_best_model_by_validation_map(features_dir, tmp_path):
    model_dir = str(tmp_path / "model")
    summary = train_classifier(features_dir, model_dir, TINY)
    history = read_history(model_dir)
    assert [entry["epoch"] for entry in history] == [1, 2]
    assert summary["best_val_mAP"] == max(entry["val_mAP"] for entry in history)
    for name in ("model.keras", "train_params.json", "feature_params.json", "vocabulary.json", "stats.json"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, "tensorboard"))
    with open(os.path.join(model_dir, "checkpoints", "best.json")) as handle:
        assert json.load(handle)["val_mAP"] == summary["best_val_mAP"]
    # the saved model reproduces the selected validation score
    model = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    features = load_feature_set(features_dir)
    from keras_models.metrics import average_precision

    _, scores, truth = predict_clips(model, model_input.patch_dataset(features, "val", 16))
    assert np.nanmean(average_precision(truth, scores)) == pytest.approx(summary["best_val_mAP"])


def test_training_resumes_after_interruption(features_dir, tmp_path):
    model_dir = str(tmp_path / "model")
    params = TrainParams(width=0.25, epochs=3, batch_size=16)
    with pytest.raises(RuntimeError, match="preempted"):
        train_classifier(features_dir, model_dir, params, extra_callbacks=(StopAfterEpoch(2),))
    counter = EpochCounter()
    summary = train_classifier(features_dir, model_dir, params, extra_callbacks=(counter,))
    assert counter.epochs == [3]  # epochs 1-2 were restored, not rerun
    assert [entry["epoch"] for entry in read_history(model_dir)] == [1, 2, 3]
    assert summary["epochs"] == 3


def test_clip_scores_are_the_mean_of_patch_scores(features_dir):
    features = load_feature_set(features_dir)
    model = build_model("vgg_like", features.input_shape, features.n_classes, width=0.25)
    dataset = model_input.patch_dataset(features, "eval", 8)
    clip_ids, clip_scores, clip_labels = predict_clips(model, dataset)
    patch_scores = {}
    for batch in dataset:
        for clip_id, scores in zip(batch[schema.CLIP_ID].numpy(), model.predict(batch[schema.LOGMEL], verbose=0)):
            patch_scores.setdefault(clip_id.decode(), []).append(scores)
    assert sorted(clip_ids) == sorted(patch_scores) and len(clip_ids) == features.counts["eval"]["written"]
    for clip_id, scores in zip(clip_ids, clip_scores):
        np.testing.assert_allclose(scores, np.mean(patch_scores[clip_id], axis=0), rtol=1e-5, atol=1e-6)
    assert clip_labels.shape == clip_scores.shape and set(np.unique(clip_labels)) <= {0.0, 1.0}


def test_evaluation_reports_metrics_and_a_per_class_table(features_dir, tmp_path):
    model_dir = str(tmp_path / "model")
    train_classifier(features_dir, model_dir, TrainParams(width=0.25, epochs=1, batch_size=16))
    evaluation = evaluate_classifier(model_dir, features_dir, "eval")
    assert set(evaluation.scalars) == {"mAP", "chance_mAP", "AUC", "d_prime", "lwlrap"}
    assert 0 < evaluation.scalars["mAP"] <= 1
    report = evaluation.markdown("Eval")
    assert "| class | positives | AP |" in report
    assert all(label in report for label in evaluation.vocabulary)


def test_invalid_training_params_fail_fast():
    with pytest.raises(ValueError, match="Invalid TrainParams"):
        TrainParams(epochs=0)


def test_the_published_architectures_have_their_published_shape():
    # The CRNN of the authors' code: 0.96M weights with FSD50K's 200 classes (the FSD50K paper's table).
    assert round(build_model("crnn", (101, 96), 200).count_params() / 1e6, 2) == 0.96
    assert build_encoder("crnn", (101, 96)).output_shape == (None, 64)
    # ResNet-18's ImageNet stem: a 7x7 stride-2 conv and a stride-2 max-pool make a 101x96 patch 26x24.
    resnet = build_encoder("resnet18", (101, 96))
    assert resnet.get_layer("stem_pool").output.shape[1:3] == (26, 24)
    assert resnet.get_layer("stem_conv").kernel.shape[:2] == (7, 7)
    densenet = build_model("densenet121", (101, 96), 200)
    assert densenet.output_shape == (None, 200) and 7e6 < densenet.count_params() < 7.5e6
    with pytest.raises(ValueError, match="no width option"):
        build_encoder("densenet121", (101, 96), width=0.5)
    assert build_encoder("resnet50", (101, 96)).output_shape == (None, 2048)  # the missing-labels teacher


def test_encoders_give_an_embedding_and_scale_with_width():
    for architecture, full_size in (("resnet18", (10e6, 12e6)), ("crnn", (0.9e6, 1.0e6))):
        full = build_encoder(architecture, (101, 96), width=1.0)
        assert full_size[0] < full.count_params() < full_size[1], (architecture, full.count_params())
        tiny = build_encoder(architecture, (101, 96), width=0.25)
        assert len(tiny.output_shape) == 2 and tiny.count_params() < full.count_params() / 5
        model = build_model(architecture, (101, 96), 7, width=0.25, output_activation="softmax")
        scores = model(np.zeros((2, 101, 96), dtype="float32")).numpy()
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    assert build_encoder("resnet18", (101, 96), width=0.5).output_shape == (None, 256)
    with pytest.raises(ValueError, match="only uses max-pooling"):
        build_encoder("crnn", (101, 96), pooling="aps")


SCORES = [0.30, 0.35, 0.351, 0.34, 0.33, 0.35, 0.32, 0.36, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30]


def keras_reference(scores, params):
    """Keras' own ReduceLROnPlateau and EarlyStopping (the authors' callbacks) fed the same scores: the rate
    used by each epoch and the epoch after which training stops."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss="mse")
    callbacks = [keras.callbacks.ReduceLROnPlateau("val_mAP", factor=params.lr_factor, patience=params.lr_patience,
                                                   mode="max")]
    if params.early_stopping_patience:  # 0 is "never" here, "at the first miss" for Keras
        callbacks.append(keras.callbacks.EarlyStopping("val_mAP", patience=params.early_stopping_patience,
                                                       min_delta=params.min_delta, mode="max"))
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    rates = []
    for epoch, score in enumerate(scores):
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        for callback in callbacks:
            callback.on_epoch_end(epoch, {"val_mAP": score})
        if model.stop_training:
            return rates, epoch + 1
    return rates, None


@pytest.mark.parametrize("lr_patience,stop_patience", [(5, 15), (2, 4), (3, 0)])
def test_schedule_replays_keras_reduce_on_plateau_and_early_stopping(lr_patience, stop_patience):
    from keras_models.train import schedule_state

    params = TrainParams(lr_patience=lr_patience, early_stopping_patience=stop_patience)
    rates, stopped_after = keras_reference(SCORES, params)
    ours = [schedule_state(SCORES[:epoch], params) for epoch in range(len(SCORES) + 1)]
    np.testing.assert_allclose([state.learning_rate for state in ours[:len(rates)]], rates, rtol=1e-6)
    first_stop = next((epoch for epoch, state in enumerate(ours) if state.stop), None)
    assert first_stop == stopped_after
    if stopped_after:
        assert f"stopped after epoch {stopped_after}" in ours[stopped_after].reason


def test_training_halves_the_rate_on_a_plateau_and_stops_early(features_dir, tmp_path):
    model_dir = str(tmp_path / "model")
    summary = train_classifier(features_dir, model_dir, TrainParams(
        width=0.125, epochs=12, batch_size=16, learning_rate=0.5, lr_patience=1, early_stopping_patience=3))
    history = read_history(model_dir)
    rates = [entry["learning_rate"] for entry in history]
    assert summary["stopped_early"] and len(history) < 12  # a rate of 0.5 makes no progress to keep
    assert rates[0] == 0.5 and rates[-1] < 0.5 and all(later <= earlier for earlier, later in zip(rates, rates[1:]))


def test_step_schedule_falls_tenfold_at_the_released_epochs():
    from keras_models.contrastive import DOWNSTREAM_SGD, ContrastiveParams
    from keras_models.train import milestone_factor, schedule_state

    pretraining = ContrastiveParams()
    factors = [milestone_factor(done, pretraining.lr_milestones, 500) for done in (0, 324, 325, 424, 425, 499)]
    np.testing.assert_allclose(factors, [1, 1, 0.1, 0.1, 0.01, 0.01])
    downstream = TrainParams(epochs=200, learning_rate=0.1, optimizer="sgd", **DOWNSTREAM_SGD)
    rates = [schedule_state([0.5] * done, downstream).learning_rate for done in (79, 80, 159, 160)]
    np.testing.assert_allclose(rates, [0.1, 0.01, 0.01, 0.001])  # flat scores: no plateau halving, no stop
    assert not schedule_state([0.5] * 199, downstream).stop


def test_exponential_decay_is_the_dcase2019_curated_recipe():
    from keras_models.train import schedule_state

    params = TrainParams(learning_rate=3e-3, lr_decay=0.94, lr_patience=0, early_stopping_patience=0, epochs=100)
    rates = [schedule_state([0.5] * done, params).learning_rate for done in (0, 5, 10)]
    np.testing.assert_allclose(rates, [3e-3, 3e-3 * 0.94**2, 3e-3 * 0.94**4])  # x0.94 every 2.5 epochs
