"""Shift-aware 2x2 subsampling pools: drop-in replacements for `MaxPooling2D(2)` (methods.md section 4).

`SubsamplingPool(lowpass, selection)` covers every variant of the thesis:
- max:        plain 2x2 max-pool, stride 2 (the aliasing baseline)
- blurpool3/5: dense 2x2 max-pool at stride 1, then a fixed binomial low-pass (3x3 [1,2,1] or
               5x5 [1,4,6,4,1], normalised) applied per channel with stride 2 (Zhang, 2019)
- tlpf:       as blurpool5, but each channel's 5x5 filter is trainable; a softmax over its 25 taps keeps
               them positive and summing to one
- aps:        dense max-pool at stride 1, the fixed 5x5 binomial low-pass at stride 1, then per example the
               one of the 4 polyphase components with the largest l1 (or l2) norm (Chaman & Dokmanic, 2021);
               odd sizes are reflect-padded to even. The low-pass is the authors' (edufonseca/shift_sec
               src/model.py runs ApsPool with kernel_size=5)
- aps_only:   APS without the low-pass (shift_sec's kernel_size=1 option)
- tlpf_aps:   dense max-pool, trainable low-pass at stride 1, then APS (the thesis' best system)
Inputs are (batch, time, frequency, channels).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

VARIANTS = {  # name -> (lowpass, selection)
    "max": (None, "max"),
    "blurpool3": ("binomial3", "fixed"),
    "blurpool5": ("binomial5", "fixed"),
    "tlpf": ("trainable", "fixed"),
    "aps": ("binomial5", "aps"),
    "aps_only": (None, "aps"),
    "tlpf_aps": ("trainable", "aps"),
}
BINOMIAL = {3: np.array([1.0, 2.0, 1.0]), 5: np.array([1.0, 4.0, 6.0, 4.0, 1.0])}


def binomial_kernel(size: int) -> np.ndarray:
    taps = np.outer(BINOMIAL[size], BINOMIAL[size])
    return (taps / taps.sum()).astype("float32")


@keras.saving.register_keras_serializable(package="sound_events")
class SubsamplingPool(keras.layers.Layer):
    def __init__(self, lowpass: str | None = None, selection: str = "max", criterion: str = "l1",
                 padding: str = "zeros", **kwargs):
        super().__init__(**kwargs)
        if lowpass not in (None, "binomial3", "binomial5", "trainable"):
            raise ValueError(f"Unknown lowpass {lowpass!r}")
        if selection not in ("max", "fixed", "aps") or criterion not in ("l1", "l2"):
            raise ValueError(f"Unknown selection {selection!r} or criterion {criterion!r}")
        if padding not in ("zeros", "reflect", "circular"):
            raise ValueError(f"padding must be 'zeros' (the authors' SAME padding), 'reflect' or 'circular' "
                             f"(circular makes shifts exact), got {padding!r}")
        if selection == "max" and lowpass is not None:
            raise ValueError("a plain max-pool has no low-pass filter")
        self.lowpass, self.selection, self.criterion, self.padding = lowpass, selection, criterion, padding

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.lowpass == "trainable":
            # Logits ~ N(0, 0.01), the authors' initialisation (edufonseca/shift_sec src/lpf.py: "works a bit
            # better than" starting from the binomial); softmax keeps taps positive, summing to 1.
            self.tap_logits = self.add_weight(name="tap_logits", shape=(25, channels), trainable=True,
                                              initializer=keras.initializers.RandomNormal(0.0, 0.01))
        elif self.lowpass:
            size = int(self.lowpass[-1])
            fixed = np.repeat(binomial_kernel(size)[:, :, None, None], channels, axis=2)
            self.fixed_kernel = ops.convert_to_tensor(fixed)

    def kernel(self):
        """(k, k, channels, 1) depthwise low-pass kernel."""
        if self.lowpass == "trainable":
            taps = ops.softmax(self.tap_logits, axis=0)
            return ops.expand_dims(ops.reshape(taps, (5, 5, -1)), -1)
        return self.fixed_kernel

    def _pad(self, x, before, after):
        """Pads time and frequency: zeros, mirrored, or wrapped around (circular shifts then commute exactly)."""
        if self.padding == "zeros":
            return ops.pad(x, [(0, 0), (before, after), (before, after), (0, 0)])
        if self.padding == "reflect":
            return ops.pad(x, [(0, 0), (before, after), (before, after), (0, 0)], mode="reflect")
        x = ops.concatenate([x[:, x.shape[1] - before:]] * bool(before) + [x] + [x[:, :after]] * bool(after), axis=1)
        return ops.concatenate([x[:, :, x.shape[2] - before:]] * bool(before) + [x] + [x[:, :, :after]] * bool(after),
                               axis=2)

    def _dense_max(self, x):
        """2x2 max-pool at stride 1 keeping the size (one row and column of padding at the end; with "zeros",
        TensorFlow's SAME max-pool, whose padding never wins)."""
        if self.padding == "zeros":
            return ops.max_pool(x, pool_size=2, strides=1, padding="same")
        return ops.max_pool(self._pad(x, 0, 1), pool_size=2, strides=1, padding="valid")

    def _low_pass(self, x, stride):
        size = 5 if self.lowpass != "binomial3" else 3
        x = self._pad(x, size // 2, size // 2)
        return ops.depthwise_conv(x, ops.cast(self.kernel(), x.dtype), strides=stride, padding="valid")

    def _polyphase_select(self, x):
        height, width = x.shape[1], x.shape[2]
        if height % 2 or width % 2:
            x = ops.pad(x, [(0, 0), (0, height % 2), (0, width % 2), (0, 0)], mode="reflect")
        components = ops.stack([x[:, i::2, j::2, :] for i in (0, 1) for j in (0, 1)], axis=1)  # (b, 4, h, w, c)
        if self.criterion == "l1":
            norms = ops.sum(ops.abs(components), axis=(2, 3, 4))
        else:
            norms = ops.sqrt(ops.sum(ops.square(components), axis=(2, 3, 4)))
        choice = ops.one_hot(ops.argmax(norms, axis=1), 4, dtype=components.dtype)  # (b, 4)
        return ops.sum(components * choice[:, :, None, None, None], axis=1)

    def call(self, x):
        if self.selection == "max":
            return ops.max_pool(x, pool_size=2, strides=2, padding="same")
        x = self._dense_max(x)
        if self.selection == "fixed":
            return self._low_pass(x, stride=2)
        if self.lowpass:
            x = self._low_pass(x, stride=1)
        return self._polyphase_select(x)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        half = lambda size: None if size is None else (size + 1) // 2  # noqa: E731
        return batch, half(height), half(width), channels

    def get_config(self):
        return {**super().get_config(), "lowpass": self.lowpass, "selection": self.selection,
                "criterion": self.criterion, "padding": self.padding}


def subsampling_pool(variant: str, name: str | None = None, **options) -> SubsamplingPool:
    if variant not in VARIANTS:
        raise ValueError(f"Unknown pooling variant {variant!r}; expected one of {sorted(VARIANTS)}")
    lowpass, selection = VARIANTS[variant]
    return SubsamplingPool(lowpass=lowpass, selection=selection, name=name, **options)
