"""What a training or evaluation task shows in the KFP UI (and opens locally): HTML pages with plots.

  training_page      loss and the selection metric per epoch (history.json), the best epoch marked, the
                     learning rate, and why training stopped (for pretraining, which selects no epoch: the loss)
  evaluation_page    multi-label: per-class AP as a sorted bar chart beside the class's chance level, and
                     precision-recall curves of the best and the worst classes
  single_label_page  the confusion matrix (row-normalised) and per-class accuracy
Both evaluation pages show the model's validation curve and which epoch was kept and why.
"""
from __future__ import annotations

import numpy as np

from keras_models.evaluate import Evaluation, SingleLabelEvaluation
from keras_models.metrics import precision_recall
from beam_jobs.contracts.model_folder import TRAIN_PARAMS_FILE, read_history, read_json
from keras_models.study_reports import figure_png, html_page, subplots
from keras_models.train import TrainParams, schedule_state

CURVE_CLASSES = 3  # best and worst classes drawn as precision-recall curves


def _bar_height(classes: int) -> float:
    return max(3.0, 0.22 * classes + 1.0)


def _criterion(history: list[dict]) -> str | None:
    """The validation metric that selected the model (None: pretraining, which selects no epoch)."""
    return next((key for key in ("val_accuracy", "val_mAP") if history and key in history[0]), None)


def model_selection(model_dir: str) -> str:
    """Which epoch a trained model folder kept and why, and how its training ended ("" for a folder without
    a validation history, e.g. a pretrained encoder)."""
    history = read_history(model_dir)
    criterion = _criterion(history)
    if criterion is None:
        return ""
    params = TrainParams(**read_json(model_dir, TRAIN_PARAMS_FILE))
    best = max(history, key=lambda entry: entry[criterion])
    state = schedule_state([entry[criterion] for entry in history], params)
    ending = state.reason if state.stop else f"ran all {params.epochs} epochs; {state.reason}"
    return (f"the model of epoch {best['epoch']} of {len(history)}, the best {criterion} ({best[criterion]:.4f}); "
            f"{ending}")


def _selection_curve(axes, history: list[dict], criterion: str) -> None:
    """The validation metric per epoch, the kept epoch marked, the learning rate on a second axis."""
    epochs = [entry["epoch"] for entry in history]
    best = max(history, key=lambda entry: entry[criterion])
    axes.plot(epochs, [entry[criterion] for entry in history], marker=".", color="tab:green")
    axes.axvline(best["epoch"], color="grey", linestyle="--", label=f"kept: epoch {best['epoch']}")
    axes.set_xlabel("epoch"), axes.set_ylabel(criterion), axes.legend(loc="lower right")
    if "learning_rate" in history[0]:
        rates = axes.twinx()
        rates.step(epochs, [entry["learning_rate"] for entry in history], where="mid", color="tab:orange")
        rates.set_yscale("log"), rates.set_ylabel("learning rate", color="tab:orange")


def selection_figure(model_dir: str) -> list[str]:
    """The validation curve of a trained model folder as a page part ([] without a validation history)."""
    history = read_history(model_dir)
    criterion = _criterion(history)
    if criterion is None:
        return []
    figure, axes = subplots(figsize=(5, 3.5))
    _selection_curve(axes, history, criterion)
    return [figure_png(figure)]


def training_page(model_dir: str, title: str) -> str:
    history = read_history(model_dir)
    if not history:
        raise ValueError(f"{model_dir}: no history.json to plot")
    criterion = _criterion(history)
    epochs = [entry["epoch"] for entry in history]
    figure, axes = subplots(1, 2 if criterion else 1, figsize=(10 if criterion else 5, 3.5), squeeze=False)
    losses = axes[0][0]
    for key in ("loss", "val_loss"):
        if key in history[0]:
            losses.plot(epochs, [entry[key] for entry in history], marker=".", label=key)
    losses.set_xlabel("epoch"), losses.set_ylabel("loss"), losses.legend()
    if criterion:
        _selection_curve(axes[0][1], history, criterion)
    keys = sorted(key for key in history[0] if key != "epoch")
    table = "\n".join(["| epoch | " + " | ".join(keys) + " |"] +
                      [f"| {entry['epoch']} | " + " | ".join(f"{entry[key]:.4f}" for key in keys) + " |"
                       for entry in history])
    intro = (f"{len(history)} epochs; kept: {model_selection(model_dir)}." if criterion
             else f"{len(history)} epochs; the last one is kept.")
    return html_page(title, intro, table, figure_png(figure))


def evaluation_page(evaluation: Evaluation, title: str, model_dir: str = "") -> str:
    """`model_dir`: the evaluated model's folder, whose validation curve and kept epoch the page shows."""
    per_class = evaluation.metrics["per_class"]
    scored = np.flatnonzero(np.isfinite(per_class["AP"]))
    order = scored[np.argsort(per_class["AP"][scored])]  # worst first
    labels = [evaluation.vocabulary[i] for i in order]
    figure, bars = subplots(figsize=(8, _bar_height(len(order))))
    bars.barh(range(len(order)), per_class["AP"][order], color="tab:blue", label="AP")
    prevalence = evaluation.truth[:, order].mean(axis=0)
    bars.scatter(prevalence, range(len(order)), color="black", marker="|", s=80, label="chance (prevalence)")
    bars.set_yticks(range(len(order)), labels, fontsize=7)
    bars.set_xlim(0, 1), bars.set_xlabel("average precision"), bars.legend(loc="lower right")
    curves_figure, curves = subplots(figsize=(6, 4.5))
    best = list(order[::-1][:CURVE_CLASSES])
    for i in best + [i for i in order[:CURVE_CLASSES] if i not in best]:
        precision, recall = precision_recall(evaluation.truth[:, i] > 0.5, evaluation.scores[:, i])
        curves.step(np.r_[0, recall], np.r_[precision[0], precision], where="pre",
                    label=f"{evaluation.vocabulary[i]} (AP {per_class['AP'][i]:.2f})")
    curves.set_xlabel("recall"), curves.set_ylabel("precision"), curves.set_xlim(0, 1), curves.set_ylim(0, 1.05)
    curves.legend(fontsize=7), curves.set_title("best and worst classes")
    intro = (f"{evaluation.clips} clips of the {evaluation.split} split; mAP {evaluation.metrics['mAP']:.4f} "
             f"(chance {evaluation.metrics['chance_mAP']:.4f}).")
    selection = model_selection(model_dir) if model_dir else ""
    intro += f" Model kept: {selection}." if selection else ""
    return html_page(title, intro, evaluation.summary_table(), figure_png(figure), figure_png(curves_figure),
                     *(selection_figure(model_dir) if model_dir else []))


def single_label_page(evaluation: SingleLabelEvaluation, title: str, model_dir: str = "") -> str:
    matrix = np.asarray(evaluation.metrics["confusion_matrix"], dtype=np.float64)
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.35 * len(evaluation.vocabulary) + 2)
    figure, axes = subplots(figsize=(size, size))
    image = axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(evaluation.vocabulary))
    axes.set_xticks(ticks, evaluation.vocabulary, rotation=90, fontsize=7)
    axes.set_yticks(ticks, evaluation.vocabulary, fontsize=7)
    axes.set_xlabel("predicted"), axes.set_ylabel("true")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class's clips")
    table = "\n".join(["| metric | value |",
                       *(f"| {name} | {value:.4f} |" for name, value in evaluation.scalars.items())])
    intro = f"{evaluation.clips} clips of the {evaluation.split} split; rows: true class, columns: predicted."
    selection = model_selection(model_dir) if model_dir else ""
    intro += f" Model kept: {selection}." if selection else ""
    return html_page(title, intro, table, figure_png(figure), *(selection_figure(model_dir) if model_dir else []))
