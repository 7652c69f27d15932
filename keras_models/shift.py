"""Shift invariance: classification consistency under small time and frequency shifts, and its report."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from keras_models import input as model_input
from keras_models.evaluate import load_model, predict_clips
from keras_models.metrics import clip_metrics
from keras_models.reports import figure_png, html_page, subplots

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
    features = model_input.load_feature_set(features_dir)
    model = load_model(model_dir)
    dataset = model_input.patch_dataset(features, split, batch_size)
    _, scores, truth = predict_clips(model, dataset)
    metrics = clip_metrics(truth, scores)
    return {"mAP": metrics["mAP"], "d_prime": metrics["d_prime"],
            "consistency": shift_consistency(model, dataset)}


def _label(row: dict) -> str:
    return f"{row['pooling']}" + (f" + mixup {row['mixup_alpha']:g}" if row["mixup_alpha"] else "")


def summary_table(rows: list[dict]) -> str:
    head = "| variant | mAP | d' | " + " | ".join(f"{axis[0]}{shift}" for axis in AXES for shift in SHIFTS) + " |"
    lines = [head, "|---" * (3 + len(AXES) * len(SHIFTS)) + "|"]
    for row in rows:
        cells = [f"{row['consistency'][axis][str(shift)]:.1f}" for axis in AXES for shift in SHIFTS]
        lines.append(f"| {_label(row)} | {row['mAP']:.4f} | {row['d_prime']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def consistency_plot_png(rows: list[dict]) -> bytes:
    figure, axes = subplots(1, len(AXES), figsize=(10, 4), sharey=True)
    for axis_plot, axis in zip(axes, AXES):
        for row in rows:
            values = [row["consistency"][axis][str(shift)] for shift in SHIFTS]
            axis_plot.plot(SHIFTS, values, marker="o", label=_label(row))
        axis_plot.set_xlabel(f"{axis} shift ({'frames' if axis == 'time' else 'bands'})")
        axis_plot.set_xticks(SHIFTS)
        axis_plot.grid(alpha=0.3)
    axes[0].set_ylabel("classification consistency (%)")
    axes[-1].legend(fontsize=7)
    return figure_png(figure)


def summary_reports(rows: list[dict]) -> tuple[str, str, bytes]:
    """(Markdown, HTML with the plot embedded, PNG) of the shift-invariance study."""
    rows = sorted(rows, key=lambda row: (row["pooling"], row["mixup_alpha"]))
    intro = ("Classification consistency: % of eval clips whose top-1 class is unchanged when every patch "
             "is shifted by t1/t3/t5 frames in time or f1/f3/f5 bands in frequency.")
    table = summary_table(rows)
    png = consistency_plot_png(rows)
    markdown = f"# Shift invariance\n\n{intro}\n\n{table}\n"
    return markdown, html_page("Shift invariance", intro, table, png), png
