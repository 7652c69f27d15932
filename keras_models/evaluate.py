"""Clip-level evaluation: patch predictions -> clip scores (beam_jobs.contracts.aggregation) -> metrics and
a per-class report."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np

from beam_jobs.contracts import schema
from beam_jobs.contracts.aggregation import ClipAggregator
from beam_jobs.contracts.feature_set import load_feature_set
from keras_models import model_input
from keras_models.metrics import clip_metrics, single_label_metrics
from keras_models.model_folder import load_model


def predict_clips(model: keras.Model, dataset, transform=None,
                  aggregation: str = "mean") -> tuple[list[str], np.ndarray, np.ndarray]:
    """Runs the model over a `patch_dataset`; returns (clip ids, clip scores, clip labels), clips in order
    of first appearance. `transform`, if given, maps each batch of log-mel patches before the model sees it."""
    clips = ClipAggregator(aggregation)
    for batch in dataset:
        logmel = batch[schema.LOGMEL] if transform is None else transform(batch[schema.LOGMEL])
        clips.add([clip_id.decode("utf-8") for clip_id in batch[schema.CLIP_ID].numpy()],
                  np.asarray(model(logmel, training=False)), batch[schema.LABELS].numpy())
    return clips.clip_ids, clips.scores(), clips.clip_labels()


def predict_split(model_dir: str, features_dir: str, split: str, aggregation: str = "mean",
                  batch_size: int = 64) -> tuple[list[str], np.ndarray, np.ndarray, tuple[str, ...]]:
    """(clip ids, clip scores, clip labels, vocabulary) of a model folder on a feature set's split."""
    features = load_feature_set(features_dir)
    clips, scores, truth = predict_clips(load_model(model_dir), model_input.patch_dataset(features, split, batch_size),
                                         aggregation=aggregation)
    return clips, scores, truth, features.vocabulary


@dataclasses.dataclass
class Evaluation:
    split: str
    clips: int
    vocabulary: tuple[str, ...]
    metrics: dict  # scalars and a `per_class` dict of arrays (see keras_models.metrics.clip_metrics)
    truth: np.ndarray | None = None  # (clips, classes), for the precision-recall curves of the page
    scores: np.ndarray | None = None

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

    def markdown(self, title: str, selection: str = "") -> str:
        """`selection`: which epoch the model is and why (keras_models.model_pages.model_selection)."""
        kept = f"Model kept: {selection}.\n\n" if selection else ""
        return (f"# {title}\n\n{self.clips} clips of the `{self.split}` split; clip score = mean of patch "
                f"scores. Chance mAP is the mean class prevalence (a random ranking's expected AP).\n\n{kept}"
                f"{self.summary_table()}\n\n## Per class\n\n{self.per_class_table()}\n")


def evaluate_classifier(model_dir: str, features_dir: str, split: str = "eval", batch_size: int = 64) -> Evaluation:
    clips, scores, truth, vocabulary = predict_split(model_dir, features_dir, split, batch_size=batch_size)
    return Evaluation(split=split, clips=len(clips), vocabulary=vocabulary, metrics=clip_metrics(truth, scores),
                      truth=truth, scores=scores)


@dataclasses.dataclass
class SingleLabelEvaluation:
    split: str
    clips: int
    aggregation: str
    vocabulary: tuple[str, ...]
    metrics: dict  # keras_models.metrics.single_label_metrics

    @property
    def scalars(self) -> dict[str, float]:
        return {name: self.metrics[name] for name in ("accuracy", "balanced_accuracy", "map_at_3")}

    def markdown(self, title: str, selection: str = "") -> str:
        per_class = self.metrics["per_class"]
        lines = [f"# {title}", "", f"{self.clips} clips of the `{self.split}` split; clip score = {self.aggregation} "
                 "of patch scores; predicted class = top score. Balanced accuracy = mean of the per-class "
                 "accuracies (classes without clips left out); MAP@3 = mean of 1/rank of the true class among "
                 "the three top-scored (0 when absent), DCASE2018 Task 2's metric.", "",
                 *([f"Model kept: {selection}.", ""] if selection else []), "| metric | value |",
                 "|---|---|",
                 *(f"| {name} | {value:.4f} |" for name, value in self.scalars.items()), "", "## Per class", "",
                 "| class | clips | accuracy |", "|---|---:|---:|"]
        for i, label in enumerate(self.vocabulary):
            accuracy = "-" if per_class["clips"][i] == 0 else f"{per_class['accuracy'][i]:.3f}"
            lines.append(f"| {label} | {per_class['clips'][i]} | {accuracy} |")
        return "\n".join(lines) + "\n"


def evaluate_single_label(model_dir: str, features_dir: str, split: str = "test", aggregation: str = "mean",
                          batch_size: int = 64) -> SingleLabelEvaluation:
    clips, scores, truth, vocabulary = predict_split(model_dir, features_dir, split, aggregation, batch_size)
    return SingleLabelEvaluation(split=split, clips=len(clips), aggregation=aggregation, vocabulary=vocabulary,
                                 metrics=single_label_metrics(truth, scores))
