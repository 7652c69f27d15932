import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_models.layers.pooling import SubsamplingPool, binomial_kernel, subsampling_pool


def random_input(shape=(3, 12, 10, 4), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


@pytest.mark.parametrize("variant", ["blurpool3", "blurpool5", "tlpf", "tlpf_aps"])
def test_low_pass_kernels_are_positive_and_sum_to_one(variant):
    layer = subsampling_pool(variant)
    layer(random_input())
    if variant == "tlpf":  # make the trainable taps non-uniform first
        layer.tap_logits.assign(np.random.default_rng(1).standard_normal((25, 4)).astype("float32"))
    kernel = keras.ops.convert_to_numpy(layer.kernel())
    assert (kernel > 0).all()
    np.testing.assert_allclose(kernel.sum(axis=(0, 1)), 1.0, rtol=1e-5)


def test_binomial_kernel_values():
    np.testing.assert_allclose(binomial_kernel(3), np.outer([1, 2, 1], [1, 2, 1]) / 16)
    assert binomial_kernel(5)[2, 2] == pytest.approx(36 / 256)


@pytest.mark.parametrize("variant", ["max", "blurpool3", "blurpool5", "tlpf", "aps", "aps_only", "tlpf_aps"])
@pytest.mark.parametrize("shape", [(2, 12, 10, 3), (2, 13, 11, 3)])
def test_every_variant_halves_time_and_frequency(variant, shape):
    output = subsampling_pool(variant)(random_input(shape))
    assert tuple(output.shape) == (shape[0], (shape[1] + 1) // 2, (shape[2] + 1) // 2, shape[3])


def shifted_output_matches(layer, x, axis):
    """Is layer(roll(x, 1)) == roll(layer(x), k) for k in {0, 1}, for every example?"""
    reference = keras.ops.convert_to_numpy(layer(x))
    shifted = keras.ops.convert_to_numpy(layer(np.roll(x, 1, axis=axis)))
    return all(any(np.allclose(shifted[b], np.roll(reference[b], k, axis=axis - 1), atol=1e-5) for k in (0, 1))
               for b in range(len(x)))


@pytest.mark.parametrize("criterion", ["l1", "l2"])
@pytest.mark.parametrize("axis", [1, 2])
def test_aps_is_exactly_shift_equivariant_to_circular_shifts(criterion, axis):
    x = random_input((4, 16, 12, 3))
    aps = SubsamplingPool(selection="aps", criterion=criterion, padding="circular")
    assert shifted_output_matches(aps, x, axis)
    # With the trainable low-pass before the selection too. (Not with the fixed binomial: its even and odd taps
    # both sum to 8, so the four components of a non-negative map have equal l1 norms and rounding decides.)
    assert shifted_output_matches(subsampling_pool("tlpf_aps", padding="circular"), x, axis)


def test_plain_max_pool_is_not_shift_equivariant():
    x = random_input((4, 16, 12, 3))
    assert not shifted_output_matches(subsampling_pool("max"), x, axis=1)


def test_aps_picks_the_component_with_the_largest_norm_per_example():
    x = np.zeros((2, 4, 4, 1), "float32")
    x[0, 1::2, 1::2] = 5.0  # example 0: energy in the odd/odd component
    x[1, 0::2, 1::2] = 3.0  # example 1: in the even/odd component
    aps = SubsamplingPool(selection="aps")
    selected = keras.ops.convert_to_numpy(aps._polyphase_select(keras.ops.convert_to_tensor(x)))
    np.testing.assert_array_equal(selected[0], np.full((2, 2, 1), 5.0))
    np.testing.assert_array_equal(selected[1], np.full((2, 2, 1), 3.0))


def test_gradients_flow_through_the_trainable_taps():
    layer = subsampling_pool("tlpf")
    x = tf.constant(random_input())
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer(x)))
    gradient = tape.gradient(loss, layer.tap_logits)
    assert gradient is not None and np.abs(gradient.numpy()).sum() > 0


def test_layers_survive_keras_serialisation(tmp_path):
    inputs = keras.Input((12, 10, 2))
    model = keras.Model(inputs, subsampling_pool("tlpf_aps", name="pool")(inputs))
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    x = random_input((2, 12, 10, 2))
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    with pytest.raises(ValueError, match="Unknown pooling variant"):
        subsampling_pool("median")


def test_the_authors_padding_and_initialisation_are_the_defaults():
    ones = np.ones((1, 12, 12, 3), np.float32)
    blurred = np.asarray(subsampling_pool("blurpool5")(ones))
    # Zero padding (TensorFlow's SAME, shift_sec's choice): the filter loses mass at the border only
    np.testing.assert_allclose(blurred[0, 2:-1, 2:-1], 1.0, rtol=1e-6)
    assert blurred[0, 0, 0, 0] < 0.9
    reflected = np.asarray(subsampling_pool("blurpool5", padding="reflect")(ones))
    np.testing.assert_allclose(reflected, 1.0, rtol=1e-6)
    assert subsampling_pool("aps").lowpass == "binomial5" and subsampling_pool("aps_only").lowpass is None
    trainable = subsampling_pool("tlpf")
    trainable.build((None, 12, 12, 64))
    logits = np.asarray(trainable.tap_logits)
    assert 0.005 < logits.std() < 0.015 and abs(logits.mean()) < 0.003  # N(0, 0.01)
