import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from beam_jobs.contracts import schema
from beam_jobs.contracts.feature_set import load_feature_set, shard_pattern
from keras_models import contrastive
from keras_models import model_input
from keras_models.losses import LossParams
from keras_models.model_folder import load_encoder
from keras_models.train import TrainParams, train_classifier

TINY = contrastive.ContrastiveParams(architecture="vgg_like", width=0.125, epochs=1, batch_size=8, head_units=32)


def read_examples(directory, split="train"):
    examples = []
    for path in sorted(glob.glob(shard_pattern(directory, split))):
        examples += [schema.decode_patch(record.numpy()) for record in tf.data.TFRecordDataset(path)]
    return examples


def test_whole_clip_examples_hold_every_patch(noisy_features_dir, noisy_clip_features_dir):
    clips = {example[schema.CLIP_ID]: example[schema.LOGMEL] for example in read_examples(noisy_clip_features_dir)}
    params = load_feature_set(noisy_features_dir).params
    patches = read_examples(noisy_features_dir)
    assert set(clips) == {patch[schema.CLIP_ID] for patch in patches}
    for patch in patches:
        start = patch[schema.PATCH_INDEX] * params.patch_hop_frames
        np.testing.assert_array_equal(patch[schema.LOGMEL], clips[patch[schema.CLIP_ID]][start:start + params.patch_frames])
    features = load_feature_set(noisy_clip_features_dir)
    assert features.patches("train") == len(clips) == features.counts["train"]["written"]
    with pytest.raises(ValueError, match="holds whole clips"):
        model_input.patch_dataset(features, "train", 8)


def test_views_are_two_patches_per_clip_and_identical_without_tps_or_augmentation(noisy_clip_features_dir):
    features = load_feature_set(noisy_clip_features_dir)
    plain = contrastive.ContrastiveParams(tps=False, mix_back=False, augmentations=(), batch_size=8)
    (first, second), _ = next(iter(contrastive.contrastive_views(features, "train", plain)))
    assert first.shape == (8, features.params.patch_frames, features.params.n_mels)
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    (first, second), _ = next(iter(contrastive.contrastive_views(features, "train", TINY)))
    assert not np.allclose(first.numpy(), second.numpy())
    with pytest.raises(ValueError, match="fewer than one batch"):
        contrastive.contrastive_views(features, "train", contrastive.ContrastiveParams(batch_size=10_000))
    with pytest.raises(ValueError, match="Unknown augmentations"):
        contrastive.ContrastiveParams(augmentations=("pitch",))


def test_knn_votes_by_majority_of_the_nearest_neighbours():
    train = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1]], dtype=float)
    train /= np.linalg.norm(train, axis=1, keepdims=True)
    labels = np.eye(2)[[0, 0, 1, 1]]
    query = np.array([[1.0, 0.05], [0.0, 1.0]])
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    np.testing.assert_array_equal(contrastive.knn_scores(train, labels, query, 3, True), [[1, 0], [0, 1]])
    np.testing.assert_allclose(contrastive.knn_scores(train, labels, query, 3, False), [[2 / 3, 1 / 3], [1 / 3, 2 / 3]])


@pytest.fixture(scope="module")
def encoder_dir(noisy_clip_features_dir, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("pretrained"))
    summary = contrastive.pretrain_contrastive(noisy_clip_features_dir, directory, TINY)
    assert summary["epochs"] == 1 and np.isfinite(summary["final_loss"])
    return directory


def test_pretraining_writes_an_encoder_and_knn_evaluates_it(encoder_dir, noisy_features_dir):
    for name in ("encoder.keras", "history.json", "contrastive_params.json", "stats.json"):
        assert os.path.exists(os.path.join(encoder_dir, name)), name
    with open(os.path.join(encoder_dir, "contrastive_params.json")) as handle:
        assert json.load(handle)["augmentations"] == ["rrc", "compander", "noise"]  # the released config's
    result = contrastive.knn_evaluate(encoder_dir, noisy_features_dir, k=5)
    assert result["single_label"] and 0 <= result["balanced_accuracy"] <= 1
    assert result["clips"] == load_feature_set(noisy_features_dir).counts["test"]["written"]


def test_linear_evaluation_freezes_the_encoder_and_fine_tuning_trains_it(encoder_dir, noisy_features_dir, tmp_path):
    pretrained = load_encoder(encoder_dir).get_weights()
    params = TrainParams(epochs=1, batch_size=8, learning_rate=0.1, optimizer="sgd", loss=LossParams("cce"))
    for frozen in (True, False):
        model_dir = str(tmp_path / f"frozen_{frozen}")
        train_classifier(noisy_features_dir, model_dir, params, initial_encoder_dir=encoder_dir, freeze_encoder=frozen)
        model = __import__("keras").models.load_model(os.path.join(model_dir, "model.keras"))
        encoder_weights = model.get_weights()[:len(pretrained)]
        same = all(np.array_equal(a, b) for a, b in zip(encoder_weights, pretrained))
        assert same == frozen
        with open(os.path.join(model_dir, "train_params.json")) as handle:  # the encoder's, not the defaults
            recorded = json.load(handle)
        assert (recorded["architecture"], recorded["width"]) == (TINY.architecture, TINY.width) != (
            params.architecture, params.width)
