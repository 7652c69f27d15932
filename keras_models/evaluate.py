"""Clip-level evaluation: patch predictions -> clip scores (mean) -> metrics and a per-class report."""
from __future__ import annotations

import dataclasses
import json
import os

import keras
import numpy as np

from beam_jobs import schema
from keras_models import input as model_input
from keras_models.metrics import clip_metrics, single_label_metrics

MODEL_FILE = "model.keras"


def read_result_rows(paths: list[str]) -> list[dict]:
    """The JSON rows that a study's per-variant evaluation tasks wrote, for its summary."""
    rows = []
    for path in paths:
        with open(path) as handle:
            rows.append(json.load(handle))
    return rows


def load_model(model_dir: str) -> keras.Model:
    """Loads a model folder's `model.keras`, with the project's custom layers registered."""
    from keras_models import losses  # noqa: F401  (registers the custom layers and loss for deserialisation)
    from keras_models.layers import pooling  # noqa: F401

    return keras.models.load_model(os.path.join(model_dir, MODEL_FILE))


AGGREGATIONS = ("mean", "geometric_mean")
LOG_FLOOR = 1e-7  # geometric mean: patch scores are clipped here before the log


def predict_clips(model: keras.Model, dataset, transform=None,
                  aggregation: str = "mean") -> tuple[list[str], np.ndarray, np.ndarray]:
    """Runs the model over a `patch_dataset`; returns (clip ids, clip scores, clip labels).

    A clip's score is the mean (or geometric mean) of its patches' scores; clips come out in order of
    first appearance. `transform`, if given, maps each batch of log-mel patches before the model sees it.
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"Unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")
    geometric = aggregation == "geometric_mean"
    sums, counts, labels, order = {}, {}, {}, []
    for batch in dataset:
        logmel = batch[schema.LOGMEL] if transform is None else transform(batch[schema.LOGMEL])
        scores = np.asarray(model(logmel, training=False), dtype=np.float64)
        if geometric:
            scores = np.log(np.maximum(scores, LOG_FLOOR))
        for clip_id, clip_scores, clip_labels in zip(batch[schema.CLIP_ID].numpy(), scores,
                                                     batch[schema.LABELS].numpy()):
            clip_id = clip_id.decode("utf-8")
            if clip_id not in sums:
                order.append(clip_id)
                sums[clip_id], counts[clip_id], labels[clip_id] = 0.0, 0, clip_labels
            sums[clip_id] = sums[clip_id] + clip_scores
            counts[clip_id] += 1
    if not order:
        raise ValueError("no patches to predict")
    scores = np.stack([sums[clip] / counts[clip] for clip in order])
    return order, (np.exp(scores) if geometric else scores), np.stack([labels[clip] for clip in order])


@dataclasses.dataclass
class Evaluation:
    split: str
    clips: int
    vocabulary: tuple[str, ...]
    metrics: dict  # scalars and a `per_class` dict of arrays (see keras_models.metrics.clip_metrics)

    @property
    def scalars(self) -> dict[str, float]:
        return {key: value for key, value in self.metrics.items() if key != "per_class"}

    @property
    def finite_scalars(self) -> dict[str, float]:
        """Scalars that JSON (and so a KFP Metrics artifact) can carry: d' is infinite at AUC 1."""
        return {key: value for key, value in self.scalars.items() if np.isfinite(value)}

    def summary_table(self) -> str:
        rows = [f"| {name} | {value:.4f} |" for name, value in self.scalars.items()]
        return "\n".join(["| metric | value |", "|---|---|", *rows])

    def per_class_table(self) -> str:
        per_class = self.metrics["per_class"]
        lines = ["| class | positives | AP | AUC | d' | lwlrap |", "|---|---:|---:|---:|---:|---:|"]
        for i in np.argsort(-np.nan_to_num(per_class["AP"], nan=-1)):
            cells = [f"{per_class[key][i]:.3f}" for key in ("AP", "AUC", "d_prime", "lwlrap")]
            lines.append(f"| {self.vocabulary[i]} | {per_class['positives'][i]} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def markdown(self, title: str) -> str:
        return (f"# {title}\n\n{self.clips} clips of the `{self.split}` split; clip score = mean of patch "
                f"scores. Chance mAP is the mean class prevalence (a random ranking's expected AP).\n\n"
                f"{self.summary_table()}\n\n## Per class\n\n{self.per_class_table()}\n")


def evaluate_classifier(model_dir: str, features_dir: str, split: str = "eval", batch_size: int = 64) -> Evaluation:
    features = model_input.load_feature_set(features_dir)
    model = load_model(model_dir)
    clips, scores, truth = predict_clips(model, model_input.patch_dataset(features, split, batch_size))
    return Evaluation(split=split, clips=len(clips), vocabulary=features.vocabulary,
                      metrics=clip_metrics(truth, scores))


@dataclasses.dataclass
class SingleLabelEvaluation:
    split: str
    clips: int
    aggregation: str
    vocabulary: tuple[str, ...]
    metrics: dict  # keras_models.metrics.single_label_metrics

    @property
    def scalars(self) -> dict[str, float]:
        return {"accuracy": self.metrics["accuracy"], "balanced_accuracy": self.metrics["balanced_accuracy"]}

    def markdown(self, title: str) -> str:
        per_class = self.metrics["per_class"]
        lines = [f"# {title}", "", f"{self.clips} clips of the `{self.split}` split; clip score = {self.aggregation} "
                 "of patch scores; predicted class = top score. Balanced accuracy = mean of the per-class "
                 "accuracies (classes without clips left out).", "", "| metric | value |", "|---|---|",
                 *(f"| {name} | {value:.4f} |" for name, value in self.scalars.items()), "", "## Per class", "",
                 "| class | clips | accuracy |", "|---|---:|---:|"]
        for i, label in enumerate(self.vocabulary):
            accuracy = "-" if per_class["clips"][i] == 0 else f"{per_class['accuracy'][i]:.3f}"
            lines.append(f"| {label} | {per_class['clips'][i]} | {accuracy} |")
        return "\n".join(lines) + "\n"


def evaluate_single_label(model_dir: str, features_dir: str, split: str = "test", aggregation: str = "mean",
                          batch_size: int = 64) -> SingleLabelEvaluation:
    features = model_input.load_feature_set(features_dir)
    clips, scores, truth = predict_clips(load_model(model_dir), model_input.patch_dataset(features, split, batch_size),
                                         aggregation=aggregation)
    return SingleLabelEvaluation(split=split, clips=len(clips), aggregation=aggregation,
                                 vocabulary=features.vocabulary, metrics=single_label_metrics(truth, scores))
