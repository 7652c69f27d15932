import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from beam_jobs.contracts.feature_set import load_feature_set
from keras_models import model_input
from keras_models.architectures import build_model
from keras_models.evaluate import predict_clips
from keras_models.shift import shift_consistency, shift_patches
from keras_models.study_reports import shift_invariance_reports


def test_vgg41_and_vgg42_sizes_and_pooling_layers():
    assert 1_150_000 < build_model("vgg41", (101, 96), 200).count_params() < 1_350_000
    assert 4_700_000 < build_model("vgg42", (101, 96), 200).count_params() < 5_100_000
    model = build_model("vgg41", (101, 96), 10, width=0.25, pooling="tlpf_aps")
    pools = [layer.name for layer in model.layers if layer.name.endswith("_tlpf_aps")]
    assert pools == ["block1_tlpf_aps", "block2_tlpf_aps", "block3_tlpf_aps"]
    assert model.get_layer("block4_2_relu").output.shape[1:3] == (13, 12)  # three halvings of 101 x 96
    with pytest.raises(ValueError, match="only uses max-pooling"):
        build_model("vgg_like", (101, 96), 10, pooling="aps")


def test_shift_moves_content_and_fills_with_the_mean():
    x = tf.reshape(tf.range(1, 13, dtype=tf.float32), [1, 4, 3])
    time = shift_patches(x, 1, axis=1).numpy()[0]
    np.testing.assert_array_equal(time[0], [0, 0, 0])
    np.testing.assert_array_equal(time[1:], x.numpy()[0, :3])
    frequency = shift_patches(x, 2, axis=2).numpy()[0]
    np.testing.assert_array_equal(frequency[:, :2], 0)
    np.testing.assert_array_equal(frequency[:, 2], x.numpy()[0, :, 0])


def test_consistency_of_a_constant_model_and_of_a_first_frame_model(features_dir):
    features = load_feature_set(features_dir)
    dataset = model_input.patch_dataset(features, "eval", 16)
    inputs = keras.Input(features.input_shape)
    constant = keras.Model(inputs, keras.layers.Dense(5, kernel_initializer="zeros", bias_initializer="ones")(
        keras.layers.Flatten()(inputs)) + keras.ops.arange(5.0))
    result = shift_consistency(constant, dataset)
    assert result == {axis: {"1": 100.0, "3": 100.0, "5": 100.0} for axis in ("time", "frequency")}
    # scores = the first frame's first 5 bands: a time shift zeroes them, so the top-1 becomes class 0
    first_frame = keras.Model(inputs, inputs[:, 0, :5])
    _, reference, _ = predict_clips(first_frame, dataset)
    result = shift_consistency(first_frame, dataset, shifts=(1,))
    assert result["time"]["1"] == pytest.approx(100.0 * np.mean(reference.argmax(axis=1) == 0))
    assert result["time"]["1"] < 100.0


def test_summary_reports_table_html_and_plot():
    rows = [{"pooling": pooling, "mixup_alpha": alpha, "mAP": 0.5, "d_prime": 1.2,
             "consistency": {"time": {"1": 90.0, "3": 80.0, "5": 70.0}, "frequency": {"1": 95.0, "3": 85.0, "5": 75.0}}}
            for pooling in ("max", "aps") for alpha in (0.0, 0.3)]
    rows = json.loads(json.dumps(rows))
    markdown, html, png = shift_invariance_reports(rows)
    assert "| aps + mixup 0.3 | 0.5000 | 1.200 | 90.0 | 80.0 | 70.0 | 95.0 | 85.0 | 75.0 |" in markdown
    assert "data:image/png;base64," in html and png.startswith(b"\x89PNG")
