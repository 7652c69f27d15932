import numpy as np
import pytest
from keras import ops

from keras_models import losses
from keras_models.losses import LossParams, SupervisionLoss

TARGETS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32)
PROBS = np.array([[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [0.05, 0.9, 0.05]], dtype=np.float32)
P_TARGET = np.array([0.7, 0.3, 0.8, 0.05])


def value(tensor):
    return np.asarray(ops.convert_to_numpy(tensor), dtype=np.float64)


def batch_loss(params, targets=TARGETS, probs=PROBS):
    return float(value(SupervisionLoss(params)(targets, probs)))


def test_cce_and_lq_hand_computed():
    np.testing.assert_allclose(value(losses.cce_per_example(TARGETS, PROBS)), -np.log(P_TARGET), rtol=1e-5)
    np.testing.assert_allclose(value(losses.lq_per_example(TARGETS, PROBS, 0.7)), (1 - P_TARGET**0.7) / 0.7,
                               rtol=1e-5)
    # (1 - 0.7^0.7) / 0.7 by hand: 0.7^0.7 = exp(0.7 ln 0.7) = 0.77905
    assert value(losses.lq_per_example(TARGETS[:1], PROBS[:1], 0.7))[0] == pytest.approx(0.31564, abs=1e-4)


def test_lq_tends_to_cce_and_is_mae_at_q_one():
    cce = value(losses.cce_per_example(TARGETS, PROBS))
    errors = [np.abs(value(losses.lq_per_example(TARGETS, PROBS, q)) - cce).max() for q in (0.1, 0.01, 0.001)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 5e-3
    # at q = 1, Lq = 1 - p_y = MAE / 2 with MAE = sum_k |y_k - p_k| (softmax outputs sum to one)
    mae = np.abs(TARGETS - PROBS).sum(axis=1)
    np.testing.assert_allclose(value(losses.lq_per_example(TARGETS, PROBS, 1.0)), mae / 2, rtol=1e-5)


def test_lsoft_and_label_smoothing_hand_computed():
    soft = 0.3 * TARGETS + 0.7 * PROBS
    np.testing.assert_allclose(value(losses.lsoft_per_example(TARGETS, PROBS, 0.3)),
                               -(soft * np.log(PROBS)).sum(axis=1), rtol=1e-5)
    smooth = 0.85 * TARGETS + 0.15 / 3
    np.testing.assert_allclose(value(losses.label_smoothing_per_example(TARGETS, PROBS, 0.15)),
                               -(smooth * np.log(PROBS)).sum(axis=1), rtol=1e-5)


def test_cce_max_and_outlier_drop_the_right_examples():
    cce = -np.log(P_TARGET)  # [0.357, 1.204, 0.223, 2.996]
    # CCE_max: keep losses <= 0.6 x 2.996 = 1.797 -> examples 0, 1, 2; the dropped one counts as a zero in the
    # batch mean (the authors' masking: no renormalisation)
    assert batch_loss(LossParams("cce_max")) == pytest.approx(cce[:3].sum() / 4, rel=1e-5)
    # CCE_outlier with 0.5 sigma: median 0.780 + 0.5 x std 1.104 = 1.332 -> the same three kept
    assert batch_loss(LossParams("cce_outlier", outlier_sigmas=0.5)) == pytest.approx(cce[:3].sum() / 4, rel=1e-5)
    # with 1.9 sigma (the default) the bound 2.878 still drops the 2.996 loss, a bound above keeps everything
    assert batch_loss(LossParams("cce_outlier")) == pytest.approx(cce[:3].sum() / 4, rel=1e-5)
    assert batch_loss(LossParams("cce_outlier", outlier_sigmas=3.0)) == pytest.approx(cce.mean(), rel=1e-5)


def test_batch_discard_percentile_renormalises_by_the_kept():
    lq = (1 - P_TARGET**0.5) / 0.5
    # 4 losses; the 70th percentile (numpy's "lower" rule, the authors') is the 3rd smallest loss
    bound = np.percentile(lq, 70, method="lower")
    kept = lq[lq <= bound]
    assert len(kept) == 3
    assert batch_loss(LossParams("lq", q=0.5, discard_percentile=70)) == pytest.approx(kept.mean(), rel=1e-5)
    assert batch_loss(LossParams("lq", q=0.5)) == pytest.approx(lq.mean(), rel=1e-5)
    # The released config's 93rd percentile drops the 5 largest of a batch of 64 (floor(63 x 0.93) = 58)
    batch = np.random.default_rng(0).uniform(size=64).astype("float32")
    assert value(losses.keep_below_percentile(ops.convert_to_tensor(batch), 93.0)).sum() == 59


def test_lsoft_gradient_keeps_the_bootstrapping_term():
    import tensorflow as tf

    probabilities = tf.constant(PROBS[:1])
    with tf.GradientTape() as tape:
        tape.watch(probabilities)
        loss = losses.lsoft_per_example(TARGETS[:1], probabilities, 0.3)
    # d/dp_k of -sum (0.3 y + 0.7 p) log p = -(0.3 y_k + 0.7 p_k) / p_k - 0.7 log p_k
    p, y = PROBS[0], TARGETS[0]
    np.testing.assert_allclose(tape.gradient(loss, probabilities).numpy()[0],
                               -(0.3 * y + 0.7 * p) / p - 0.7 * np.log(p), rtol=1e-4)


def test_masked_bce_hand_computed_and_zero_gradient_on_masked_entries():
    import tensorflow as tf

    labels = np.array([[1, 0, 0]], dtype=np.float32)
    mask = np.array([[1, 0, 1]], dtype=np.float32)
    probs = np.array([[0.8, 0.6, 0.3]], dtype=np.float32)
    expected = -(np.log(0.8) + np.log(1 - 0.3)) / 3  # the masked negative (0.6) contributes nothing
    targets = np.concatenate([labels, mask], axis=1)
    assert batch_loss(LossParams("masked_bce"), targets, probs) == pytest.approx(expected, rel=1e-5)
    unmasked = -(np.log(0.8) + np.log(0.4) + np.log(0.7)) / 3
    assert batch_loss(LossParams("bce"), labels, probs) == pytest.approx(unmasked, rel=1e-5)
    assert batch_loss(LossParams("masked_bce"), np.concatenate([labels, np.ones_like(mask)], 1), probs) == \
        pytest.approx(unmasked, rel=1e-5)
    variable = tf.Variable(probs)
    with tf.GradientTape() as tape:
        loss = SupervisionLoss(LossParams("masked_bce"))(targets, variable)
    gradient = tape.gradient(loss, variable).numpy()
    assert gradient[0, 1] == 0.0 and gradient[0, 0] < 0 < gradient[0, 2]


def test_loss_params_are_validated():
    with pytest.raises(ValueError, match="Unknown loss"):
        LossParams("focal")
    with pytest.raises(ValueError, match="0 < q <= 1"):
        LossParams("lq", q=0.0)
    with pytest.raises(ValueError, match="discard_percentile"):
        LossParams("lq", discard_percentile=0)
    assert LossParams("lq").single_label and not LossParams("masked_bce").single_label


def test_loss_serialises():
    loss = SupervisionLoss(LossParams("lq", q=0.5, discard_percentile=96))
    restored = SupervisionLoss.from_config(loss.get_config())
    assert restored.params == loss.params


def test_loss_params_from_pipeline_values():
    params = LossParams.from_values("lq", {"q": "0.5", "discard_percentile": 96})
    assert params == LossParams("lq", q=0.5, discard_percentile=96.0)
    with pytest.raises(ValueError, match="Unknown loss parameters"):
        LossParams.from_values("lq", {"gamma": 2})


def test_bce_label_smoothing_moves_the_targets_towards_one_half():
    labels = np.array([[1, 0, 0]], dtype=np.float32)
    probs = np.array([[0.8, 0.6, 0.3]], dtype=np.float32)
    # s = 0.3: targets 0.85 and 0.15 (the DCASE2019 Task 2 baseline's noisy-set smoothing)
    targets = np.array([0.85, 0.15, 0.15])
    expected = -np.mean(targets * np.log(probs[0]) + (1 - targets) * np.log(1 - probs[0]))
    assert batch_loss(LossParams("bce", bce_smoothing=0.3), labels, probs) == pytest.approx(expected, rel=1e-5)
