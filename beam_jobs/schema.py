"""The TFRecord schema: one `tf.train.Example` per log-mel patch, for every supervision type.

The Beam writer calls `encode_patch`; the tf.data reader calls `parse_patches`. Nothing else in the
project names these features.

- clip_id (bytes), patch_index (int64)
- logmel (bytes): float32 little-endian, C order, shape `logmel_shape` = [frames, bands]. Raw bytes
  instead of a FloatList: 10x faster to write and to parse for ~10k floats per patch.
- labels (float, n_classes): multi-hot, one-hot or soft targets.
- label_mask (float, n_classes): 1 where the label contributes to the loss (all ones for clean
  labels, zeros on flagged implicit negatives for missing labels, all zeros when unlabelled).
"""
from __future__ import annotations

import numpy as np

CLIP_ID = "clip_id"
PATCH_INDEX = "patch_index"
LOGMEL = "logmel"
LOGMEL_SHAPE = "logmel_shape"
LABELS = "labels"
LABEL_MASK = "label_mask"

SHARD_SUFFIX = ".tfrecord"


def shard_pattern(features_dir: str, split: str) -> str:
    """Glob of one split's shards, as written by the extraction job."""
    return f"{features_dir.rstrip('/')}/{split}-*{SHARD_SUFFIX}"


def encode_patch(clip_id: str, patch_index: int, logmel: np.ndarray, labels: np.ndarray,
                 label_mask: np.ndarray) -> bytes:
    from tensorflow.core.example import example_pb2  # heavy import, only where Examples are built

    example = example_pb2.Example()
    feature = example.features.feature
    feature[CLIP_ID].bytes_list.value.append(clip_id.encode("utf-8"))
    feature[PATCH_INDEX].int64_list.value.append(int(patch_index))
    feature[LOGMEL].bytes_list.value.append(np.ascontiguousarray(logmel, dtype="<f4").tobytes())
    feature[LOGMEL_SHAPE].int64_list.value.extend(logmel.shape)
    feature[LABELS].float_list.value.extend(np.asarray(labels, dtype=np.float32).tolist())
    feature[LABEL_MASK].float_list.value.extend(np.asarray(label_mask, dtype=np.float32).tolist())
    return example.SerializeToString()


def decode_patch(serialized: bytes) -> dict:
    """Numpy view of one Example (for tests and Beam jobs that read features back)."""
    from tensorflow.core.example import example_pb2

    example = example_pb2.Example.FromString(serialized)
    feature = example.features.feature
    shape = tuple(feature[LOGMEL_SHAPE].int64_list.value)
    return {
        CLIP_ID: feature[CLIP_ID].bytes_list.value[0].decode("utf-8"),
        PATCH_INDEX: feature[PATCH_INDEX].int64_list.value[0],
        LOGMEL: np.frombuffer(feature[LOGMEL].bytes_list.value[0], dtype="<f4").reshape(shape),
        LABELS: np.asarray(feature[LABELS].float_list.value, dtype=np.float32),
        LABEL_MASK: np.asarray(feature[LABEL_MASK].float_list.value, dtype=np.float32),
    }


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
