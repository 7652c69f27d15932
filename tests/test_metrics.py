import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score, roc_auc_score

from keras_models import metrics


def random_case(seed, clips=40, classes=7, ties=False):
    rng = np.random.default_rng(seed)
    truth = (rng.random((clips, classes)) < 0.3).astype(float)
    truth[0] = 1.0  # every class has a positive
    truth[1] = 0.0  # ... and a negative
    scores = rng.random((clips, classes))
    if ties:
        scores = np.round(scores, 1)
    return truth, scores


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_matches_sklearn(seed, ties):
    truth, scores = random_case(seed, ties=ties)
    ours = metrics.average_precision(truth, scores)
    reference = [average_precision_score(truth[:, c], scores[:, c]) for c in range(truth.shape[1])]
    np.testing.assert_allclose(ours, reference, rtol=1e-12)
    assert metrics.clip_metrics(truth, scores)["mAP"] == pytest.approx(
        average_precision_score(truth, scores, average="macro"))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [False, True])
def test_auc_and_d_prime_match_sklearn(seed, ties):
    truth, scores = random_case(seed, ties=ties)
    np.testing.assert_allclose(metrics.roc_auc(truth, scores), roc_auc_score(truth, scores, average=None))
    macro_auc = roc_auc_score(truth, scores, average="macro")
    assert metrics.clip_metrics(truth, scores)["d_prime"] == pytest.approx(np.sqrt(2) * norm.ppf(macro_auc))


def test_classes_without_positives_are_left_out_of_the_mean():
    truth = np.array([[1, 0], [0, 0], [1, 0]], dtype=float)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    ap = metrics.average_precision(truth, scores)
    assert ap[0] == 1.0 and np.isnan(ap[1])
    assert metrics.clip_metrics(truth, scores)["mAP"] == 1.0


def reference_lwlrap(truth, scores):
    """lwlrap straight from its published definition, one (clip, positive label) pair at a time."""
    precisions = []
    for clip_truth, clip_scores in zip(truth, scores):
        for label in np.flatnonzero(clip_truth):
            ranked_at_or_above = [c for c in range(len(clip_scores)) if clip_scores[c] >= clip_scores[label]]
            hits = sum(clip_truth[c] > 0 for c in ranked_at_or_above)
            precisions.append(hits / len(ranked_at_or_above))
    return np.mean(precisions)


@pytest.mark.parametrize("seed", range(5))
def test_lwlrap_matches_its_definition_and_weighted_lrap(seed):
    truth, scores = random_case(seed)
    overall, per_class, weights = metrics.lwlrap(truth, scores)
    assert overall == pytest.approx(reference_lwlrap(truth, scores))
    assert overall == pytest.approx(np.nansum(per_class * weights))
    # lwlrap is LRAP with each clip weighted by its number of positive labels
    assert overall == pytest.approx(label_ranking_average_precision_score(
        truth, scores, sample_weight=truth.sum(axis=1)))


def test_lwlrap_hand_computed_example():
    # clip 1: labels {A, C}; ranking C(0.9) > B(0.5) > A(0.1): C precision 1/1, A precision 2/3
    # clip 2: label {B}; ranking A(0.8) > B(0.6) > C(0.2): B precision 1/2
    truth = np.array([[1, 0, 1], [0, 1, 0]], dtype=float)
    scores = np.array([[0.1, 0.5, 0.9], [0.8, 0.6, 0.2]])
    overall, per_class, weights = metrics.lwlrap(truth, scores)
    assert overall == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    np.testing.assert_allclose(per_class, [2 / 3, 1 / 2, 1.0])
    np.testing.assert_allclose(weights, [1 / 3, 1 / 3, 1 / 3])


def test_chance_map_is_mean_prevalence():
    truth = np.array([[1, 0], [0, 0], [1, 1], [0, 0]], dtype=float)
    assert metrics.clip_metrics(truth, np.random.default_rng(0).random(truth.shape))["chance_mAP"] == \
        pytest.approx((0.5 + 0.25) / 2)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same"):
        metrics.average_precision(np.zeros((3, 2)), np.zeros((3, 3)))


def test_map_at_3_hand_computed_example():
    # true classes 0, 1, 2, 3; the true class ranks 1st, 2nd, 3rd and 4th: (1 + 1/2 + 1/3 + 0) / 4
    truth = np.eye(4)
    scores = np.array([[0.9, 0.1, 0.0, 0.0], [0.8, 0.5, 0.1, 0.0], [0.5, 0.4, 0.3, 0.2], [0.4, 0.3, 0.2, 0.1]])
    assert metrics.map_at_k(truth, scores, 3) == pytest.approx((1 + 1 / 2 + 1 / 3) / 4)
    assert metrics.map_at_k(truth, scores, 1) == pytest.approx(1 / 4)
    assert metrics.single_label_metrics(truth, scores)["map_at_3"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 4)
    with pytest.raises(ValueError, match="exactly one label"):
        metrics.map_at_k(np.ones((4, 4)), scores)


@pytest.mark.parametrize("seed", [0, 1])
def test_map_at_3_matches_the_competitions_average_precision_at_k(seed):
    """Kaggle's apk (the DCASE2018 Task 2 evaluation): precision at each hit among the top k predictions,
    over min(len(actual), k)."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, 6, size=50)
    scores = rng.normal(size=(50, 6)) + 1.5 * np.eye(6)[classes]

    def apk(actual, predicted, k=3):
        hits, total = 0, 0.0
        for position, guess in enumerate(predicted[:k]):
            if guess in actual and guess not in predicted[:position]:
                hits += 1
                total += hits / (position + 1)
        return total / min(len(actual), k)

    reference = np.mean([apk([label], list(np.argsort(-row))) for label, row in zip(classes, scores)])
    assert metrics.map_at_k(np.eye(6)[classes], scores, 3) == pytest.approx(reference)
