"""Losses for clean, noisy and missing labels, written with keras.ops (any Keras backend).

Each `*_per_example` function maps (targets, probabilities) to one loss per example; the Keras `Loss`
classes below average them over the batch. Single-label losses take one-hot (or soft) targets and
softmax probabilities; the multi-label ones take multi-hot targets and sigmoid probabilities.

Noisy labels (methods.md section 5):
  cce              categorical cross-entropy
  lq               (1 - p_y^q) / q; tends to CCE as q -> 0, equals MAE (up to a factor 2) at q = 1
  lsoft            CCE against the soft-bootstrapped target beta * y + (1 - beta) * p
  label_smoothing  CCE against (1 - s) * y + s / n_classes
  cce_max          CCE, but the examples whose loss exceeds `fraction` x the batch maximum are zeroed
  cce_outlier      CCE, but the examples whose loss exceeds median + `sigmas` x std of the batch are zeroed
                   (both still divide by the batch size, as edufonseca/icassp19 losses.py does)
  + `discard_percentile` on any of them: loss-based instance selection within the mini-batch (drop the
    examples above that percentile of the batch's losses, numpy's "lower" interpolation, and renormalise
    by the number kept: edufonseca/waspaa19 loss_time.py).
Missing labels (section 6):
  bce              binary cross-entropy; `bce_smoothing` s moves the targets to (1 - s) y + s / 2 (the DCASE2019
                   Task 2 baseline's label smoothing towards 0.5)
  masked_bce       binary cross-entropy whose negative term is zeroed where the label mask is 0; its
                   targets are [labels | label_mask] concatenated on the last axis.
"""
from __future__ import annotations

import dataclasses

import keras
from keras import ops

EPSILON = 1e-7
SINGLE_LABEL_LOSSES = ("cce", "lq", "lsoft", "label_smoothing", "cce_max", "cce_outlier")
MULTI_LABEL_LOSSES = ("bce", "masked_bce")
LOSSES = SINGLE_LABEL_LOSSES + MULTI_LABEL_LOSSES


def _clipped(probabilities):
    return ops.clip(ops.cast(probabilities, "float32"), EPSILON, 1.0 - EPSILON)


def cce_per_example(targets, probabilities):
    return -ops.sum(ops.cast(targets, "float32") * ops.log(_clipped(probabilities)), axis=-1)


def lq_per_example(targets, probabilities, q: float = 0.7):
    """Generalised cross-entropy (Zhang & Sabuncu 2018): (1 - p_y^q) / q, with p_y = <targets, p>."""
    p_target = ops.sum(ops.cast(targets, "float32") * _clipped(probabilities), axis=-1)
    return (1.0 - ops.power(p_target, q)) / q


def lsoft_per_example(targets, probabilities, beta: float = 0.3):
    """Soft bootstrapping (Reed et al. 2015): the target trusts the label by beta, the model by 1 - beta. The
    gradient flows through the target's prediction too (edufonseca/icassp19 losses.py): the bootstrapping
    term -(1 - beta) sum p log p is an entropy the model lowers, as in Reed et al.'s loss."""
    probabilities = _clipped(probabilities)
    soft = beta * ops.cast(targets, "float32") + (1.0 - beta) * probabilities
    return -ops.sum(soft * ops.log(probabilities), axis=-1)


def label_smoothing_per_example(targets, probabilities, smoothing: float = 0.15):
    targets = ops.cast(targets, "float32")
    n_classes = ops.cast(ops.shape(targets)[-1], "float32")
    return cce_per_example((1.0 - smoothing) * targets + smoothing / n_classes, probabilities)


def bce_per_example(targets, probabilities, mask=None):
    """Binary cross-entropy averaged over classes; `mask` (0/1 per class) gates the negative term."""
    targets, probabilities = ops.cast(targets, "float32"), _clipped(probabilities)
    negative_term = (1.0 - targets) * ops.log(1.0 - probabilities)
    if mask is not None:
        negative_term = ops.cast(mask, "float32") * negative_term
    return -ops.mean(targets * ops.log(probabilities) + negative_term, axis=-1)


def keep_below_max_fraction(losses, fraction: float = 0.6):
    """CCE_max's rule: keep the examples whose loss is at most `fraction` x the batch maximum."""
    return ops.cast(losses <= fraction * ops.max(losses), "float32")


def keep_below_outlier_bound(losses, sigmas: float = 1.9):
    """CCE_outlier's rule: keep the examples whose loss is at most median + `sigmas` x std of the batch."""
    bound = _median(losses) + sigmas * ops.std(losses)
    return ops.cast(losses <= bound, "float32")


def keep_below_percentile(losses, percentile: float):
    """Loss-based instance selection in the mini-batch: keep the losses at or below the percentile (the
    "lower" one: an actual loss of the batch, as the authors' tf percentile(interpolation="lower"))."""
    ordered = ops.sort(ops.stop_gradient(losses))
    position = ops.cast(ops.floor((ops.cast(ops.shape(ordered)[0], "float32") - 1.0) * (percentile / 100.0)), "int32")
    return ops.cast(losses <= ops.take(ordered, position), "float32")


def _median(values):
    return _percentile(values, 50.0)


def _percentile(values, percentile: float):
    """Linear-interpolation percentile of a 1-D tensor (numpy's default), differentiable-free."""
    ordered = ops.sort(ops.stop_gradient(values))
    position = (ops.cast(ops.shape(ordered)[0], "float32") - 1.0) * (percentile / 100.0)
    below = ops.cast(ops.floor(position), "int32")
    above = ops.minimum(below + 1, ops.shape(ordered)[0] - 1)
    weight = position - ops.cast(below, "float32")
    return ops.take(ordered, below) * (1.0 - weight) + ops.take(ordered, above) * weight


def renormalised(losses, keep):
    """Per-example losses whose batch mean is the mean over the kept examples only."""
    kept = ops.maximum(ops.sum(keep), 1.0)
    return losses * keep * ops.cast(ops.shape(losses)[0], "float32") / kept


@dataclasses.dataclass(frozen=True)
class LossParams:
    """Which loss and its hyperparameters (defaults: icassp19's config/params.yaml `loss:`; docs/recipes.md)."""

    name: str = "bce"
    q: float = 0.7  # lq
    beta: float = 0.3  # lsoft
    smoothing: float = 0.15  # label_smoothing
    max_fraction: float = 0.6  # cce_max
    outlier_sigmas: float = 1.9  # cce_outlier
    discard_percentile: float = 100.0  # < 100: drop the batch's examples above this loss percentile
    bce_smoothing: float = 0.0  # bce: targets (1 - s) y + s / 2

    def __post_init__(self):
        if self.name not in LOSSES:
            raise ValueError(f"Unknown loss {self.name!r}; expected one of {LOSSES}")
        if not 0 < self.q <= 1:
            raise ValueError(f"Lq needs 0 < q <= 1, got {self.q}")
        for field in ("beta", "smoothing", "max_fraction", "bce_smoothing"):
            if not 0 <= getattr(self, field) <= 1:
                raise ValueError(f"loss parameter {field} must be in [0, 1], got {getattr(self, field)}")
        if not 0 < self.discard_percentile <= 100:
            raise ValueError(f"discard_percentile must be in (0, 100], got {self.discard_percentile}")
        if self.discard_percentile < 100 and not self.single_label:
            raise ValueError(f"in-batch discarding applies to single-label losses, not {self.name!r}")

    @classmethod
    def from_values(cls, name: str, values: dict) -> "LossParams":
        """From a pipeline's loss name and hyperparameter dict; values may arrive as strings (KFP resolves
        pipeline parameters placed inside a dict constant to their string form)."""
        fields = {field.name for field in dataclasses.fields(cls)} - {"name"}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ValueError(f"Unknown loss parameters {unknown}; expected some of {sorted(fields)}")
        return cls(name, **{key: float(value) for key, value in values.items()})

    @property
    def single_label(self) -> bool:
        return self.name in SINGLE_LABEL_LOSSES

    @property
    def uses_mask(self) -> bool:
        return self.name == "masked_bce"


def per_example_loss(params: LossParams, targets, probabilities):
    """The loss of each example before any in-batch selection (also used to score clips for pruning)."""
    if params.uses_mask:
        n_classes = ops.shape(probabilities)[-1]
        return bce_per_example(targets[..., :n_classes], probabilities, mask=targets[..., n_classes:])
    if params.name == "bce":
        smoothed = (1.0 - params.bce_smoothing) * ops.cast(targets, "float32") + params.bce_smoothing / 2
        return bce_per_example(smoothed, probabilities)
    if params.name == "lq":
        return lq_per_example(targets, probabilities, params.q)
    if params.name == "lsoft":
        return lsoft_per_example(targets, probabilities, params.beta)
    if params.name == "label_smoothing":
        return label_smoothing_per_example(targets, probabilities, params.smoothing)
    return cce_per_example(targets, probabilities)  # cce, cce_max, cce_outlier


@keras.saving.register_keras_serializable(package="sound_event")
class SupervisionLoss(keras.losses.Loss):
    """One Keras loss for every supervision type: `LossParams` picks the per-example loss and the
    in-batch selection rule; the batch loss is the batch mean (over the examples kept, for percentile
    discarding)."""

    def __init__(self, params: LossParams | dict = LossParams(), name: str = "supervision_loss", **kwargs):
        self.params = params if isinstance(params, LossParams) else LossParams(**params)
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        params = self.params
        losses = per_example_loss(params, y_true, y_pred)
        if not params.single_label:
            return losses
        if params.name == "cce_max":
            losses = losses * keep_below_max_fraction(ops.stop_gradient(losses), params.max_fraction)
        elif params.name == "cce_outlier":
            losses = losses * keep_below_outlier_bound(ops.stop_gradient(losses), params.outlier_sigmas)
        if params.discard_percentile < 100:
            return renormalised(losses, keep_below_percentile(ops.stop_gradient(losses), params.discard_percentile))
        return losses

    def get_config(self):
        return {"params": dataclasses.asdict(self.params), "name": self.name}
