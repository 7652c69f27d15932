import numpy as np
import tensorflow as tf

from beam_jobs import schema


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
