"""tf.data input from a feature set's TFRecords (beam_jobs.contracts.feature_set, .schema)."""
from __future__ import annotations

import tensorflow as tf

from beam_jobs.contracts import schema
from beam_jobs.contracts.feature_set import FeatureSet


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
    clips = features.clips(split)
    if clips < batch_size:
        raise ValueError(f"{features.directory}: {clips} clips in {split!r}, fewer than one batch of {batch_size}")
    return clips


def normalise(features: FeatureSet, logmel):
    """Per-band standardisation with the train split's statistics (what patch_dataset applies)."""
    return (logmel - tf.constant(features.mean)) / tf.constant(features.std)
