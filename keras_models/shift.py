"""Shift invariance: classification consistency under small time and frequency shifts."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from beam_jobs.contracts.feature_set import load_feature_set
from keras_models import model_input
from keras_models.evaluate import predict_clips
from keras_models.metrics import clip_metrics
from keras_models.model_folder import load_model

SHIFTS = (1, 3, 5)
AXES = {"time": 1, "frequency": 2}


def shift_patches(logmel, shift: int, axis: int):
    """Moves the patch content by `shift` frames (axis 1) or bands (axis 2); the vacated edge is filled
    with 0, the normalised mean, so no content wraps around."""
    size = logmel.shape[axis]
    kept = tf.gather(logmel, tf.range(0, size - shift), axis=axis)
    fill_shape = tf.tensor_scatter_nd_update(tf.shape(logmel), [[axis]], [shift])
    return tf.concat([tf.zeros(fill_shape, logmel.dtype), kept], axis=axis)


def shift_consistency(model: keras.Model, dataset, shifts=SHIFTS) -> dict[str, dict[str, float]]:
    """% of clips whose top-1 class (argmax of the mean patch score) is unchanged by each shift.

    Keys: axis name, then the shift as a string (so the result survives a JSON round trip unchanged).
    """
    _, reference, _ = predict_clips(model, dataset)
    top1 = reference.argmax(axis=1)
    result = {}
    for name, axis in AXES.items():
        result[name] = {}
        for shift in shifts:
            _, shifted, _ = predict_clips(model, dataset, lambda x: shift_patches(x, shift, axis))
            result[name][str(shift)] = float(100.0 * np.mean(shifted.argmax(axis=1) == top1))
    return result


def evaluate_shift_invariance(model_dir: str, features_dir: str, split: str = "eval", batch_size: int = 64) -> dict:
    features = load_feature_set(features_dir)
    model = load_model(model_dir)
    dataset = model_input.patch_dataset(features, split, batch_size)
    _, scores, truth = predict_clips(model, dataset)
    metrics = clip_metrics(truth, scores)
    return {"mAP": metrics["mAP"], "d_prime": metrics["d_prime"],
            "consistency": shift_consistency(model, dataset)}
