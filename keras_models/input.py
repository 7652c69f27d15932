"""tf.data input from the extraction job's TFRecords (schema in beam_jobs.schema)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import tensorflow as tf

from beam_jobs import schema
from beam_jobs.extract import COUNTS_FILE, PARAMS_FILE, STATS_FILE, VOCABULARY_FILE
from beam_jobs.params import FeatureParams

NORMALISATION_SPLIT = "train"


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """What a features folder holds, read from its small JSON files."""

    directory: str
    params: FeatureParams
    vocabulary: tuple[str, ...]
    counts: dict
    mean: np.ndarray  # per band, from the training split
    std: np.ndarray

    @property
    def n_classes(self) -> int:
        return len(self.vocabulary)

    @property
    def input_shape(self) -> tuple[int, int]:
        return self.params.patch_frames, self.params.n_mels

    def patches(self, split: str) -> int:
        return int(self.counts.get(split, {}).get("patches", 0))

    def files(self, split: str) -> list[str]:
        files = sorted(tf.io.gfile.glob(schema.shard_pattern(self.directory, split)))
        if not files or self.patches(split) == 0:
            raise ValueError(f"{self.directory}: no patches for split {split!r} "
                             f"(splits with patches: {[s for s in self.counts if self.patches(s)]})")
        return files


def _read_json(directory: str, name: str):
    path = f"{directory.rstrip('/')}/{name}"
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"{path}: missing; is {directory} the output of beam_jobs.extract?")
    with tf.io.gfile.GFile(path) as handle:
        return json.load(handle)


def load_feature_set(directory: str) -> FeatureSet:
    stats = _read_json(directory, STATS_FILE)
    if not stats.get(NORMALISATION_SPLIT, {}).get("frames"):
        raise ValueError(f"{directory}/{STATS_FILE}: no '{NORMALISATION_SPLIT}' frames to normalise with")
    train = stats[NORMALISATION_SPLIT]
    with tf.io.gfile.GFile(f"{directory.rstrip('/')}/{PARAMS_FILE}") as handle:
        params = FeatureParams.from_json(handle.read())
    return FeatureSet(directory=directory, params=params,
                      vocabulary=tuple(_read_json(directory, VOCABULARY_FILE)),
                      counts=_read_json(directory, COUNTS_FILE),
                      mean=np.asarray(train["mean"], dtype=np.float32),
                      std=np.maximum(np.asarray(train["std"], dtype=np.float32), 1e-3))


def _records(features: FeatureSet, split: str, shuffle: bool, seed: int, shuffle_buffer: int) -> tf.data.Dataset:
    """The split's serialized examples, read from its shards in parallel; shuffled across and within
    shards when `shuffle`."""
    files = features.files(split)
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        dataset = dataset.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(files)),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset


def patch_dataset(features: FeatureSet, split: str, batch_size: int, shuffle: bool = False,
                  seed: int = 0, shuffle_buffer: int = 4096) -> tf.data.Dataset:
    """Batches of dicts: logmel (normalised, [batch, frames, bands]), labels, label_mask, clip_id, patch_index."""
    if features.params.whole_clips:
        raise ValueError(f"{features.directory} holds whole clips (FeatureParams.whole_clips); read it with "
                         "clip_dataset, or extract patches")
    dataset = _records(features, split, shuffle, seed, shuffle_buffer)
    frames, bands = features.input_shape

    def parse(serialized):
        parsed = schema.parse_patches(serialized, frames, bands, features.n_classes)
        parsed[schema.LOGMEL] = normalise(features, parsed[schema.LOGMEL])
        return parsed

    batches = -(-features.patches(split) // batch_size)  # counts.json knows it; Keras then knows epoch ends
    return (dataset.batch(batch_size)
            .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
            .apply(tf.data.experimental.assert_cardinality(batches))
            .prefetch(tf.data.AUTOTUNE))


def supervised(dataset: tf.data.Dataset, with_mask: bool = False) -> tf.data.Dataset:
    """(logmel, targets) pairs for Keras `fit`; targets are the labels, or [labels | label_mask] for
    losses that read the mask (keras_models.losses.masked_bce)."""
    if with_mask:
        return dataset.map(lambda batch: (batch[schema.LOGMEL],
                                          tf.concat([batch[schema.LABELS], batch[schema.LABEL_MASK]], axis=-1)))
    return dataset.map(lambda batch: (batch[schema.LOGMEL], batch[schema.LABELS]))


def clip_dataset(features: FeatureSet, split: str, shuffle: bool = False, seed: int = 0,
                 channels: tuple[int, int] | None = None, shuffle_buffer: int = 0) -> tf.data.Dataset:
    """Whole-clip examples (FeatureParams.whole_clips), one at a time: dicts of logmel ([frames, bands], the
    raw log domain: augmentations such as mix-back need it; `normalise` afterwards), labels, clip_id, and
    with `channels` = (checkpoints, M) the separated channels (beam_jobs.separate). `shuffle_buffer`: in
    clips, 0 = the whole split."""
    if not features.params.whole_clips:
        raise ValueError(f"{features.directory} holds patches; extract with whole_clips=True for clip examples")
    dataset = _records(features, split, shuffle, seed, shuffle_buffer=shuffle_buffer or features.patches(split))
    return dataset.map(lambda serialized: schema.parse_clip(serialized, features.params.n_mels, features.n_classes,
                                                            channels),
                       num_parallel_calls=tf.data.AUTOTUNE)


def whole_clips_for_batches(features: FeatureSet, split: str, batch_size: int) -> int:
    """The split's clip count (whole-clip features); fails when it is fewer than one batch."""
    clips = features.counts.get(split, {}).get("written", 0)
    if clips < batch_size:
        raise ValueError(f"{features.directory}: {clips} clips in {split!r}, fewer than one batch of {batch_size}")
    return clips


def normalise(features: FeatureSet, logmel):
    """Per-band standardisation with the train split's statistics (what patch_dataset applies)."""
    return (logmel - tf.constant(features.mean)) / tf.constant(features.std)
