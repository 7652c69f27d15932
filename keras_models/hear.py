"""The HEAR 2021 common API (hearbenchmark.com) for any exported model: classifier or SSL encoder.

    import keras_models.hear as hear
    model = hear.load_model("EXPORT_OR_MODEL_DIR")
    scene = hear.get_scene_embeddings(audio, model)            # [n_sounds, scene_embedding_size]
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
                       # [n_sounds, n_timestamps, timestamp_embedding_size], [n_sounds, n_timestamps] (ms)

`audio`: [n_sounds, n_samples] float32 at `model.sample_rate` (a tf.Tensor or an array), sounds of one
length as the API gives them. The timestamp embeddings are the encoder's h of patches of the training
run's length (1 s for FSD50K) taken every ~50 ms (HEAR's suggested interval; 5 frames of 10 ms), stamped
at the patch centres; the scene embedding is the mean of h over the patches at the training run's hop
(0.5 s for FSD50K). Outputs are float32 tf.Tensors; each sound's embedding depends on it alone.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_models.export import Tagger


TIMESTAMP_HOP_SECONDS = 0.05


class HearModel(tf.Module):
    """An exported model with the attributes the HEAR API requires (a tf.Module, as its validator checks)."""

    def __init__(self, folder: str):
        super().__init__(name="sound_event_tagger")
        self.tagger = Tagger(folder)
        self.sample_rate = self.tagger.sample_rate
        self.scene_embedding_size = self.tagger.embedding_size
        self.timestamp_embedding_size = self.tagger.embedding_size
        self.patch_centre_ms = 1000.0 * self.tagger.patch_seconds / 2
        params = self.tagger.feature_params  # timestamp embeddings every ~50 ms (HEAR's suggestion)
        self.timestamp_hop_frames = max(1, round(TIMESTAMP_HOP_SECONDS * self.sample_rate / params["hop_length"]))


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
    """([n_sounds, n_timestamps, dim] embeddings, [n_sounds, n_timestamps] patch centres in ms), a patch
    every ~50 ms."""
    outputs = model.tagger.embed(_audio(audio), model.timestamp_hop_frames)
    timestamps = 1000.0 * outputs["patch_starts"] + model.patch_centre_ms
    return tf.constant(outputs["embedding"], tf.float32), tf.constant(timestamps, tf.float32)


def get_scene_embeddings(audio, model: HearModel) -> tf.Tensor:
    """[n_sounds, dim]: the mean of the embeddings of the sound's patches at the training run's hop (what
    the classifier's clip score aggregates)."""
    outputs = model.tagger(_audio(audio))
    return tf.constant(outputs["embedding"].mean(axis=1), tf.float32)
