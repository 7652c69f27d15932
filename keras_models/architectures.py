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


VGG4_FILTERS = (48, 64, 128, 256)


def _conv_bn_relu(x, filters, name):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def vgg4(input_shape: tuple[int, int], n_classes: int, k: float = 1.0, pooling: str = "max",
         output_activation: str = "sigmoid") -> keras.Model:
    """VGG41 (k=1, ~1.2M weights) and VGG42 (k=2, ~4.9M) of the shift-invariance work (methods.md section 4).

    A 3x3 front conv with 32k filters, then 4 blocks of 48k/64k/128k/256k filters, each two 3x3 conv + BN
    + ReLU without bias. Blocks 1-3 hold a size-3 stride-1 max-pool between their convs and are followed
    by the 2x2 subsampling pool `pooling` (max, blurpool3, blurpool5, tlpf, aps, tlpf_aps); block 4 has
    none. Global pooling: mean over frequency, then max over time. Fractional k gives CPU-sized variants.
    """
    from keras_models.layers.pooling import subsampling_pool

    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    inputs = keras.Input(shape=input_shape, name="logmel")
    x = layers.Reshape((*input_shape, 1))(inputs)
    x = _conv_bn_relu(x, max(4, round(32 * k)), "front")
    for block, base_filters in enumerate(VGG4_FILTERS, start=1):
        filters = max(4, round(base_filters * k))
        x = _conv_bn_relu(x, filters, f"block{block}_1")
        if block < 4:
            x = layers.MaxPooling2D(3, strides=1, padding="same", name=f"block{block}_dense_max")(x)
        x = _conv_bn_relu(x, filters, f"block{block}_2")
        if block < 4:
            x = subsampling_pool(pooling, name=f"block{block}_{pooling}")(x)
    time_steps, bands = x.shape[1], x.shape[2]
    x = layers.AveragePooling2D((1, bands), name="mean_over_frequency")(x)
    x = layers.Reshape((time_steps, x.shape[-1]))(x)
    x = layers.GlobalMaxPooling1D(name="max_over_time")(x)
    x = layers.Dense(n_classes, name="logits")(x)
    outputs = layers.Activation(output_activation, dtype="float32", name="scores")(x)
    return keras.Model(inputs, outputs, name=f"vgg4_k{k:g}_{pooling}")


ARCHITECTURES = ("vgg_like", "vgg41", "vgg42")


def build_model(architecture: str, input_shape: tuple[int, int], n_classes: int, width: float = 1.0,
                pooling: str = "max", output_activation: str = "sigmoid") -> keras.Model:
    """`width` scales the filters of every architecture; `pooling` applies to VGG41/VGG42;
    `output_activation` is sigmoid for multi-label and softmax for single-label classification."""
    if architecture == "vgg_like":
        if pooling != "max":
            raise ValueError("the VGG-like baseline only uses max-pooling; use vgg41/vgg42 for other pools")
        return vgg_like(input_shape, n_classes, width=width, output_activation=output_activation)
    if architecture in ("vgg41", "vgg42"):
        return vgg4(input_shape, n_classes, k=width * int(architecture[-1]), pooling=pooling,
                    output_activation=output_activation)
    raise ValueError(f"Unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
