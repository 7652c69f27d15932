"""Clip-level evaluation metrics in numpy: AP / mAP, ROC AUC / d', lwlrap, chance levels.

`truth` is a (clips, classes) 0/1 matrix, `scores` the matching real-valued predictions. Classes that
have no positive (or no negative) clip have no AP (or AUC); they get NaN and are left out of macro means.
A non-finite score is an error (NonFiniteScores), never a number: a NaN ranks anywhere.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata


class NonFiniteScores(ValueError):
    """Scores holding NaN or infinity: the model or its input is broken."""


def _check(truth: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    truth, scores = np.asarray(truth, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    if truth.shape != scores.shape or truth.ndim != 2:
        raise ValueError(f"truth {truth.shape} and scores {scores.shape} must be the same (clips, classes)")
    finite = np.isfinite(scores)
    if not finite.all():
        clips = np.flatnonzero(~finite.all(axis=1))
        raise NonFiniteScores(f"{scores.size - finite.sum()} non-finite scores in {len(clips)} of {len(scores)} clips "
                              f"(first: clip {clips[0]}); no metric is computed from them")
    return truth > 0.5, scores


def precision_recall(hits: np.ndarray, class_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One class's (precision, recall) at each distinct score threshold, highest first, ties forming one
    threshold; `hits` (booleans) must hold a positive."""
    order = np.argsort(-class_scores, kind="stable")
    sorted_scores, ranked_hits = class_scores[order], hits[order]
    last_of_tie = np.r_[np.diff(sorted_scores) != 0, True]
    true_pos = np.cumsum(ranked_hits)[last_of_tie]
    ranked = np.arange(1, len(ranked_hits) + 1)[last_of_tie]
    return true_pos / ranked, true_pos / ranked_hits.sum()


def average_precision(truth, scores) -> np.ndarray:
    """Per-class AP: sum over thresholds of (recall step) x precision."""
    truth, scores = _check(truth, scores)
    result = np.full(truth.shape[1], np.nan)
    for c in range(truth.shape[1]):
        if truth[:, c].any():
            precision, recall = precision_recall(truth[:, c], scores[:, c])
            result[c] = np.sum(np.diff(np.r_[0, recall]) * precision)
    return result


def roc_auc(truth, scores) -> np.ndarray:
    """Per-class area under the ROC curve (Mann-Whitney U with mid-ranks for ties)."""
    truth, scores = _check(truth, scores)
    result = np.full(truth.shape[1], np.nan)
    for c in range(truth.shape[1]):
        positives = truth[:, c].sum()
        negatives = len(truth) - positives
        if positives == 0 or negatives == 0:
            continue
        ranks = rankdata(scores[:, c])
        result[c] = (ranks[truth[:, c]].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    return result


def d_prime(auc):
    """d' = sqrt(2) * inverse normal CDF(AUC); infinite for a perfect AUC of 1."""
    return np.sqrt(2.0) * norm.ppf(auc)


def lwlrap(truth, scores) -> tuple[float, np.ndarray, np.ndarray]:
    """Label-weighted label-ranking average precision (DCASE2019 Task 2).

    For every (clip, positive class) pair: the precision of the clip's ranked labels at that class's
    rank. lwlrap is their mean; per class, the mean over that class's positives, weighted by its share
    of all positive labels. Tied scores count as ranked at the lowest position (pessimistic).
    Returns (lwlrap, per-class lwlrap, per-class weight).
    """
    truth, scores = _check(truth, scores)
    n_classes = truth.shape[1]
    precision_sum = np.zeros(n_classes)
    for clip_truth, clip_scores in zip(truth, scores):
        positive = np.flatnonzero(clip_truth)
        if len(positive) == 0:
            continue
        at_or_above = clip_scores[None, :] >= clip_scores[positive, None]  # (positives, classes)
        rank = at_or_above.sum(axis=1)
        hits = (at_or_above & clip_truth[None, :]).sum(axis=1)
        precision_sum[positive] += hits / rank
    label_counts = truth.sum(axis=0)
    total = label_counts.sum()
    if total == 0:
        raise ValueError("lwlrap needs at least one positive label")
    per_class = np.divide(precision_sum, label_counts, out=np.full(n_classes, np.nan), where=label_counts > 0)
    return float(precision_sum.sum() / total), per_class, label_counts / total


def chance_average_precision(truth) -> np.ndarray:
    """Expected AP of a random ranking, per class: its prevalence (NaN where it has no positives)."""
    truth = np.asarray(truth) > 0.5
    prevalence = truth.mean(axis=0)
    return np.where(truth.sum(axis=0) > 0, prevalence, np.nan)


def clip_metrics(truth, scores) -> dict:
    """The summary of a multi-label evaluation; per-class arrays are under `per_class`."""
    ap = average_precision(truth, scores)
    auc = roc_auc(truth, scores)
    overall_lwlrap, class_lwlrap, _ = lwlrap(truth, scores)
    mean_auc = float(np.nanmean(auc))
    return {
        "mAP": float(np.nanmean(ap)),
        "chance_mAP": float(np.nanmean(chance_average_precision(truth))),
        "AUC": mean_auc,
        "d_prime": float(d_prime(mean_auc)),
        "lwlrap": overall_lwlrap,
        "per_class": {"AP": ap, "AUC": auc, "d_prime": d_prime(auc), "lwlrap": class_lwlrap,
                      "positives": np.asarray(truth).sum(axis=0).astype(int)},
    }


def map_at_k(truth, scores, k: int = 3) -> float:
    """Mean average precision at k with one true class per clip (DCASE2018 Task 2's MAP@3): a clip scores
    1/rank of its class among its k top-scored classes, 0 when the class is not among them. Ties keep the
    lower class index first."""
    truth, scores = _check(truth, scores)
    if (truth.sum(axis=1) != 1).any():
        raise ValueError("MAP@k needs exactly one label per clip")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = ranked == truth.argmax(axis=1)[:, None]
    return float(np.mean((hits / np.arange(1, ranked.shape[1] + 1)).sum(axis=1)))


def single_label_metrics(truth, scores) -> dict:
    """Accuracy of the top-scored class against each clip's one label: overall, balanced (the mean of the
    per-class accuracies), per class (NaN for a class without clips) and the confusion matrix
    (rows: true class, columns: predicted class); and MAP@3 (`map_at_k`)."""
    truth, scores = _check(truth, scores)
    if (truth.sum(axis=1) != 1).any():
        raise ValueError("single-label metrics need exactly one label per clip")
    true_class, predicted = truth.argmax(axis=1), scores.argmax(axis=1)
    n_classes = truth.shape[1]
    confusion = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(confusion, (true_class, predicted), 1)
    clips = confusion.sum(axis=1)
    per_class = np.divide(np.diag(confusion), clips, out=np.full(n_classes, np.nan), where=clips > 0)
    return {"accuracy": float(np.mean(true_class == predicted)), "balanced_accuracy": float(np.nanmean(per_class)),
            "map_at_3": map_at_k(truth, scores, 3), "per_class": {"accuracy": per_class, "clips": clips},
            "confusion_matrix": confusion}


def accuracy(truth, scores) -> float:
    return single_label_metrics(truth, scores)["accuracy"]
