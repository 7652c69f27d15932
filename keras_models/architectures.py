"""Model architectures (Keras 3, backend-agnostic)."""
from __future__ import annotations

import keras
from keras import layers

VGG_LIKE_FILTERS = (32, 64, 128)


def _embedding_from_feature_map(x):
    """Mean over frequency, then max over time: a short event anywhere in the patch can drive h."""
    time_steps, bands = x.shape[1], x.shape[2]
    x = layers.AveragePooling2D((1, bands), name="mean_over_frequency")(x)
    x = layers.Reshape((time_steps, x.shape[-1]))(x)
    return layers.GlobalMaxPooling1D(name="max_over_time")(x)


def _patch_input(input_shape: tuple[int, int], size: float, size_name: str = "width"):
    """(the model input, the patch as a one-channel image); `size` scales the architecture's filters."""
    if size <= 0:
        raise ValueError(f"{size_name} must be positive, got {size}")
    inputs = keras.Input(shape=input_shape, name="logmel")  # (frames, bands)
    return inputs, layers.Reshape((*input_shape, 1))(inputs)


def vgg_like_encoder(input_shape: tuple[int, int], width: float = 1.0) -> keras.Model:
    """The FSD50K VGG-like baseline's body: 3 blocks of two 3x3 conv + BN + ReLU and a 2x2 max-pool.

    width=1 gives 32/64/128 filters: 0.29M weights, 0.31M with a 200-class output (the FSD50K paper's
    table says 0.27M; its code is unreleased: docs/recipes.md). The tiny CPU variant is width=0.25.
    """
    inputs, x = _patch_input(input_shape, width)
    for block, base_filters in enumerate(VGG_LIKE_FILTERS, start=1):
        filters = max(4, round(base_filters * width))
        for conv in (1, 2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}")(x)
            x = layers.BatchNormalization(name=f"block{block}_bn{conv}")(x)
            x = layers.ReLU(name=f"block{block}_relu{conv}")(x)
        x = layers.MaxPooling2D(2, name=f"block{block}_pool")(x)
    return keras.Model(inputs, _embedding_from_feature_map(x), name=f"vgg_like_w{width:g}_encoder")


VGG4_FILTERS = (48, 64, 128, 256)


def _conv_bn_relu(x, filters, name, strides=1, initializer="glorot_uniform"):
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, kernel_initializer=initializer,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def vgg4_encoder(input_shape: tuple[int, int], k: float = 1.0, pooling: str = "max") -> keras.Model:
    """VGG41 (k=1, ~1.2M weights) and VGG42 (k=2, ~4.9M) of the shift-invariance work (methods.md section 4).

    A 3x3 front conv with 32k filters, then 4 blocks of 48k/64k/128k/256k filters, each two 3x3 conv + BN
    + ReLU without bias. Blocks 1-3 hold a size-3 stride-1 max-pool between their convs and are followed
    by the 2x2 subsampling pool `pooling` (max, blurpool3, blurpool5, tlpf, aps, tlpf_aps); block 4 has
    none. Every conv starts from N(0, 0.01) weights, as the authors' (edufonseca/shift_sec src/model.py).
    Fractional k gives CPU-sized variants.
    """
    from keras_models.layers.pooling import subsampling_pool

    inputs, x = _patch_input(input_shape, k, "k")
    initializer = keras.initializers.RandomNormal(0.0, 0.01)
    x = _conv_bn_relu(x, max(4, round(32 * k)), "front", initializer=initializer)
    for block, base_filters in enumerate(VGG4_FILTERS, start=1):
        filters = max(4, round(base_filters * k))
        x = _conv_bn_relu(x, filters, f"block{block}_1", initializer=initializer)
        if block < 4:
            x = layers.MaxPooling2D(3, strides=1, padding="same", name=f"block{block}_dense_max")(x)
        x = _conv_bn_relu(x, filters, f"block{block}_2", initializer=initializer)
        if block < 4:
            x = subsampling_pool(pooling, name=f"block{block}_{pooling}")(x)
    return keras.Model(inputs, _embedding_from_feature_map(x), name=f"vgg4_k{k:g}_{pooling}_encoder")


RESNET18_FILTERS = (64, 128, 256, 512)


def resnet18_encoder(input_shape: tuple[int, int], width: float = 1.0) -> keras.Model:
    """ResNet-18 for log-mel patches, as the authors ran it (edufonseca/uclser20 models/resnetAudio.py: the
    torchvision ResNet on one input channel): a 7x7 stride-2 stem and a 3x3 stride-2 max-pool, 4 stages of
    two basic blocks (64/128/256/512 x width filters, stride 2 from stage 2 on, 1x1 projection shortcuts
    where shapes change), global average pooling: h has 512 x width dimensions (11.2M weights at width 1)."""
    inputs, x = _patch_input(input_shape, width)
    x = layers.Conv2D(max(4, round(64 * width)), 7, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, base_filters in enumerate(RESNET18_FILTERS, start=1):
        filters = max(4, round(base_filters * width))
        for block in (1, 2):
            name = f"stage{stage}_block{block}"
            strides = 2 if stage > 1 and block == 1 else 1
            shortcut = x
            if strides != 1 or x.shape[-1] != filters:
                shortcut = layers.Conv2D(filters, 1, strides=strides, use_bias=False, name=f"{name}_project")(x)
                shortcut = layers.BatchNormalization(name=f"{name}_project_bn")(shortcut)
            y = _conv_bn_relu(x, filters, f"{name}_a", strides)
            y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b_conv")(y)
            y = layers.BatchNormalization(name=f"{name}_b_bn")(y)
            x = layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))
    return keras.Model(inputs, layers.GlobalAveragePooling2D(name="average")(x), name=f"resnet18_w{width:g}_encoder")


CRNN_POOLS = ((2, 5), (2, 4), (2, 2))  # (time, frequency) after each conv block


def crnn_encoder(input_shape: tuple[int, int], width: float = 1.0) -> keras.Model:
    """The authors' CRNN (edufonseca/uclser20 models/audio_models.py, CRNN_tagger, after Cakir et al. 2017):
    3 blocks of a 5x5 conv with 128 x width filters + BN + ReLU + max-pool (2x5, 2x4, 2x2 over time x
    frequency), then a bidirectional GRU of 64 x width units whose final states are multiplied (Keras'
    merge_mode "mul", which their code says it emulates): h has 64 x width dimensions (0.96M weights with a
    200-class output at width 1)."""
    inputs, x = _patch_input(input_shape, width)
    for block, pool in enumerate(CRNN_POOLS, start=1):
        x = layers.Conv2D(max(4, round(128 * width)), 5, padding="same", use_bias=False, name=f"block{block}_conv")(x)
        x = layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = layers.ReLU(name=f"block{block}_relu")(x)
        x = layers.MaxPooling2D(pool, name=f"block{block}_pool")(x)
    x = layers.Reshape((x.shape[1], x.shape[2] * x.shape[3]), name="frames")(x)
    h = layers.Bidirectional(layers.GRU(max(4, round(64 * width))), merge_mode="mul", name="bigru")(x)
    return keras.Model(inputs, h, name=f"crnn_w{width:g}_encoder")


KERAS_APPLICATIONS = {"densenet121": keras.applications.DenseNet121, "resnet50": keras.applications.ResNet50}


def application_encoder(architecture: str, input_shape: tuple[int, int], width: float = 1.0) -> keras.Model:
    """A Keras application (random initialisation, one input channel) with global average pooling:
    DenseNet-121, the FSD50K paper's largest baseline (h: 1024 dimensions), and ResNet-50, the missing-labels
    teacher (h: 2048). Neither has a width option."""
    if width != 1.0:
        raise ValueError(f"{architecture} has no width option (its blocks are fixed), got {width}")
    inputs, x = _patch_input(input_shape, width)
    body = KERAS_APPLICATIONS[architecture](include_top=False, weights=None, input_shape=(*input_shape, 1),
                                           pooling="avg")
    return keras.Model(inputs, body(x), name=f"{architecture}_w1_encoder")


def icassp19_cnn_encoder(input_shape: tuple[int, int], width: float = 1.0) -> keras.Model:
    """The FSDnoisy18k baseline of the ICASSP 2019 and WASPAA 2019 papers (edufonseca/icassp19
    architectures.py, get_model_baseline): BN + ReLU, then 5x5 convs of 24, 48, 48 x width filters (He
    initialisation) each followed by BN + ReLU, a 4x2 max-pool (time x frequency) after the first two and a
    BN + ReLU before the next; flatten, dropout 0.5, dense 64 x width ReLU with L2 1e-3: h."""
    inputs, x = _patch_input(input_shape, width)
    for block, (filters, pooled) in enumerate(((24, True), (48, True), (48, False)), start=1):
        x = layers.BatchNormalization(name=f"block{block}_in_bn")(x)
        x = layers.ReLU(name=f"block{block}_in_relu")(x)
        x = layers.Conv2D(max(4, round(filters * width)), 5, padding="same", kernel_initializer="he_normal",
                          name=f"block{block}_conv")(x)
        x = layers.BatchNormalization(name=f"block{block}_bn")(x)
        x = layers.ReLU(name=f"block{block}_relu")(x)
        if pooled:
            x = layers.MaxPooling2D((4, 2), name=f"block{block}_pool")(x)
    x = layers.Dropout(0.5, name="flat_dropout")(layers.Flatten(name="flatten")(x))
    h = layers.Dense(max(4, round(64 * width)), activation="relu", kernel_initializer="he_normal",
                     kernel_regularizer=keras.regularizers.L2(1e-3), name="dense_1")(x)
    return keras.Model(inputs, h, name=f"icassp19_cnn_w{width:g}_encoder")


def dcase2018_cnn_encoder(input_shape: tuple[int, int], width: float = 1.0) -> keras.Model:
    """DCASE2018 Task 2's baseline CNN (DCASE-REPO/dcase2018_baseline task2/model.py, README "Architecture"):
    convs of 7x7 x 100, 5x5 x 150 and 3x3 x 200 (x width) filters with ReLU and biases, 3x3 stride-2 max-pools
    between them, SAME padding, weights ~ truncated N(0, 0.001); h = the max over time and frequency."""
    inputs, x = _patch_input(input_shape, width)
    initializer = keras.initializers.TruncatedNormal(stddev=1e-3)
    for block, (filters, size) in enumerate(((100, 7), (150, 5), (200, 3)), start=1):
        x = layers.Conv2D(max(4, round(filters * width)), size, padding="same", activation="relu",
                          kernel_initializer=initializer, name=f"block{block}_conv")(x)
        if block < 3:
            x = layers.MaxPooling2D(3, strides=2, padding="same", name=f"block{block}_pool")(x)
    return keras.Model(inputs, layers.GlobalMaxPooling2D(name="max")(x), name=f"dcase2018_cnn_w{width:g}_encoder")


MOBILENET_V1_LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
                       (512, 1), (512, 1), (1024, 2), (1024, 1))  # (depth, stride) of each separable conv


def mobilenet_v1_encoder(input_shape: tuple[int, int], width: float = 1.0) -> keras.Model:
    """DCASE2019 Task 2's baseline MobileNet v1 (DCASE-REPO/dcase2019_task2_baseline README "Architecture"):
    a 3x3 conv of 16 filters at stride 1, then 13 separable 3x3 convs (MOBILENET_V1_LAYERS, x width), each
    with BN (decay 0.9997, epsilon 0.001) and ReLU, Xavier initialisation; h = global max pooling (the
    baseline's recipe). 3.3M weights with 80 classes."""
    inputs, x = _patch_input(input_shape, width)

    def bn_relu(x, name):
        x = layers.BatchNormalization(momentum=0.9997, epsilon=1e-3, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    x = bn_relu(layers.Conv2D(max(4, round(16 * width)), 3, padding="same", use_bias=False, name="conv0")(x), "conv0")
    for index, (depth, stride) in enumerate(MOBILENET_V1_LAYERS, start=1):
        x = layers.SeparableConv2D(max(4, round(depth * width)), 3, strides=stride, padding="same", use_bias=False,
                                   name=f"separable{index}")(x)
        x = bn_relu(x, f"separable{index}")
    return keras.Model(inputs, layers.GlobalMaxPooling2D(name="max")(x), name=f"mobilenet_v1_w{width:g}_encoder")


ARCHITECTURES = ("vgg_like", "vgg41", "vgg42", "resnet18", "crnn", "densenet121", "resnet50", "icassp19_cnn",
                 "dcase2018_cnn", "mobilenet_v1")
# The classifier layer of the published recipes: dropout before it, L2 on its weights, its initialisation
CLASSIFIER_LAYERS = {
    "vgg41": {"dropout": 0.0}, "vgg42": {"dropout": 0.0},  # no dropout, as in their paper
    "icassp19_cnn": {"dropout": 0.5, "l2": 1e-3, "initializer": "he_normal"},
    "dcase2018_cnn": {"dropout": 0.0, "initializer": keras.initializers.TruncatedNormal(stddev=1e-3)},
    "mobilenet_v1": {"dropout": 0.2},  # keep probability 0.8, the noisy-set recipe
}


def build_encoder(architecture: str, input_shape: tuple[int, int], width: float = 1.0,
                  pooling: str = "max") -> keras.Model:
    """The architecture's body, patch -> embedding h. `width` scales every architecture's filters;
    `pooling` is the 2x2 subsampling pool of VGG41/VGG42 (the others only use max-pooling)."""
    if architecture in ("vgg41", "vgg42"):
        return vgg4_encoder(input_shape, k=width * int(architecture[-1]), pooling=pooling)
    if pooling != "max":
        raise ValueError(f"{architecture} only uses max-pooling; use vgg41/vgg42 for other pools")
    if architecture in KERAS_APPLICATIONS:
        return application_encoder(architecture, input_shape, width)
    builders = {"vgg_like": vgg_like_encoder, "resnet18": resnet18_encoder, "crnn": crnn_encoder,
                "icassp19_cnn": icassp19_cnn_encoder,
                "dcase2018_cnn": dcase2018_cnn_encoder, "mobilenet_v1": mobilenet_v1_encoder}
    if architecture not in builders:
        raise ValueError(f"Unknown architecture {architecture!r}; expected one of {ARCHITECTURES}")
    return builders[architecture](input_shape, width)


def classifier(encoder: keras.Model, n_classes: int, output_activation: str = "sigmoid",
               dropout: float = 0.2, name: str = "", hidden_units: int = 0, l2: float = 0.0,
               initializer="glorot_uniform") -> keras.Model:
    """Encoder -> [dense ReLU hidden layer] -> dropout -> dense -> sigmoid (multi-label) or softmax
    (single-label). The hidden layer makes the shallow classifier of frozen-embedding evaluations."""
    x = encoder.output
    if hidden_units:
        x = layers.Dense(hidden_units, activation="relu", name="hidden")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.Dense(n_classes, kernel_initializer=initializer, name="logits",
                     kernel_regularizer=keras.regularizers.L2(l2) if l2 else None)(x)
    outputs = layers.Activation(output_activation, dtype="float32", name="scores")(x)
    return keras.Model(encoder.input, outputs, name=name or encoder.name.replace("_encoder", ""))


def build_model(architecture: str, input_shape: tuple[int, int], n_classes: int, width: float = 1.0,
                pooling: str = "max", output_activation: str = "sigmoid") -> keras.Model:
    """A classifier of the architecture, from scratch, with its recipe's classifier layer (CLASSIFIER_LAYERS;
    dropout 0.2 otherwise)."""
    return classifier(build_encoder(architecture, input_shape, width, pooling), n_classes, output_activation,
                      **{"dropout": 0.2, **CLASSIFIER_LAYERS.get(architecture, {})})
