"""Training-time augmentations on tf.data batches."""
from __future__ import annotations

import tensorflow as tf


def mixup(alpha: float):
    """Batch mixup (Zhang et al., 2018): each example is mixed with a random other one of its batch,
    inputs and targets alike, with a weight lambda ~ Beta(alpha, alpha) per example."""
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be positive, got {alpha}")

    def apply(inputs, targets):
        batch = tf.shape(inputs)[0]
        first, second = tf.random.gamma([batch], alpha), tf.random.gamma([batch], alpha)
        weight = first / (first + second)
        partner = tf.random.shuffle(tf.range(batch))
        input_weight = tf.reshape(weight, [-1] + [1] * (len(inputs.shape) - 1))
        target_weight = tf.reshape(weight, [-1, 1])
        return (input_weight * inputs + (1 - input_weight) * tf.gather(inputs, partner),
                target_weight * targets + (1 - target_weight) * tf.gather(targets, partner))

    return apply
