"""Patch scores -> clip scores: the one definition that evaluation, the scoring job and kNN share.

A clip's score is the mean of its patches' scores, or with `geometric_mean` the geometric mean (patch
scores floored at LOG_FLOOR before the log). Both are a sum of per-patch terms (`patch_terms`) finished by
`clip_score`, so a streaming reader and a distributed combiner compute the same numbers.
"""
from __future__ import annotations

import numpy as np

AGGREGATIONS = ("mean", "geometric_mean")
LOG_FLOOR = 1e-7


def check_aggregation(aggregation: str) -> str:
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"Unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")
    return aggregation


def patch_terms(scores: np.ndarray, aggregation: str) -> np.ndarray:
    """What each patch adds to its clip's sum (float64)."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.log(np.maximum(scores, LOG_FLOOR)) if aggregation == "geometric_mean" else scores


def clip_score(total: np.ndarray, patches: int, aggregation: str) -> np.ndarray:
    """The clip score from the sum of its `patches` patch terms."""
    mean = total / patches
    return np.exp(mean) if aggregation == "geometric_mean" else mean


class ClipAggregator:
    """Streams batches of (clip ids, patch scores[, labels]) and yields clip scores in order of first
    appearance."""

    def __init__(self, aggregation: str = "mean"):
        self.aggregation = check_aggregation(aggregation)
        self.totals, self.counts, self.labels = {}, {}, {}

    def add(self, clip_ids, scores: np.ndarray, labels: np.ndarray | None = None) -> None:
        terms = patch_terms(scores, self.aggregation)
        for row, clip_id in enumerate(clip_ids):
            if clip_id not in self.totals:
                self.totals[clip_id], self.counts[clip_id] = 0.0, 0
                if labels is not None:
                    self.labels[clip_id] = labels[row]
            self.totals[clip_id] = self.totals[clip_id] + terms[row]
            self.counts[clip_id] += 1

    @property
    def clip_ids(self) -> list[str]:
        return list(self.totals)

    def scores(self) -> np.ndarray:
        if not self.totals:
            raise ValueError("no patches to aggregate")
        return np.stack([clip_score(self.totals[clip], self.counts[clip], self.aggregation) for clip in self.totals])

    def clip_labels(self) -> np.ndarray:
        return np.stack([self.labels[clip] for clip in self.totals])
