import numpy as np
import pytest
import tensorflow as tf

from keras_models.augment import mixup


def test_mixup_mixes_inputs_and_targets_with_the_same_weights():
    tf.random.set_seed(0)
    identity = tf.eye(8)
    inputs, targets = mixup(0.4)(tf.reshape(identity, [8, 2, 4]), identity)
    inputs, targets = tf.reshape(inputs, [8, 8]).numpy(), targets.numpy()
    np.testing.assert_allclose(inputs, targets, atol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1.0, atol=1e-6)
    assert (targets >= 0).all() and ((targets > 1e-6).sum(axis=1) <= 2).all()
    assert (np.diag(targets) > 0).all()  # each example keeps a share of itself


def test_mixup_weight_follows_beta_alpha():
    tf.random.set_seed(1)
    _, targets = mixup(0.2)(tf.zeros([4000, 1]), tf.one_hot(tf.range(4000) % 2, 2))
    weights = targets.numpy()[:, 0]
    # with alpha 0.2 most weights sit near 0 or 1 (only examples mixed with the other class show it)
    mixed = weights[(weights > 0) & (weights < 1)]
    assert np.mean((mixed < 0.1) | (mixed > 0.9)) > 0.5
    with pytest.raises(ValueError, match="positive"):
        mixup(0.0)
