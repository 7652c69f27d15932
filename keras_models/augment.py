"""Training-time augmentations on tf.data batches.

The contrastive-view augmentations (methods.md section 7) take a batch of log-mel patches [batch, frames,
bands] and a `keras.random.SeedGenerator` created outside the tf.data function (a fresh draw per batch).
mix_back, compander, random_resized_crop and gaussian_noise work on the extraction job's log-mel (before
normalisation, as the authors' edufonseca/uclser20 pipeline: main_train.py's transforms); mix_back goes
through the linear domain of the feature set's FeatureParams (log scale and offset).
"""
from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from beam_jobs.contracts.features import log_of
from beam_jobs.contracts.params import FeatureParams


def mixup(alpha: float, active: tf.Variable | None = None):
    """Batch mixup (Zhang et al., 2018): each example is mixed with a random other one of its batch,
    inputs and targets alike, with a weight lambda ~ Beta(alpha, alpha) per example. `active`: a boolean
    variable; while it is false the batches pass unmixed (a warm-up)."""
    if alpha <= 0:
        raise ValueError(f"mixup alpha must be positive, got {alpha}")

    def apply(inputs, targets):
        batch = tf.shape(inputs)[0]
        first, second = tf.random.gamma([batch], alpha), tf.random.gamma([batch], alpha)
        weight = first / (first + second)
        if active is not None:
            weight = tf.where(active, weight, tf.ones_like(weight))
        partner = tf.random.shuffle(tf.range(batch))
        input_weight = tf.reshape(weight, [-1] + [1] * (len(inputs.shape) - 1))
        target_weight = tf.reshape(weight, [-1, 1])
        return (input_weight * inputs + (1 - input_weight) * tf.gather(inputs, partner),
                target_weight * targets + (1 - target_weight) * tf.gather(targets, partner))

    return apply


def to_linear(logmel, params: FeatureParams):
    """The mel energies of a log-mel of beam_jobs.contracts.features (log_of(mel + log_offset))."""
    base = 10.0 if params.log_scale == "log10" else math.e
    return ops.maximum(ops.power(base, logmel) - params.log_offset, 0.0)


def to_log(linear, params: FeatureParams):
    return log_of(linear + params.log_offset, params, ops)


def mix_back(patches, backgrounds, params: FeatureParams, a_max: float = 0.05, seed=None):
    """Mixes each patch with a background patch (another clip's) in the linear domain: the foreground is
    scaled by (1 - a) and the background's energy is set to a x the foreground's, a ~ U(0, a_max)."""
    foreground, background = to_linear(patches, params), to_linear(backgrounds, params)
    a = keras.random.uniform((ops.shape(patches)[0], 1, 1), 0.0, a_max, seed=seed)
    foreground_energy = ops.mean(foreground, axis=(1, 2), keepdims=True)
    background_energy = ops.maximum(ops.mean(background, axis=(1, 2), keepdims=True), params.log_offset)
    return to_log((1.0 - a) * foreground + a * foreground_energy / background_energy * background, params)


def random_others(batch, seed=None):
    """For each example of a batch, the index of another example drawn at random (never itself)."""
    steps = keras.random.randint((batch,), 1, ops.maximum(batch, 2), seed=seed)
    return ops.mod(ops.arange(batch) + steps, batch)


def compander(patches, alpha: float = 0.75, seed=None):
    """The authors' compander (edufonseca/uclser20 da/data_augment.py): each log-mel patch multiplied by
    a factor ~ U(alpha, 1), which compresses its dynamic range (alpha < 1)."""
    factor = keras.random.uniform((ops.shape(patches)[0], 1, 1), alpha, 1.0, seed=seed) if alpha < 1 else 1.0
    return patches * factor


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


def temporal_proximity_starts(clip_frames, frames: int, same_patch: bool = False, seed=None):
    """Start frames of two random `frames`-long windows of a clip (temporal proximity sampling);
    `same_patch`: one random start twice."""
    available = clip_frames - frames + 1

    def start():
        return ops.cast(keras.random.uniform((), 0, 1, seed=seed) * ops.cast(available, "float32"), "int32")

    first = start()
    return first, (first if same_patch else start())


def temporal_proximity_pair(logmel, frames: int, same_patch: bool = False, seed=None):
    """Two random `frames`-long patches of one clip's log-mel [clip frames, bands] (temporal proximity
    sampling); `same_patch` returns one random patch twice (the ablation without TPS)."""
    first, second = temporal_proximity_starts(ops.shape(logmel)[0], frames, same_patch, seed)
    return logmel[first:first + frames], logmel[second:second + frames]


def random_resized_crop(patches, scale=(0.8, 1.0), ratio=(3 / 4, 4 / 3), seed=None):
    """Crops a random region of each patch (area share ~ U(scale), aspect ~ log-uniform(ratio), relative to
    the patch's shape) and resizes it back to the patch's size (bilinear)."""
    batch, frames, bands = tf.shape(patches)[0], tf.shape(patches)[1], tf.shape(patches)[2]
    area = keras.random.uniform((batch,), scale[0], scale[1], seed=seed)
    aspect = tf.exp(keras.random.uniform((batch,), math.log(ratio[0]), math.log(ratio[1]),
                                         seed=seed))
    height, width = tf.minimum(tf.sqrt(area * aspect), 1.0), tf.minimum(tf.sqrt(area / aspect), 1.0)
    top = keras.random.uniform((batch,), 0, 1, seed=seed) * (1.0 - height)
    left = keras.random.uniform((batch,), 0, 1, seed=seed) * (1.0 - width)
    boxes = tf.stack([top, left, top + height, left + width], axis=1)
    cropped = tf.image.crop_and_resize(patches[..., None], boxes, tf.range(batch), tf.stack([frames, bands]))
    return cropped[..., 0]


def random_shift(patches, max_frames: int = 10, max_bands: int = 4, seed=None):
    """Shifts each patch by up to +-max_frames in time and +-max_bands in frequency; the vacated edge
    repeats the patch's edge."""
    batch, frames, bands = ops.shape(patches)[0], ops.shape(patches)[1], ops.shape(patches)[2]

    def shifted_positions(size, max_shift):
        shift = keras.random.randint((batch, 1), -max_shift, max_shift + 1, seed=seed)
        return ops.clip(ops.arange(size)[None, :] - shift, 0, size - 1)

    in_time = ops.take_along_axis(patches, shifted_positions(frames, max_frames)[:, :, None], axis=1)
    return ops.take_along_axis(in_time, shifted_positions(bands, max_bands)[:, None, :], axis=2)
