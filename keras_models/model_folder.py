"""The model folder's Keras side: saving and loading the networks and the history callback. Its file names
and TensorFlow-free readers are the contract's (beam_jobs.contracts.model_folder)."""
from __future__ import annotations

import json

import keras

from beam_jobs.contracts.model_folder import (ENCODER_DESCRIPTION_FILE, ENCODER_FILE, HISTORY_FILE, MODEL_FILE, path,
                                              read_history, write_text)


class HistoryFile(keras.callbacks.Callback):
    """Appends each epoch's logs to history.json, so that a resumed run keeps the earlier epochs."""

    def __init__(self, model_dir: str):
        super().__init__()
        self.model_dir = model_dir

    def on_epoch_end(self, epoch, logs=None):
        history = [entry for entry in read_history(self.model_dir) if entry["epoch"] < epoch + 1]
        history.append({"epoch": epoch + 1, **{key: float(value) for key, value in (logs or {}).items()}})
        write_text(self.model_dir, HISTORY_FILE, json.dumps(history, indent=1))


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
