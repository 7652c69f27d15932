import keras
import numpy as np
import pytest
from keras import ops

from beam_jobs.contracts.params import FeatureParams
from keras_models import augment, contrastive


def numpy_nt_xent(z_a, z_b, temperature):
    z = np.concatenate([z_a, z_b])
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z_a)
    losses = []
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        similarities = np.array([z[i] @ z[j] / temperature for j in range(2 * n) if j != i])
        others = [j for j in range(2 * n) if j != i]
        losses.append(-(z[i] @ z[positive] / temperature - np.log(np.exp(similarities).sum())))
        assert positive in others
    return np.mean(losses)


@pytest.mark.parametrize("temperature", [0.2, 1.0])
def test_nt_xent_matches_a_direct_numpy_computation(temperature):
    rng = np.random.default_rng(0)
    z_a, z_b = rng.normal(size=(4, 8)).astype("float32"), rng.normal(size=(4, 8)).astype("float32")
    loss = float(ops.convert_to_numpy(contrastive.nt_xent(z_a, z_b, temperature)))
    assert loss == pytest.approx(numpy_nt_xent(z_a, z_b, temperature), rel=1e-5)
    aligned = float(ops.convert_to_numpy(contrastive.nt_xent(z_a, z_a + 0.01, temperature)))
    assert aligned < loss  # matching views are easier to identify than unrelated ones


PARAMS = FeatureParams()


def patches(seed=0, batch=3):
    rng = np.random.default_rng(seed)
    return np.log10(rng.gamma(1.0, 1.0, size=(batch, 101, 96)) + PARAMS.log_offset).astype("float32")


def test_mix_back_preserves_energy_and_is_identity_without_background():
    foreground, background = patches(0), patches(1) + 3.0  # a much louder background
    unchanged = ops.convert_to_numpy(augment.mix_back(foreground, background, PARAMS, a_max=0.0))
    np.testing.assert_allclose(unchanged, foreground, atol=1e-4)
    mixed = ops.convert_to_numpy(augment.mix_back(foreground, background, PARAMS, 0.05, keras.random.SeedGenerator(1)))
    linear_mixed, linear_foreground = 10.0**mixed - PARAMS.log_offset, 10.0**foreground - PARAMS.log_offset
    # (1 - a) E_f + a E_f: the mix keeps the foreground's energy, whatever the background's level
    np.testing.assert_allclose(linear_mixed.mean(axis=(1, 2)), linear_foreground.mean(axis=(1, 2)), rtol=1e-3)
    assert not np.allclose(mixed, foreground, atol=1e-3)
    assert np.all(linear_mixed >= 0.95 * linear_foreground - 1e-5)  # the foreground keeps at least 1 - a_max


def test_compander_scales_each_patch_by_a_factor_between_alpha_and_one():
    x = patches(batch=64)
    np.testing.assert_allclose(ops.convert_to_numpy(augment.compander(x, 1.0)), x)
    companded = ops.convert_to_numpy(augment.compander(x, 0.75, keras.random.SeedGenerator(3)))
    factors = companded[:, 0, 0] / x[:, 0, 0]
    np.testing.assert_allclose(companded, factors[:, None, None] * x, rtol=1e-5)
    assert factors.min() >= 0.75 and factors.max() <= 1.0 and factors.std() > 0.03  # drawn per patch


def test_mix_back_backgrounds_are_other_clips_drawn_independently():
    others = [ops.convert_to_numpy(augment.random_others(16, keras.random.SeedGenerator(seed))) for seed in (1, 2)]
    for drawn in others:
        assert not np.any(drawn == np.arange(16)) and drawn.min() >= 0 and drawn.max() < 16
    assert not np.array_equal(*others)


def test_gaussian_noise_has_the_requested_spread():
    x = patches()
    noisy = ops.convert_to_numpy(augment.gaussian_noise(x, 0.01, keras.random.SeedGenerator(2)))
    assert np.std(noisy - x) == pytest.approx(0.01, rel=0.05)


def test_spec_augment_masks_one_time_and_one_frequency_band_with_the_mean():
    x = patches(batch=8)
    masked = ops.convert_to_numpy(augment.spec_augment(x, 20, 10, keras.random.SeedGenerator(3)))
    for original, result in zip(x, masked):
        changed = ~np.isclose(original, result)
        frames = np.flatnonzero(changed.all(axis=1))  # frames masked across every band
        bands = np.flatnonzero(changed.all(axis=0))
        assert len(frames) <= 20 and len(bands) <= 10
        if len(frames):
            assert np.all(np.diff(frames) == 1)  # one contiguous mask
        rows = np.zeros_like(changed)
        rows[frames, :], rows[:, bands] = True, True
        assert not np.any(changed & ~rows)  # nothing outside the masks moved
        np.testing.assert_allclose(result[changed], original.mean(), rtol=1e-5)


def test_projection_head_outputs_unit_vectors():
    head = contrastive.projection_head(64)
    z = ops.convert_to_numpy(head(np.random.default_rng(0).normal(size=(5, 64)).astype("float32")))
    assert z.shape == (5, 512)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-5)


def test_temporal_proximity_pairs_are_two_patches_of_the_clip():
    clip = np.arange(300 * 4, dtype="float32").reshape(300, 4)  # frame i holds 4i..4i+3
    generator = keras.random.SeedGenerator(4)
    starts = set()
    for _ in range(20):
        first, second = (ops.convert_to_numpy(view) for view in augment.temporal_proximity_pair(clip, 101, False, generator))
        for view in (first, second):
            start = int(view[0, 0]) // 4
            np.testing.assert_array_equal(view, clip[start:start + 101])
            starts.add(start)
    assert len(starts) > 10  # crops land anywhere in the clip
    same_a, same_b = augment.temporal_proximity_pair(clip, 101, True, generator)
    np.testing.assert_array_equal(ops.convert_to_numpy(same_a), ops.convert_to_numpy(same_b))
    exact = ops.convert_to_numpy(augment.temporal_proximity_pair(clip[:101], 101, False, generator)[1])
    np.testing.assert_array_equal(exact, clip[:101])  # a one-patch clip has one crop


def test_random_resized_crop_keeps_the_shape_and_is_identity_at_full_scale():
    x = patches(batch=4)
    whole = ops.convert_to_numpy(augment.random_resized_crop(x, scale=(1.0, 1.0), ratio=(1.0, 1.0)))
    np.testing.assert_allclose(whole, x, atol=1e-4)
    cropped = ops.convert_to_numpy(augment.random_resized_crop(x, seed=keras.random.SeedGenerator(5)))
    assert cropped.shape == x.shape and not np.allclose(cropped, x)
    # a zoomed-in crop cannot exceed the patch's own value range
    assert cropped.max() <= x.max() + 1e-4 and cropped.min() >= x.min() - 1e-4


def test_random_shift_moves_content_by_at_most_the_limits():
    x = np.tile(np.arange(101, dtype="float32")[None, :, None], (6, 1, 96))  # value = frame index
    shifted = ops.convert_to_numpy(augment.random_shift(x, 10, 0, keras.random.SeedGenerator(6)))
    offsets = shifted[:, 50, 0] - 50
    assert np.all(np.abs(offsets) <= 10) and len(set(offsets)) > 1
    for patch, offset in zip(shifted, offsets):  # interior frames moved rigidly, edges repeated
        np.testing.assert_array_equal(patch[20:80, 0], np.arange(20, 80) + offset)
