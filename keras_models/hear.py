"""The HEAR 2021 common API (hearbenchmark.com) for any exported model: classifier or SSL encoder.

    import keras_models.hear as hear
    model = hear.load_model("EXPORT_OR_MODEL_DIR")
    scene = hear.get_scene_embeddings(audio, model)            # [n_sounds, scene_embedding_size]
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
                       # [n_sounds, n_timestamps, timestamp_embedding_size], [n_sounds, n_timestamps] (ms)

`audio`: [n_sounds, n_samples] float32 at `model.sample_rate` (a tf.Tensor or an array), sounds of one
length as the API gives them. The timestamp embeddings are the encoder's h of each patch (FeatureParams'
patch length and hop of the training run, e.g. 1 s and 0.5 s for FSD50K), stamped at the patch centres; the
scene embedding is their mean. Outputs are float32 tf.Tensors; each sound's embedding depends on it alone.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.export import Tagger


class HearModel(tf.Module):
    """An exported model with the attributes the HEAR API requires (a tf.Module, as its validator checks)."""

    def __init__(self, folder: str):
        super().__init__(name="sound_event_tagger")
        self.tagger = Tagger(folder)
        self.sample_rate = self.tagger.sample_rate
        self.scene_embedding_size = self.tagger.embedding_size
        self.timestamp_embedding_size = self.tagger.embedding_size
        self.patch_centre_ms = 1000.0 * self.tagger.patch_seconds / 2


def load_model(model_file_path: str = "") -> HearModel:
    """An export folder (keras_models.export) or a classifier or encoder folder."""
    if not model_file_path:
        raise ValueError("model_file_path: an export folder or a model folder is required")
    return HearModel(model_file_path)


def _audio(audio) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise ValueError(f"audio must be [n_sounds, n_samples] with samples, got shape {audio.shape}")
    return audio


def get_timestamp_embeddings(audio, model: HearModel) -> tuple[tf.Tensor, tf.Tensor]:
    """([n_sounds, n_timestamps, dim] embeddings, [n_sounds, n_timestamps] patch centres in ms)."""
    outputs = model.tagger(_audio(audio))
    timestamps = 1000.0 * outputs["patch_starts"] + model.patch_centre_ms
    return tf.constant(outputs["embedding"], tf.float32), tf.constant(timestamps, tf.float32)


def get_scene_embeddings(audio, model: HearModel) -> tf.Tensor:
    """[n_sounds, dim]: the mean of each sound's timestamp embeddings."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return tf.reduce_mean(embeddings, axis=1)
