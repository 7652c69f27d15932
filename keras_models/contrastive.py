"""Contrastive self-supervised learning (methods.md section 7): views of unlabelled clips, an encoder and
projection head trained with NT-Xent, and the encoder saved for downstream evaluation.

The loss and head use keras.ops (any Keras backend); the view augmentations (keras_models.augment) run in
tf.data. Pretraining writes a model folder (keras_models.model_folder) with the encoder and
contrastive_params.json.
"""
from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from beam_jobs.contracts import schema
from beam_jobs.contracts.aggregation import ClipAggregator
from beam_jobs.contracts.feature_set import FeatureSet, load_feature_set
from keras_models import augment
from keras_models import model_input
from beam_jobs.contracts import model_folder
from keras_models.architectures import build_encoder
from keras_models.guards import FiniteGuard
from keras_models.metrics import clip_metrics, single_label_metrics
from keras_models.model_folder import HistoryFile, load_encoder, save_encoder
from keras_models.train import milestone_factor

PARAMS_FILE = "contrastive_params.json"


def nt_xent(z_a, z_b, temperature: float = 0.2):
    """NT-Xent (SimCLR) over a batch of N positive pairs: for each of the 2N views, cross-entropy of its
    positive among the other 2N - 1 views under cosine similarity / temperature; mean over the 2N views."""
    z = ops.concatenate([z_a, z_b], axis=0)
    z = z / ops.maximum(ops.norm(z, axis=1, keepdims=True), 1e-12)
    n = ops.shape(z_a)[0]
    logits = ops.matmul(z, ops.transpose(z)) / temperature
    logits = logits - 1e9 * ops.eye(2 * n)  # a view is not its own candidate
    positives = ops.concatenate([ops.arange(n) + n, ops.arange(n)], axis=0)
    log_probabilities = logits - ops.logsumexp(logits, axis=1, keepdims=True)
    return -ops.mean(ops.take_along_axis(log_probabilities, positives[:, None], axis=1))


def projection_head(embedding_dim: int, hidden: int = 512, output: int = 512, name: str = "projection_head"):
    """MLP hidden-BN-ReLU-output on the embedding h, l2-normalised: the z that NT-Xent compares."""
    inputs = keras.Input((embedding_dim,), name="embedding")
    x = layers.Dense(hidden, use_bias=False)(inputs)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Dense(output)(x)
    outputs = layers.UnitNormalization(axis=-1)(x)
    return keras.Model(inputs, outputs, name=name)


@keras.saving.register_keras_serializable(package="sound_event")
class NTXentLoss(keras.losses.Loss):
    """NT-Xent on the pretraining model's output [batch, 2, dim] (the two views' z); targets are unused."""

    def __init__(self, temperature: float = 0.2, name: str = "nt_xent", **kwargs):
        super().__init__(name=name, **kwargs)
        self.temperature = temperature

    def call(self, y_true, y_pred):
        return nt_xent(y_pred[:, 0], y_pred[:, 1], self.temperature)

    def get_config(self):
        return {"temperature": self.temperature, "name": self.name}


AUGMENTATIONS = ("rrc", "compander", "noise", "specaugment", "shift")
# Linear evaluation and fine-tuning as released (edufonseca/uclser20 config/params_supervised_lineval.yaml and
# _finetune.yaml): SGD with weight decay 1e-4, the rate x0.1 at epochs 80 and 160 of 200, no early stopping.
DOWNSTREAM_SGD = {"lr_milestones": (0.4, 0.8), "weight_decay": 1e-4, "lr_patience": 0, "early_stopping_patience": 0}


@dataclasses.dataclass(frozen=True)
class ContrastiveParams:
    """Pretraining settings: the released config's (edufonseca/uclser20 config/params_unsupervised_cl.yaml;
    docs/recipes.md)."""

    architecture: str = "resnet18"
    width: float = 1.0
    tps: bool = True  # temporal proximity sampling; False: both views from the same patch
    mix_back: bool = True
    mix_back_max: float = 0.05
    # The released config's (edufonseca/uclser20 config/params_unsupervised_cl.yaml `da:`): random resized
    # crop, compander (alpha 0.75) and Gaussian noise (0.01) on; SpecAugment and shifts off.
    augmentations: tuple[str, ...] = ("rrc", "compander", "noise")
    temperature: float = 0.2
    head_units: int = 512
    epochs: int = 500
    batch_size: int = 128
    learning_rate: float = 0.03  # SGD with momentum 0.9 and weight decay
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_milestones: tuple[float, ...] = (0.65, 0.85)  # the rate x0.1 at epochs 325 and 425 of 500
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "augmentations", tuple(self.augmentations))
        object.__setattr__(self, "lr_milestones", tuple(self.lr_milestones))
        unknown = sorted(set(self.augmentations) - set(AUGMENTATIONS))
        if unknown:
            raise ValueError(f"Unknown augmentations {unknown}; expected some of {AUGMENTATIONS}")
        if self.temperature <= 0 or self.epochs < 1 or self.batch_size < 2 or self.learning_rate <= 0:
            raise ValueError(f"Invalid ContrastiveParams: temperature, epochs, learning_rate must be positive "
                             f"and batch_size >= 2: {self}")


def contrastive_views(features: FeatureSet, split: str, params: ContrastiveParams) -> tf.data.Dataset:
    """((view_a, view_b), unused targets) batches from a whole-clip feature set: a pair of patches per clip
    (TPS or the same patch), mix-back with another clip of the batch, the chosen augmentations, normalised."""
    frames = features.params.patch_frames
    clips = model_input.whole_clips_for_batches(features, split, params.batch_size)
    generator = keras.random.SeedGenerator(params.seed)
    chosen = set(params.augmentations)

    def augment_views(first, second):
        views = []
        for view, other in ((first, second), (second, first)):
            if params.mix_back:  # each view's own background: a patch of another clip, drawn at random
                others = augment.random_others(tf.shape(view)[0], generator)
                view = augment.mix_back(view, tf.gather(other, others), features.params, params.mix_back_max,
                                        generator)
            if "rrc" in chosen:  # the authors' order, on the log-mel: crop, compander, noise, then normalise
                view = augment.random_resized_crop(view, seed=generator)
            if "compander" in chosen:
                view = augment.compander(view, seed=generator)
            if "noise" in chosen:
                view = augment.gaussian_noise(view, seed=generator)
            view = model_input.normalise(features, view)
            if "specaugment" in chosen:
                view = augment.spec_augment(view, seed=generator)
            if "shift" in chosen:
                view = augment.random_shift(view, seed=generator)
            views.append(view)
        return (views[0], views[1]), tf.zeros(tf.shape(first)[:1])

    return (model_input.clip_dataset(features, split, shuffle=True, seed=params.seed)
            .map(lambda clip: augment.temporal_proximity_pair(clip[schema.LOGMEL], frames, not params.tps, generator),
                 num_parallel_calls=tf.data.AUTOTUNE)
            .batch(params.batch_size, drop_remainder=True)
            .apply(tf.data.experimental.assert_cardinality(clips // params.batch_size))  # Keras knows epoch ends
            .map(augment_views, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def pretraining_model(encoder: keras.Model, head: keras.Model) -> keras.Model:
    """Two views in, their projections z out as [batch, 2, dim]: NT-Xent trains encoder and head jointly."""
    first, second = keras.Input(encoder.input_shape[1:], name="view_a"), keras.Input(encoder.input_shape[1:],
                                                                                      name="view_b")
    z = ops.stack([head(encoder(first)), head(encoder(second))], axis=1)
    return keras.Model([first, second], z, name="contrastive_pretraining")


def pretrain_contrastive(features_dir: str, model_dir: str, params: ContrastiveParams = ContrastiveParams(),
                         extra_callbacks: tuple = ()) -> dict:
    """Pretrains an encoder on the unlabelled train split of a whole-clip feature set; writes encoder.keras,
    history.json, contrastive_params.json, stats.json and vocabulary.json to model_dir; resumes after an
    interruption. `extra_callbacks` run after the checkpoint of each epoch."""
    features = load_feature_set(features_dir)
    tf.io.gfile.makedirs(model_dir)
    keras.utils.set_random_seed(params.seed)
    views = contrastive_views(features, "train", params)
    encoder = build_encoder(params.architecture, features.input_shape, params.width)
    head = projection_head(encoder.output_shape[-1], params.head_units, params.head_units)
    model = pretraining_model(encoder, head)
    model.compile(optimizer=keras.optimizers.SGD(params.learning_rate, momentum=params.momentum,
                                                 weight_decay=params.weight_decay),
                  loss=NTXentLoss(params.temperature), jit_compile=False)
    return fit_and_save_encoder(model, encoder, views, features_dir, model_dir, params, PARAMS_FILE,
                                params.lr_milestones, extra_callbacks)


def fit_and_save_encoder(model: keras.Model, encoder: keras.Model, views: tf.data.Dataset, features_dir: str,
                         model_dir: str, params, params_file: str, lr_milestones: tuple[float, ...] = (),
                         extra_callbacks: tuple = ()) -> dict:
    """Trains a pretraining model (resumable) for `params.epochs` (the rate x0.1 at each of `lr_milestones`,
    fractions of the epochs), then writes the encoder (with its
    `params.architecture` and `params.width`), `params` as `params_file`, the feature set's statistics and
    the history to model_dir; returns a summary."""
    model_folder.write_text(model_dir, params_file, json.dumps(dataclasses.asdict(params), indent=1))
    model_folder.copy_feature_set_files(features_dir, model_dir)
    backup = model_folder.path(model_folder.path(model_dir, model_folder.CHECKPOINTS_DIR), model_folder.BACKUP_DIR)
    step_schedule = keras.callbacks.LearningRateScheduler(  # a function of the epoch index: resumes exactly
        lambda epoch: params.learning_rate * milestone_factor(epoch, lr_milestones, params.epochs))
    model.fit(views, epochs=params.epochs, verbose=2, shuffle=False,
              callbacks=[FiniteGuard(), step_schedule, HistoryFile(model_dir), keras.callbacks.BackupAndRestore(backup),
                         *extra_callbacks])
    save_encoder(encoder, model_dir, params.architecture, params.width)
    history = model_folder.read_history(model_dir)
    return {"epochs": len(history), "final_loss": history[-1]["loss"], "encoder_parameters": encoder.count_params(),
            "embedding_dim": int(encoder.output_shape[-1])}


def embed_patches(encoder: keras.Model, features: FeatureSet, split: str,
                  batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(l2-normalised embeddings h, labels, clip ids), one row per patch of the split."""
    embeddings, labels, clips = [], [], []
    for batch in model_input.patch_dataset(features, split, batch_size):
        embeddings.append(np.asarray(encoder(batch[schema.LOGMEL], training=False)))
        labels.append(batch[schema.LABELS].numpy())
        clips += [clip.decode("utf-8") for clip in batch[schema.CLIP_ID].numpy()]
    embeddings = np.concatenate(embeddings)
    return embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12), np.concatenate(labels), clips


def knn_scores(train_embeddings, train_labels, query_embeddings, k: int, single_label: bool,
               chunk: int = 1024) -> np.ndarray:
    """Per query patch: its K nearest train patches by cosine similarity vote. Single-label: a one-hot of
    the majority class (ties to the lowest index); multi-label: the share of neighbours with each label."""
    k = min(k, len(train_embeddings))
    scores = []
    for start in range(0, len(query_embeddings), chunk):
        similarity = query_embeddings[start:start + chunk] @ train_embeddings.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        votes = train_labels[nearest].mean(axis=1)
        if single_label:
            votes = np.eye(train_labels.shape[1])[votes.argmax(axis=1)]
        scores.append(votes)
    return np.concatenate(scores)


def knn_evaluate(encoder_dir: str, features_dir: str, k: int = 200, train_split: str = "train",
                 eval_split: str = "test") -> dict:
    """kNN on the frozen embedding h: train patches are the neighbours; a clip's scores are the mean of its
    patches' votes, so single-label clips get the majority vote over their patches. Balanced top-1
    accuracy for single-label data, mAP for multi-label data."""
    encoder, features = load_encoder(encoder_dir), load_feature_set(features_dir)
    train_embeddings, train_labels, _ = embed_patches(encoder, features, train_split)
    query_embeddings, query_labels, clips = embed_patches(encoder, features, eval_split)
    single_label = bool(np.all(train_labels.sum(axis=1) == 1))
    by_clip = ClipAggregator("mean")
    by_clip.add(clips, knn_scores(train_embeddings, train_labels, query_embeddings, k, single_label), query_labels)
    clip_scores, clip_labels = by_clip.scores(), by_clip.clip_labels()
    result = {"k": k, "clips": len(clip_scores), "single_label": single_label}
    if single_label:
        metrics = single_label_metrics(clip_labels, clip_scores)
        result.update(accuracy=metrics["accuracy"], balanced_accuracy=metrics["balanced_accuracy"])
    else:
        result["mAP"] = clip_metrics(clip_labels, clip_scores)["mAP"]
    return result
