"""Self-supervised learning from automatically separated sound scenes (methods.md section 8).

Views of an unlabelled clip: a patch of the mixture and a patch of one randomly chosen separated channel
(beam_jobs.separate), or of the mixture again (the mixture-vs-mixture baseline), with temporal proximity
sampling and SpecAugment. With channels from several separator checkpoints, each example draws its
checkpoint at random (the "OR" rule). Two proxy tasks share the encoder:
  similarity maximisation (SM)  NT-Xent between the projections of the two views;
  coincidence prediction (CP)   a head on [h_a, h_b] predicts whether the two patches come from the same
                                clip in temporal proximity (positives: the pairs; negatives: view a with
                                the next example's view b); binary cross-entropy.
loss = SM + cp_weight * CP. The encoder is saved as keras_models.contrastive does, so the shallow
classifier of the downstream evaluation is `train_classifier(initial_encoder_dir, freeze_encoder=True)`.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf
from keras import layers, ops

from beam_jobs.contracts import schema
from beam_jobs.contracts.feature_set import FeatureSet, load_feature_set, read_separation
from keras_models import augment
from keras_models import model_input
from keras_models.architectures import build_encoder
from keras_models.contrastive import NTXentLoss, fit_and_save_encoder, projection_head
from beam_jobs.contracts.model_folder import read_history

PARAMS_FILE = "separation_ssl_params.json"
PROXY_TASKS = ("sm", "cp", "sm+cp")
VIEWS = ("channel", "mixture")
SHUFFLE_CLIPS = 512  # clips in the shuffle buffer: separated-view examples are large


@dataclasses.dataclass(frozen=True)
class SeparationSSLParams:
    proxy_tasks: str = "sm+cp"
    view: str = "channel"  # the second view: a separated channel, or the mixture again
    checkpoints: tuple[int, ...] = ()  # separator steps drawn from ("OR" rule); () = all; negative = from the end
    cp_weight: float = 1.0
    tps: bool = True
    specaugment: bool = True
    architecture: str = "vgg_like"
    width: float = 1.0
    temperature: float = 0.2
    head_units: int = 512  # projection head (SM) and coincidence head (CP) width
    epochs: int = 50
    batch_size: int = 64
    learning_rate: float = 1e-3  # Adam
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "checkpoints", tuple(int(step) for step in self.checkpoints))
        problems = []
        if self.proxy_tasks not in PROXY_TASKS:
            problems.append(f"proxy_tasks {self.proxy_tasks!r} not in {PROXY_TASKS}")
        if self.view not in VIEWS:
            problems.append(f"view {self.view!r} not in {VIEWS}")
        if self.cp_weight < 0 or self.temperature <= 0 or self.learning_rate <= 0 or self.epochs < 1:
            problems.append("cp_weight must be >= 0; temperature, learning_rate and epochs positive")
        if self.batch_size < 2:
            problems.append("batch_size must be >= 2 (negatives come from the batch)")
        if problems:
            raise ValueError("Invalid SeparationSSLParams: " + "; ".join(problems))

    @property
    def similarity(self) -> bool:
        return "sm" in self.proxy_tasks

    @property
    def coincidence(self) -> bool:
        return "cp" in self.proxy_tasks

    @property
    def outputs(self) -> tuple[str, ...]:
        """The pretraining model's outputs, one per proxy task."""
        return ("similarity",) * self.similarity + ("coincidence",) * self.coincidence

    @classmethod
    def from_setting(cls, setting: dict, **kwargs) -> "SeparationSSLParams":
        """From a pipeline setting {name, proxy_tasks, view, checkpoints} and the shared parameters."""
        return cls(proxy_tasks=setting["proxy_tasks"], view=setting["view"],
                   checkpoints=tuple(setting.get("checkpoints", ())), **kwargs)


def checkpoint_indices(requested: tuple[int, ...], available: list[int]) -> list[int]:
    """Positions in the examples' channel axis 0 of the requested separator steps (() = all; -1 = last)."""
    if not requested:
        return list(range(len(available)))
    indices = []
    for step in requested:
        if step < 0 and -step <= len(available):
            indices.append(len(available) + step)
        elif step in available:
            indices.append(available.index(step))
        else:
            raise ValueError(f"separator checkpoint {step} not among the separated channels' steps {available}")
    return sorted(set(indices))


def validate_settings(settings: list[dict], checkpoint_steps: list[int]) -> None:
    """Checks a pipeline's proxy-task settings before any work: known proxy tasks and views, unique names,
    and checkpoints among the separator's `checkpoint_steps`."""
    names = [setting.get("name") for setting in settings]
    if not settings or None in names or len(set(names)) != len(names):
        raise ValueError(f"settings need one or more entries with unique names, got names {names}")
    for setting in settings:
        try:
            params = SeparationSSLParams.from_setting(setting)
            checkpoint_indices(params.checkpoints, sorted(int(step) for step in checkpoint_steps))
        except (KeyError, ValueError) as error:
            raise ValueError(f"setting {setting['name']!r}: {error}") from error


def separated_views(features: FeatureSet, split: str, params: SeparationSSLParams) -> tf.data.Dataset:
    """((view_a, view_b), targets) batches: mixture patch and channel (or mixture) patch per clip, TPS,
    SpecAugment, normalised with the mixture's train statistics."""
    separation = read_separation(features.directory)
    steps, channels = list(separation["steps"]), int(separation["channels"])
    allowed = tf.constant(checkpoint_indices(params.checkpoints, steps), tf.int32)
    frames = features.params.patch_frames
    clips = model_input.whole_clips_for_batches(features, split, params.batch_size)
    generator = keras.random.SeedGenerator(params.seed)

    def pair(clip):
        mixture = clip[schema.LOGMEL]
        first, second = augment.temporal_proximity_starts(tf.shape(mixture)[0], frames, not params.tps, generator)
        if params.view == "channel":
            checkpoint = tf.gather(allowed, keras.random.randint((), 0, tf.size(allowed), seed=generator))
            channel = keras.random.randint((), 0, channels, seed=generator)
            source = clip[schema.CHANNELS][checkpoint, channel]
        else:
            source = mixture
        return mixture[first:first + frames], source[second:second + frames]

    def finish(view_a, view_b):
        views = []
        for view in (view_a, view_b):
            view = model_input.normalise(features, view)
            if params.specaugment:
                view = augment.spec_augment(view, seed=generator)
            views.append(view)
        batch = tf.shape(view_a)[:1]
        return tuple(views), {name: tf.zeros(batch) for name in params.outputs}  # the losses ignore targets

    return (model_input.clip_dataset(features, split, shuffle=True, seed=params.seed,
                                     channels=(len(steps), channels), shuffle_buffer=SHUFFLE_CLIPS)
            .map(pair, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(params.batch_size, drop_remainder=True)
            .apply(tf.data.experimental.assert_cardinality(clips // params.batch_size))
            .map(finish, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def coincidence_head(embedding_dim: int, hidden: int = 512) -> keras.Model:
    """[h_a, h_b] -> the logit of the two patches coinciding."""
    inputs = keras.Input((2 * embedding_dim,), name="embedding_pair")
    x = layers.Dense(hidden, activation="relu")(inputs)
    outputs = layers.Dense(1)(x)
    return keras.Model(inputs, outputs, name="coincidence_head")


def coincidence_loss(logits):
    """Binary cross-entropy of [batch, 2] logits whose column 0 are coinciding pairs and column 1 not."""
    targets = ops.broadcast_to(ops.convert_to_tensor([[1.0, 0.0]]), ops.shape(logits))
    return ops.mean(ops.binary_crossentropy(targets, logits, from_logits=True), axis=-1)


class CoincidenceLoss(keras.losses.Loss):
    """coincidence_loss on the model's coincidence output; targets are unused."""

    def call(self, y_true, y_pred):
        return coincidence_loss(y_pred)


def coincidence_accuracy(y_true, y_pred):
    """Share of pairs the head gets right (coinciding: logit > 0, not coinciding: logit < 0)."""
    correct = ops.cast(ops.stack([y_pred[:, 0] > 0, y_pred[:, 1] < 0], axis=1), "float32")
    return ops.mean(correct, axis=-1)


def pretraining_model(encoder: keras.Model, similarity_head: keras.Model | None,
                      coincidence: keras.Model | None) -> keras.Model:
    """Two views in; `similarity` [batch, 2, dim] projections and/or `coincidence` [batch, 2] logits of
    (h_a, h_b) and of (h_a, next example's h_b) out."""
    first, second = (keras.Input(encoder.input_shape[1:], name="view_a"),
                     keras.Input(encoder.input_shape[1:], name="view_b"))
    h_a, h_b = encoder(first), encoder(second)
    outputs = {}
    if similarity_head is not None:
        outputs["similarity"] = ops.stack([similarity_head(h_a), similarity_head(h_b)], axis=1)
    if coincidence is not None:
        positive = coincidence(ops.concatenate([h_a, h_b], axis=-1))
        negative = coincidence(ops.concatenate([h_a, ops.roll(h_b, 1, axis=0)], axis=-1))
        outputs["coincidence"] = ops.concatenate([positive, negative], axis=-1)
    return keras.Model([first, second], outputs, name="separation_ssl_pretraining")


def pretrain_separation_ssl(features_dir: str, model_dir: str, params: SeparationSSLParams = SeparationSSLParams(),
                            extra_callbacks: tuple = ()) -> dict:
    """Pretrains an encoder on the train split of a separated-views feature set (beam_jobs.separate);
    writes encoder.keras, history.json, separation_ssl_params.json and stats.json; resumable
    (`extra_callbacks` run after the checkpoint of each epoch)."""
    features = load_feature_set(features_dir)
    tf.io.gfile.makedirs(model_dir)
    keras.utils.set_random_seed(params.seed)
    views = separated_views(features, "train", params)
    encoder = build_encoder(params.architecture, features.input_shape, params.width)
    dim = encoder.output_shape[-1]
    model = pretraining_model(encoder,
                              projection_head(dim, params.head_units, params.head_units) if params.similarity else None,
                              coincidence_head(dim, params.head_units) if params.coincidence else None)
    losses, weights, metrics = {}, {}, {}
    if params.similarity:
        losses["similarity"], weights["similarity"] = NTXentLoss(params.temperature), 1.0
    if params.coincidence:
        losses["coincidence"], weights["coincidence"] = CoincidenceLoss(), params.cp_weight
        metrics["coincidence"] = [coincidence_accuracy]
    model.compile(optimizer=keras.optimizers.Adam(params.learning_rate), loss=losses, loss_weights=weights,
                  metrics=metrics, jit_compile=False)
    summary = fit_and_save_encoder(model, encoder, views, features_dir, model_dir, params, PARAMS_FILE,
                                   extra_callbacks=extra_callbacks)
    last = read_history(model_dir)[-1]
    for key, value in last.items():  # Keras prefixes a metric with its output's name only with several outputs
        if key.endswith("coincidence_accuracy"):
            summary["coincidence_accuracy"] = value
        elif key in ("similarity_loss", "coincidence_loss"):
            summary[key] = value
    return summary
