"""The model folder: the one module that names and reads what training and pretraining write.

  model.keras        a classifier (keras_models.train): the best epoch by the validation criterion
  encoder.keras      a pretrained encoder (contrastive or separation-based SSL)
  encoder.json       the encoder's architecture and width (what a classifier built on it records)
  history.json       one entry per epoch (or per logging interval), kept across resumed runs
  train_params.json, feature_params.json, vocabulary.json, stats.json   how a classifier was made
                     (vocabulary.json and stats.json are copies of its feature set's)
  checkpoints/       resume state (BackupAndRestore), best.json
  tensorboard/       TensorBoard logs
"""
from __future__ import annotations

import json

import keras
import tensorflow as tf

from beam_jobs.contracts import feature_set
from beam_jobs.contracts import storage
from beam_jobs.contracts.storage import join

MODEL_FILE = "model.keras"
ENCODER_FILE = "encoder.keras"
ENCODER_DESCRIPTION_FILE = "encoder.json"
HISTORY_FILE = "history.json"
TRAIN_PARAMS_FILE = "train_params.json"
FEATURE_PARAMS_FILE = feature_set.MODEL_PARAMS_FILE
CHECKPOINTS_DIR = "checkpoints"
BEST_FILE = "best.json"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tensorboard"


def path(model_dir: str, name: str) -> str:
    return join(model_dir, name)


def write_text(model_dir: str, name: str, text: str) -> None:
    storage.write_text(path(model_dir, name), text)


def read_json(model_dir: str, name: str):
    file_path = path(model_dir, name)
    if not tf.io.gfile.exists(file_path):
        raise FileNotFoundError(f"{file_path}: missing; is {model_dir} a model folder?")
    with tf.io.gfile.GFile(file_path) as handle:
        return json.load(handle)


def copy_feature_set_files(features_dir: str, model_dir: str) -> None:
    """The feature set's parameters, normalisation statistics and vocabulary travel with the model (a
    classifier or an encoder): what export needs to rebuild the front end."""
    tf.io.gfile.makedirs(model_dir)
    tf.io.gfile.copy(join(features_dir, feature_set.PARAMS_FILE), path(model_dir, FEATURE_PARAMS_FILE), overwrite=True)
    for name in (feature_set.STATS_FILE, feature_set.VOCABULARY_FILE):
        tf.io.gfile.copy(join(features_dir, name), path(model_dir, name), overwrite=True)


class HistoryFile(keras.callbacks.Callback):
    """Appends each epoch's logs to history.json, so that a resumed run keeps the earlier epochs."""

    def __init__(self, model_dir: str):
        super().__init__()
        self.model_dir = model_dir

    def on_epoch_end(self, epoch, logs=None):
        history = [entry for entry in read_history(self.model_dir) if entry["epoch"] < epoch + 1]
        history.append({"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}})
        write_text(self.model_dir, HISTORY_FILE, json.dumps(history, indent=1))


def read_history(model_dir: str) -> list[dict]:
    if not tf.io.gfile.exists(path(model_dir, HISTORY_FILE)):
        return []
    return read_json(model_dir, HISTORY_FILE)


def _register_custom_objects() -> None:
    from keras_models import losses  # noqa: F401  (registers the custom layers and loss for deserialisation)
    from keras_models.layers import pooling  # noqa: F401


def load_model(model_dir: str) -> keras.Model:
    """A model folder's classifier, with the project's custom layers registered."""
    _register_custom_objects()
    return keras.models.load_model(path(model_dir, MODEL_FILE))


def save_encoder(encoder: keras.Model, model_dir: str, architecture: str, width: float) -> None:
    encoder.save(path(model_dir, ENCODER_FILE))
    write_text(model_dir, ENCODER_DESCRIPTION_FILE, json.dumps({"architecture": architecture, "width": width}))


def load_encoder(model_dir: str) -> keras.Model:
    _register_custom_objects()
    return keras.models.load_model(path(model_dir, ENCODER_FILE))


def read_encoder_description(model_dir: str) -> dict:
    """{architecture, width} of a pretrained encoder folder."""
    return read_json(model_dir, ENCODER_DESCRIPTION_FILE)
