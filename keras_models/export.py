"""A trained model as a self-contained tagger of raw audio: waveform in, clip scores, patch scores, patch
start times and embeddings out. The log-mel front end of the training run's FeatureParams, its
normalisation statistics, patching (short clips repeated, as extraction does) and the clip aggregation are
inside the model, in TensorFlow ops, so neither this repository nor its feature job is needed to use it.

    python -m keras_models.export --model MODEL_DIR --output_dir OUT [--aggregation mean] [--tflite]

MODEL_DIR is a classifier folder (keras_models.train: model.keras) or a pretrained encoder folder
(contrastive or separation-based SSL: encoder.keras; then there are no scores, only embeddings). OUT holds:

  saved_model/      SavedModel; signature `serving_default`: waveform [clips, samples] float32 at the
                    feature sample rate (clips of one length) -> clip_scores [clips, classes],
                    patch_scores [clips, patches, classes], patch_starts [clips, patches] (seconds),
                    embedding [clips, patches, dim] (the encoder's h per patch); signature `embed`:
                    waveform and hop_frames (int32) -> embedding and patch_starts, patches every
                    hop_frames frames (finer than training's hop for timestamp embeddings)
  tagger.keras      the same model as Keras (needs this package for its front-end layers)
  tagger.tflite     with --tflite: the same signature for LiteRT/TFLite
  export.json       sample rate, vocabulary, aggregation, feature parameters, embedding size, files
  vocabulary.json, feature_params.json   as in a model folder (what the Beam tagging job reads)
  _COMPLETE.json    the folder is published whole (beam_jobs.contracts.publish): a killed or repeated export
                    is refused by readers, and exporting again into the folder replaces it
"""
from __future__ import annotations

import argparse
import dataclasses
import json

import keras
import numpy as np
import tensorflow as tf

from beam_jobs.contracts import storage
from beam_jobs.contracts.aggregation import AGGREGATIONS, LOG_FLOOR, check_aggregation
from beam_jobs.contracts.model_folder import (FEATURE_PARAMS_FILE, VOCABULARY_FILE, read_feature_params,
                                              read_normalisation, read_vocabulary)
from beam_jobs.contracts.features import analysis_window, log_of, mel_filterbank
from beam_jobs.contracts.params import PEAK_HEAD_ROOM, FeatureParams
from beam_jobs.contracts.publish import check_complete, publishing
from beam_jobs.contracts.storage import join
from beam_jobs.contracts import model_folder
from keras_models.model_folder import load_encoder, load_model

SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "tagger.keras"
TFLITE_FILE = "tagger.tflite"
EXPORT_FILE = "export.json"
OUTPUTS = ("clip_scores", "patch_scores", "patch_starts", "embedding")
PACKAGE = "sound_event_tagger"
NETWORK = "network"  # the patch model inside the tagger


def tf_log_mel(waveform, params: FeatureParams):
    """[clips, samples] -> [clips, frames, n_mels]: beam_jobs.contracts.features.log_mel_spectrogram in
    TensorFlow ops (centred STFT, the window in the middle of each n_fft frame, Slaney mel, log)."""
    half = params.n_fft // 2
    padded = tf.pad(waveform, [[0, 0], [half, half + params.n_fft]])
    offset = (params.n_fft - params.win_length) // 2
    frames_count = 1 + tf.shape(waveform)[1] // params.hop_length
    frames = tf.signal.frame(padded[:, offset:], params.win_length, params.hop_length)[:, :frames_count]
    spectrum = tf.signal.rfft(frames * analysis_window(params), fft_length=[params.n_fft])
    power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
    if params.spectrum_power == 1.0:
        power = tf.math.sqrt(power)
    return log_of(tf.linalg.matmul(power, mel_filterbank(params)) + params.log_offset, params, tf.math)


def normalize_waveform(waveform, params: FeatureParams):
    """Each clip (row) normalised as beam_jobs.contracts.features.normalize_waveform does."""
    if not params.normalize_waveform:
        return waveform
    centred = waveform - tf.reduce_mean(waveform, axis=1, keepdims=True)
    return centred / (tf.reduce_max(tf.abs(centred), axis=1, keepdims=True) + PEAK_HEAD_ROOM)


def replicate_to_patch(waveform, params: FeatureParams):
    """Clips shorter than one patch repeated end to end (beam_jobs.contracts.features.replicate_to_length)."""
    samples = tf.shape(waveform)[1]
    tf.debugging.assert_positive(samples, message="empty waveform")
    repeats = -(-params.patch_samples // samples)
    return tf.cond(samples < params.patch_samples,
                   lambda: tf.tile(waveform, [1, repeats])[:, :params.patch_samples], lambda: waveform)


@keras.saving.register_keras_serializable(package=PACKAGE)
class WaveformPatches(keras.layers.Layer):
    """[clips, samples] waveforms -> ([clips * patches, patch_frames, n_mels] normalised log-mel patches,
    [clips, patches] patch start times in seconds)."""

    def __init__(self, feature_params: dict, **kwargs):
        super().__init__(**kwargs)
        self.feature_params = feature_params
        self.params = dataclasses.replace(FeatureParams(**feature_params), whole_clips=False)
        self.mean = self.add_weight(shape=(self.params.n_mels,), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(self.params.n_mels,), initializer="ones", trainable=False, name="std")

    def call(self, waveform, hop_frames=None):
        """`hop_frames`: the patch hop, by default the training run's (the embedding signature takes a finer
        one for timestamp embeddings)."""
        params = self.params
        hop = params.patch_hop_frames if hop_frames is None else hop_frames
        waveform = replicate_to_patch(normalize_waveform(waveform, params), params)
        log_mel = (tf_log_mel(waveform, params) - self.mean) / self.std
        patches = tf.signal.frame(log_mel, params.patch_frames, hop, axis=1)
        count = tf.shape(patches)[1]
        starts = tf.cast(tf.range(count) * hop * params.hop_length, tf.float32) / params.sample_rate
        flat = tf.reshape(patches, [-1, params.patch_frames, params.n_mels])
        return flat, tf.tile(starts[None], [tf.shape(waveform)[0], 1])

    def get_config(self):
        return {**super().get_config(), "feature_params": self.feature_params}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ClipPooling(keras.layers.Layer):
    """Per-patch outputs [clips * patches, n] -> ([clips, patches, n], the clips' aggregate [clips, n]) with
    beam_jobs.contracts.aggregation's rule (mean, or geometric mean of scores floored at LOG_FLOOR)."""

    def __init__(self, aggregation: str = "mean", **kwargs):
        super().__init__(**kwargs)
        self.aggregation = check_aggregation(aggregation)

    def call(self, values, patch_starts):
        per_patch = tf.reshape(values, [tf.shape(patch_starts)[0], tf.shape(patch_starts)[1], -1])
        if self.aggregation == "geometric_mean":
            return per_patch, tf.exp(tf.reduce_mean(tf.math.log(tf.maximum(per_patch, LOG_FLOOR)), axis=1))
        return per_patch, tf.reduce_mean(per_patch, axis=1)

    def get_config(self):
        return {**super().get_config(), "aggregation": self.aggregation}


def _embedding_model(model: keras.Model) -> keras.Model:
    """patch -> (scores, h) for a classifier of keras_models.architectures.classifier (h: the input of its
    hidden layer, or of its dropout layer)."""
    names = {layer.name for layer in model.layers}
    embedding = model.get_layer("hidden" if "hidden" in names else "dropout").input
    return keras.Model(model.input, {"scores": model.output, "embedding": embedding}, name=NETWORK)


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """What export needs from a classifier or encoder folder."""

    network: keras.Model  # patch -> {"embedding"[, "scores"]}
    params: FeatureParams
    vocabulary: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray


def read_model_folder(model_dir: str) -> ModelSource:
    if tf.io.gfile.exists(model_folder.path(model_dir, model_folder.MODEL_FILE)):
        network = _embedding_model(load_model(model_dir))
        vocabulary = tuple(read_vocabulary(model_dir))
    elif tf.io.gfile.exists(model_folder.path(model_dir, model_folder.ENCODER_FILE)):
        encoder = load_encoder(model_dir)
        network, vocabulary = keras.Model(encoder.input, {"embedding": encoder.output}, name=NETWORK), ()
    else:
        raise FileNotFoundError(f"{model_dir}: neither {model_folder.MODEL_FILE} nor {model_folder.ENCODER_FILE}; "
                                f"is it a model folder?")
    mean, std = read_normalisation(model_dir)
    return ModelSource(network, read_feature_params(model_dir), vocabulary, mean, std)


def build_tagger(source: ModelSource, aggregation: str = "mean") -> keras.Model:
    """The waveform model: [clips, samples] -> dict of OUTPUTS (no scores for an encoder)."""
    waveform = keras.Input(shape=(None,), name="waveform")
    front_end = WaveformPatches(dataclasses.asdict(source.params), name="front_end")
    patches, starts = front_end(waveform)
    front_end.set_weights([source.mean, source.std])
    network = source.network(patches)
    outputs = {"patch_starts": keras.layers.Identity(name="patch_starts")(starts)}
    outputs["embedding"], _ = ClipPooling(name="embedding_pooling")(network["embedding"], starts)
    if "scores" in network:
        outputs["patch_scores"], outputs["clip_scores"] = ClipPooling(aggregation, name="clip_pooling")(
            network["scores"], starts)
    return keras.Model(waveform, outputs, name="tagger")


def serving_function(tagger: keras.Model):
    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform")])
    def serve(waveform):
        return {name: tf.identity(value, name=name) for name, value in tagger(waveform, training=False).items()}

    return serve


def embedding_function(tagger: keras.Model):
    """The `embed` signature: waveform and a patch hop in frames -> per-patch embeddings and start times."""
    front_end, network = tagger.get_layer("front_end"), tagger.get_layer(NETWORK)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="waveform"),
                                  tf.TensorSpec([], tf.int32, name="hop_frames")])
    def embed(waveform, hop_frames):
        tf.debugging.assert_positive(hop_frames, message="hop_frames must be positive")
        patches, starts = front_end(waveform, hop_frames=hop_frames)
        embedding = network(patches, training=False)["embedding"]
        return {"embedding": tf.reshape(embedding, [tf.shape(starts)[0], tf.shape(starts)[1], -1]),
                "patch_starts": tf.identity(starts)}

    return embed


def describe(source: ModelSource, aggregation: str, tagger: keras.Model) -> dict:
    return {"sample_rate": source.params.sample_rate, "vocabulary": list(source.vocabulary),
            "aggregation": aggregation, "feature_params": dataclasses.asdict(source.params),
            "embedding_size": int(source.network.output["embedding"].shape[-1]), "outputs": sorted(tagger.output)}


def export(model_dir: str, output_dir: str, aggregation: str = "mean", tflite: bool = False) -> dict:
    """Writes OUT's files (module docstring); returns export.json's content."""
    source = read_model_folder(model_dir)
    tagger = build_tagger(source, check_aggregation(aggregation))
    with publishing(output_dir, "export") as publication:  # a killed or repeated export is never half read
        staging = publication.staging
        tagger.save(join(staging, KERAS_FILE))
        module = tf.Module()
        module.tagger, module.serve, module.embed = tagger, serving_function(tagger), embedding_function(tagger)
        tf.saved_model.save(module, join(staging, SAVED_MODEL_DIR),
                            signatures={"serving_default": module.serve, "embed": module.embed})
        files = [SAVED_MODEL_DIR, KERAS_FILE]
        if tflite:
            storage.write_bytes(join(staging, TFLITE_FILE), to_tflite(join(staging, SAVED_MODEL_DIR)))
            files.append(TFLITE_FILE)
        description = {**describe(source, aggregation, tagger), "files": files, "source": model_dir}
        storage.write_text(join(staging, EXPORT_FILE), json.dumps(description, indent=1))
        storage.write_text(join(staging, VOCABULARY_FILE), json.dumps(list(source.vocabulary)))
        storage.write_text(join(staging, FEATURE_PARAMS_FILE), source.params.to_json())
        publication.summary.update(source=model_dir, aggregation=aggregation, files=files)
    return description


def to_tflite(saved_model_dir: str) -> bytes:
    """LiteRT/TFLite flatbuffer of the serving signature, weights frozen into constants (converting the
    SavedModel directly keeps them as resource variables that the interpreter leaves uninitialised)."""
    loaded = tf.saved_model.load(saved_model_dir)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([loaded.signatures["serving_default"]], loaded)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


def is_export(folder: str) -> bool:
    return tf.io.gfile.exists(join(folder, EXPORT_FILE))


class Tagger:
    """A waveform tagger ready for inference, from an export folder (its SavedModel) or directly from a
    classifier or encoder folder (built in memory, as export would write it)."""

    def __init__(self, folder: str, aggregation: str = "mean"):
        if is_export(folder):
            check_complete(folder, "an export (keras_models.export)")
            self.description = json.loads(storage.read_text(join(folder, EXPORT_FILE)))
            signatures = tf.saved_model.load(join(folder, SAVED_MODEL_DIR)).signatures
            self.serve, self.embed_function = signatures["serving_default"], signatures["embed"]
        else:
            source = read_model_folder(folder)
            tagger = build_tagger(source, check_aggregation(aggregation))
            self.description = describe(source, aggregation, tagger)
            self.serve, self.embed_function = serving_function(tagger), embedding_function(tagger)
        self.sample_rate = int(self.description["sample_rate"])
        self.vocabulary = tuple(self.description["vocabulary"])
        self.embedding_size = int(self.description["embedding_size"])
        self.feature_params = self.description["feature_params"]
        self.patch_seconds = FeatureParams(**self.feature_params).patch_seconds

    def __call__(self, waveforms) -> dict[str, np.ndarray]:
        """[clips, samples] (or one clip, [samples]) at `sample_rate` -> dict of OUTPUTS as numpy arrays."""
        waveforms = np.asarray(waveforms, dtype=np.float32)
        batch = waveforms[None] if waveforms.ndim == 1 else waveforms
        outputs = {name: value.numpy() for name, value in self.serve(waveform=tf.constant(batch)).items()}
        return {name: value[0] for name, value in outputs.items()} if waveforms.ndim == 1 else outputs

    def embed(self, waveforms, hop_frames: int) -> dict[str, np.ndarray]:
        """[clips, samples] -> {embedding [clips, patches, dim], patch_starts [clips, patches]}, patches every
        `hop_frames` frames."""
        outputs = self.embed_function(waveform=tf.constant(np.asarray(waveforms, dtype=np.float32)),
                                      hop_frames=tf.constant(hop_frames, tf.int32))
        return {name: value.numpy() for name, value in outputs.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a classifier or encoder folder")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--aggregation", default="mean", choices=AGGREGATIONS)
    parser.add_argument("--tflite", action="store_true", help="also write a LiteRT/TFLite file")
    args = parser.parse_args(argv)
    description = export(args.model, args.output_dir, args.aggregation, args.tflite)
    print(f"exported {args.model} -> {args.output_dir}: {', '.join(description['files'])} "
          f"({len(description['vocabulary'])} classes, embedding {description['embedding_size']}, "
          f"waveform at {description['sample_rate']} Hz)")
    return description


if __name__ == "__main__":
    main()
