"""Model architectures (Keras 3, backend-agnostic)."""
from __future__ import annotations

import keras
from keras import layers

VGG_LIKE_FILTERS = (32, 64, 128)


def vgg_like(input_shape: tuple[int, int], n_classes: int, width: float = 1.0, dropout: float = 0.2,
             output_activation: str = "sigmoid") -> keras.Model:
    """The FSD50K VGG-like baseline: 3 blocks of two 3x3 conv + BN + ReLU and a 2x2 max-pool.

    width=1 gives 32/64/128 filters (~0.29M weights, the paper's 0.27M-weight baseline); the tiny CPU
    variant is width=0.25. Global pooling: mean over frequency, then max over time, so that a short
    event anywhere in the patch can drive the clip-level output.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    inputs = keras.Input(shape=input_shape, name="logmel")  # (frames, bands)
    x = layers.Reshape((*input_shape, 1))(inputs)
    for block, base_filters in enumerate(VGG_LIKE_FILTERS, start=1):
        filters = max(4, round(base_filters * width))
        for conv in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    time_steps, bands = x.shape[1], x.shape[2]
    x = layers.AveragePooling2D((1, bands), name="mean_over_frequency")(x)
    x = layers.Reshape((time_steps, x.shape[-1]))(x)
    x = layers.GlobalMaxPooling1D(name="max_over_time")(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(n_classes, name="logits")(x)
    outputs = layers.Activation(output_activation, dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name=f"vgg_like_w{width:g}")


ARCHITECTURES = {"vgg_like": vgg_like}


def build_model(architecture: str, input_shape: tuple[int, int], n_classes: int, width: float) -> keras.Model:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {architecture!r}; expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](input_shape, n_classes, width=width)
