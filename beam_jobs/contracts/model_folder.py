"""The model folder: the one module that names its files and reads them without TensorFlow (scoring, tagging
and export read model folders here; keras_models.model_folder adds what needs Keras: saving and loading the
networks, the history callback).

  model.keras        a classifier (keras_models.train): the best epoch by the validation criterion
  encoder.keras      a pretrained encoder (contrastive or separation-based SSL)
  encoder.json       the encoder's architecture and width (what a classifier built on it records)
  history.json       one entry per epoch (or per logging interval), kept across resumed runs
  train_params.json, feature_params.json, vocabulary.json, stats.json   how a classifier was made
                     (vocabulary.json and stats.json are copies of its feature set's)
  checkpoints/       resume state (BackupAndRestore), best.json
  tensorboard/       TensorBoard logs

An export folder (keras_models.export) holds feature_params.json and vocabulary.json too, read by the same
functions.
"""
from __future__ import annotations

import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_jobs.contracts import feature_set, storage
from beam_jobs.contracts.params import FeatureParams
from beam_jobs.contracts.storage import join

MODEL_FILE = "model.keras"
ENCODER_FILE = "encoder.keras"
ENCODER_DESCRIPTION_FILE = "encoder.json"
HISTORY_FILE = "history.json"
TRAIN_PARAMS_FILE = "train_params.json"
FEATURE_PARAMS_FILE = "feature_params.json"  # the FeatureParams the model (or its export) was trained on
VOCABULARY_FILE = feature_set.VOCABULARY_FILE
STATS_FILE = feature_set.STATS_FILE
CHECKPOINTS_DIR = "checkpoints"
BEST_FILE = "best.json"
BACKUP_DIR = "backup"
TENSORBOARD_DIR = "tensorboard"
WHAT = "a model folder (keras_models.train, contrastive or separation-based pretraining) or an export"


def path(model_dir: str, name: str) -> str:
    return join(model_dir, name)


def write_text(model_dir: str, name: str, text: str) -> None:
    storage.write_text(path(model_dir, name), text)


def read_json(model_dir: str, name: str):
    return storage.read_json(path(model_dir, name), WHAT)


def read_history(model_dir: str) -> list[dict]:
    if not FileSystems.exists(path(model_dir, HISTORY_FILE)):
        return []
    return read_json(model_dir, HISTORY_FILE)


def read_feature_params(model_dir: str) -> FeatureParams:
    return FeatureParams.from_json(storage.read_text(path(model_dir, FEATURE_PARAMS_FILE)))


def read_vocabulary(model_dir: str) -> list[str]:
    return read_json(model_dir, VOCABULARY_FILE)


def read_normalisation(model_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """The (mean, std) per band a classifier's inputs were normalised with: its feature set's train split."""
    return feature_set.normalisation(read_json(model_dir, STATS_FILE), model_dir)


def read_encoder_description(model_dir: str) -> dict:
    """{architecture, width} of a pretrained encoder folder."""
    return read_json(model_dir, ENCODER_DESCRIPTION_FILE)


def copy_feature_set_files(features_dir: str, model_dir: str) -> None:
    """The feature set's parameters, normalisation statistics and vocabulary travel with the model (a
    classifier or an encoder): what export needs to rebuild the front end."""
    for source, name in ((feature_set.PARAMS_FILE, FEATURE_PARAMS_FILE), (STATS_FILE, STATS_FILE),
                         (VOCABULARY_FILE, VOCABULARY_FILE)):
        storage.write_text(path(model_dir, name), storage.read_text(join(features_dir, source)))
