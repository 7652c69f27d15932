"""Contrastive self-supervised learning (methods.md section 7): view augmentations on log-mel patches,
the projection head and the NT-Xent loss. Written with keras.ops, so they run on any Keras backend.

Augmentations take a batch of log-mel patches [batch, frames, bands] in the extraction job's log domain
(log(mel + LOG_OFFSET), before normalisation) and a `keras.random.SeedGenerator`.
"""
from __future__ import annotations

import keras
from keras import layers, ops

LOG_OFFSET = 1e-6  # beam_jobs.features: log-mel = log(mel + 1e-6)


def to_linear(logmel):
    return ops.maximum(ops.exp(logmel) - LOG_OFFSET, 0.0)


def to_log(linear):
    return ops.log(linear + LOG_OFFSET)


def mix_back(patches, backgrounds, a_max: float = 0.05, seed=None):
    """Mixes each patch with a background patch (another clip's) in the linear domain: the foreground is
    scaled by (1 - a) and the background's energy is set to a x the foreground's, a ~ U(0, a_max)."""
    foreground, background = to_linear(patches), to_linear(backgrounds)
    a = keras.random.uniform((ops.shape(patches)[0], 1, 1), 0.0, a_max, seed=seed)
    foreground_energy = ops.mean(foreground, axis=(1, 2), keepdims=True)
    background_energy = ops.maximum(ops.mean(background, axis=(1, 2), keepdims=True), LOG_OFFSET)
    return to_log((1.0 - a) * foreground + a * foreground_energy / background_energy * background)


def compander(patches, alpha: float = 0.75):
    """Compresses the dynamic range: linear magnitudes raised to the power alpha (< 1)."""
    return to_log(ops.power(to_linear(patches), alpha))


def gaussian_noise(patches, sigma: float = 0.01, seed=None):
    return patches + sigma * keras.random.normal(ops.shape(patches), seed=seed)


def spec_augment(patches, max_frames: int = 20, max_bands: int = 10, seed=None):
    """One time mask and one frequency mask per patch (SpecAugment), each up to the given width, filled
    with the patch's mean."""
    batch, frames, bands = ops.shape(patches)[0], ops.shape(patches)[1], ops.shape(patches)[2]

    def mask(max_width, axis_size):
        width = ops.cast(keras.random.uniform((batch, 1), 0, max_width + 1, seed=seed), "int32")
        start = ops.cast(keras.random.uniform((batch, 1), 0, 1, seed=seed)
                         * ops.cast(axis_size - width + 1, "float32"), "int32")
        positions = ops.arange(axis_size)[None, :]
        return ops.logical_and(positions >= start, positions < start + width)

    time_mask = mask(max_frames, frames)[:, :, None]
    band_mask = mask(max_bands, bands)[:, None, :]
    masked = ops.logical_or(time_mask, band_mask)
    fill = ops.mean(patches, axis=(1, 2), keepdims=True)
    return ops.where(masked, fill, patches)


def nt_xent(z_a, z_b, temperature: float = 0.2):
    """NT-Xent (SimCLR) over a batch of N positive pairs: for each of the 2N views, cross-entropy of its
    positive among the other 2N - 1 views under cosine similarity / temperature; mean over the 2N views."""
    z = ops.concatenate([z_a, z_b], axis=0)
    z = z / ops.maximum(ops.norm(z, axis=1, keepdims=True), 1e-12)
    n = ops.shape(z_a)[0]
    logits = ops.matmul(z, ops.transpose(z)) / temperature
    logits = logits - 1e9 * ops.eye(2 * n)  # a view is not its own candidate
    positives = ops.concatenate([ops.arange(n) + n, ops.arange(n)], axis=0)
    log_probabilities = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    return -ops.mean(ops.take_along_axis(log_probabilities, positives[:, None], axis=1))


def projection_head(embedding_dim: int, hidden: int = 512, output: int = 512, name: str = "projection_head"):
    """MLP hidden-BN-ReLU-output on the embedding h, l2-normalised: the z that NT-Xent compares."""
    inputs = keras.Input((embedding_dim,), name="embedding")
    x = layers.Dense(hidden, use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dense(output)(x)
    outputs = layers.UnitNormalization(axis=-1)(x)
    return keras.Model(inputs, outputs, name=name)
