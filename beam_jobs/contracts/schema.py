"""The TFRecord schema: one `tf.train.Example` per log-mel patch, for every supervision type.

The Beam writer calls `encode_patch`; the tf.data reader calls `parse_patches`. Nothing else in the
project names these features.

- clip_id (bytes), patch_index (int64)
- logmel (bytes): float32 little-endian, C order, shape `logmel_shape` = [frames, bands]. Raw bytes
  instead of a FloatList: 10x faster to write and to parse for ~10k floats per patch.
- labels (float, n_classes): multi-hot, one-hot or soft targets.
- label_mask (float, n_classes): 1 where the label contributes to the loss (all ones for clean
  labels, zeros on flagged implicit negatives for missing labels, all zeros when unlabelled).
- channels (bytes), channels_shape (int64) [checkpoints, M, frames, bands]: only in separated-view
  examples (beam_jobs.separate): the log-mels of the clip's separated channels, per separation checkpoint;
  float32 little-endian like logmel.
"""
from __future__ import annotations

import functools

import numpy as np

CLIP_ID = "clip_id"
PATCH_INDEX = "patch_index"
LOGMEL = "logmel"
LOGMEL_SHAPE = "logmel_shape"
LABELS = "labels"
LABEL_MASK = "label_mask"
CHANNELS = "channels"
CHANNELS_SHAPE = "channels_shape"

@functools.lru_cache(maxsize=65536)
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _feature_entry(name: str, kind: int, payload: bytes) -> bytes:
    """One `Features.feature` map entry: key = name, value = Feature{kind: List{value: payload}}.

    Feature's kinds: 1 bytes_list, 2 float_list, 3 int64_list; each list's values are field 1 (packed
    for numbers).
    """
    return _field(1, _field(1, name.encode()) + _field(2, _field(kind, _field(1, payload) if payload else b"")))


def _shape_bytes(array: np.ndarray) -> bytes:
    return b"".join(_varint(int(value)) for value in array.shape)


def encode_patch(clip_id: str, patch_index: int, logmel: np.ndarray, labels: np.ndarray,
                 label_mask: np.ndarray, channels: np.ndarray | None = None) -> bytes:
    """Serialized `tf.train.Example`, written directly in protobuf's wire format.

    The Beam workers thus need neither TensorFlow nor its protobuf classes (importing TensorFlow costs
    seconds per worker); tests check the bytes against TensorFlow's own parser.
    """
    entries = [
        _feature_entry(CLIP_ID, 1, clip_id.encode("utf-8")),
        _feature_entry(PATCH_INDEX, 3, _varint(int(patch_index))),
        _feature_entry(LOGMEL, 1, np.ascontiguousarray(logmel, dtype="<f4").tobytes()),
        _feature_entry(LOGMEL_SHAPE, 3, _shape_bytes(logmel)),
        _feature_entry(LABELS, 2, np.asarray(labels, dtype="<f4").tobytes()),
        _feature_entry(LABEL_MASK, 2, np.asarray(label_mask, dtype="<f4").tobytes()),
    ]
    if channels is not None:
        entries += [_feature_entry(CHANNELS, 1, np.ascontiguousarray(channels, dtype="<f4").tobytes()),
                    _feature_entry(CHANNELS_SHAPE, 3, _shape_bytes(channels))]
    return _field(1, b"".join(entries))  # Example.features


def decode_patch(serialized: bytes) -> dict:
    """Numpy view of one Example (for tests and Beam jobs that read features back)."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(serialized)
    feature = example.features.feature
    shape = tuple(feature[LOGMEL_SHAPE].int64_list.value)
    decoded = {
        CLIP_ID: feature[CLIP_ID].bytes_list.value[0].decode("utf-8"),
        PATCH_INDEX: feature[PATCH_INDEX].int64_list.value[0],
        LOGMEL: np.frombuffer(feature[LOGMEL].bytes_list.value[0], dtype="<f4").reshape(shape),
        LABELS: np.asarray(feature[LABELS].float_list.value, dtype=np.float32),
        LABEL_MASK: np.asarray(feature[LABEL_MASK].float_list.value, dtype=np.float32),
    }
    if CHANNELS in feature:
        decoded[CHANNELS] = np.frombuffer(feature[CHANNELS].bytes_list.value[0], dtype="<f4").reshape(
            tuple(feature[CHANNELS_SHAPE].int64_list.value))
    return decoded


def parse_patches(serialized, n_frames: int, n_bands: int, n_classes: int) -> dict:
    """tf.data parser for a batch of serialized Examples -> dict of dense tensors."""
    import tensorflow as tf

    spec = {
        CLIP_ID: tf.io.FixedLenFeature([], tf.string),
        PATCH_INDEX: tf.io.FixedLenFeature([], tf.int64),
        LOGMEL: tf.io.FixedLenFeature([], tf.string),
        LABELS: tf.io.FixedLenFeature([n_classes], tf.float32),
        LABEL_MASK: tf.io.FixedLenFeature([n_classes], tf.float32),
    }
    parsed = tf.io.parse_example(serialized, spec)
    logmel = tf.io.decode_raw(parsed[LOGMEL], tf.float32, little_endian=True)
    parsed[LOGMEL] = tf.reshape(logmel, [-1, n_frames, n_bands])
    return parsed


def parse_clip(serialized, n_bands: int, n_classes: int, channels: tuple[int, int] | None = None) -> dict:
    """tf.data parser for one serialized Example of any frame count (whole-clip examples); `channels` =
    (checkpoints, M) also parses the separated channels, [checkpoints, M, frames, bands]."""
    import tensorflow as tf

    spec = {
        CLIP_ID: tf.io.FixedLenFeature([], tf.string),
        LOGMEL: tf.io.FixedLenFeature([], tf.string),
        LOGMEL_SHAPE: tf.io.FixedLenFeature([2], tf.int64),
        LABELS: tf.io.FixedLenFeature([n_classes], tf.float32),
    }
    if channels:
        spec[CHANNELS] = tf.io.FixedLenFeature([], tf.string)
    parsed = tf.io.parse_single_example(serialized, spec)
    logmel = tf.io.decode_raw(parsed[LOGMEL], tf.float32, little_endian=True)
    parsed[LOGMEL] = tf.reshape(logmel, [-1, n_bands])
    if channels:
        separated = tf.io.decode_raw(parsed[CHANNELS], tf.float32, little_endian=True)
        parsed[CHANNELS] = tf.reshape(separated, [channels[0], channels[1], -1, n_bands])
    return parsed
