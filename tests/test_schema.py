import numpy as np
import tensorflow as tf

from beam_jobs.contracts import schema


def test_example_round_trips_through_numpy_and_tf_data_readers():
    rng = np.random.default_rng(0)
    logmel = rng.standard_normal((101, 96)).astype(np.float32)
    labels = np.array([1, 0, 1, 0], np.float32)
    mask = np.array([1, 1, 0, 1], np.float32)
    serialized = schema.encode_patch("clip-7", 3, logmel, labels, mask)

    decoded = schema.decode_patch(serialized)
    assert decoded[schema.CLIP_ID] == "clip-7" and decoded[schema.PATCH_INDEX] == 3
    np.testing.assert_array_equal(decoded[schema.LOGMEL], logmel)
    np.testing.assert_array_equal(decoded[schema.LABEL_MASK], mask)

    parsed = schema.parse_patches(tf.constant([serialized, serialized]), 101, 96, 4)
    assert parsed[schema.LOGMEL].shape == (2, 101, 96)
    np.testing.assert_array_equal(parsed[schema.LOGMEL][1].numpy(), logmel)
    np.testing.assert_array_equal(parsed[schema.LABELS][0].numpy(), labels)
    assert parsed[schema.CLIP_ID][0].numpy() == b"clip-7"


def test_separated_view_examples_carry_their_channels_through_both_readers():
    rng = np.random.default_rng(1)
    logmel = rng.standard_normal((150, 8)).astype(np.float32)
    channels = rng.standard_normal((2, 3, 150, 8)).astype(np.float32)
    labels = np.array([0, 1], np.float32)
    serialized = schema.encode_patch("clip-9", 0, logmel, labels, np.ones(2, np.float32), channels)

    decoded = schema.decode_patch(serialized)
    np.testing.assert_array_equal(decoded[schema.CHANNELS], channels)
    parsed = schema.parse_clip(tf.constant(serialized), 8, 2, channels=(2, 3))
    np.testing.assert_array_equal(parsed[schema.CHANNELS].numpy(), channels)
    np.testing.assert_array_equal(parsed[schema.LOGMEL].numpy(), logmel)
    assert schema.CHANNELS not in schema.parse_clip(tf.constant(serialized), 8, 2)
    assert schema.CHANNELS not in schema.decode_patch(schema.encode_patch("c", 0, logmel, labels, labels))
