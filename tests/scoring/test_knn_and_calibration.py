import numpy as np
import pytest

from knockoff.evaluation.metrics import roc_auc
from knockoff.scoring import ScorerParams, fit_calibration, knn_log_odds, threshold_for_precision


def _score(sims, fake, k=3, temperature=0.02):
    sims = np.array(sims, dtype=float)[None]
    fake = np.array(fake, dtype=bool)[None]
    return knn_log_odds(sims, fake, np.ones_like(fake), ScorerParams(k=k, temperature=temperature, candidates=sims.size))[0]


def test_low_temperature_is_the_margin_between_nearest_fake_and_genuine():
    assert _score([0.9, 0.7, 0.6], [True, False, False], temperature=1e-4) == pytest.approx(0.2, abs=1e-3)
    assert _score([0.9, 0.7, 0.6], [False, True, True], temperature=1e-4) == pytest.approx(-0.2, abs=1e-3)


def test_more_fake_voters_raise_the_score():
    assert _score([0.8, 0.8, 0.8, 0.8], [True, True, False, False], k=4) < _score([0.8, 0.8, 0.8, 0.8], [True, True, True, False], k=4)


def test_a_side_missing_from_the_voters_uses_its_nearest_candidate():
    # k=2 voters are both fake; the genuine one at rank 4 still counts, so the score is finite
    # and lower than if the nearest genuine were far away.
    near = _score([0.9, 0.85, 0.84, 0.83], [True, True, True, False], k=2, temperature=1e-4)
    assert near == pytest.approx(0.9 - 0.83, abs=1e-3)


def test_a_gallery_without_fakes_scores_from_the_floor():
    assert _score([0.9, 0.8], [False, False], k=2, temperature=1e-4) == pytest.approx(-1.0 - 0.9, abs=1e-3)


def test_padding_rows_are_ignored():
    sims = np.array([[0.9, -3.4e38]])
    fake = np.array([[False, True]])
    valid = np.array([[True, False]])
    raw = knn_log_odds(sims, fake, valid, ScorerParams(k=2, candidates=2, temperature=1e-4))
    assert raw[0] == pytest.approx(-1.9, abs=1e-3)


def test_threshold_for_precision_matches_brute_force():
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.4
    scores = np.round(rng.normal(labels * 2.0, 1.0), 2)
    threshold, precision, recall = threshold_for_precision(scores, labels, 0.9)

    def bounded_precision(t):  # one false flag more than the held-back photos show
        return labels[scores >= t].sum() / ((scores >= t).sum() + 1)

    # brute force: precise enough first, then most recall, then the highest threshold
    best = max((bounded_precision(t) >= 0.9, labels[scores >= t].sum() / labels.sum(), t) for t in np.unique(scores))
    assert best[0] and recall == pytest.approx(best[1]) and threshold == pytest.approx(best[2])
    assert precision >= 0.9 and bounded_precision(threshold) == pytest.approx(precision)


def test_separable_scores_flag_no_genuine_photo():
    scores = np.array([0.9, 0.8, 0.7, 0.1, 0.05] + [0.01] * 20)
    labels = np.array([True, True, True] + [False] * 22)
    threshold, precision, recall = threshold_for_precision(scores, labels, 0.5)
    assert threshold == 0.7 and (precision, recall) == (0.75, 1.0)  # 3 / (3 + 1)
    # three fakes alone cannot vouch for 95% precision; twenty can
    assert threshold_for_precision(scores, labels, 0.95)[2] == 0.0
    many = np.r_[np.linspace(0.5, 0.9, 20), np.full(30, 0.1)]
    assert threshold_for_precision(many, np.arange(50) < 20, 0.95)[1:] == (20 / 21, 1.0)


def test_unreachable_precision_flags_nothing():
    scores = np.array([0.9, 0.8, 0.7])
    threshold, precision, recall = threshold_for_precision(scores, np.array([False, True, False]), 0.99)
    assert threshold > 0.9 and (precision, recall) == (0.0, 0.0)


def test_calibration_is_monotone_probability_and_keeps_the_ranking():
    rng = np.random.default_rng(1)
    labels = rng.random(500) < 0.5
    raw = rng.normal(labels * 0.3, 0.15)
    calibration = fit_calibration(raw, labels, 0.95)
    probability = calibration.probability(raw)
    assert calibration.slope > 0 and 0 <= probability.min() and probability.max() <= 1
    assert roc_auc(labels, probability) == pytest.approx(roc_auc(labels, raw))
    # well calibrated: mean predicted probability of fake ~ observed share of fakes
    assert probability.mean() == pytest.approx(labels.mean(), abs=0.02)
    flagged = probability >= calibration.threshold
    assert labels[flagged].sum() / (flagged.sum() + 1) == pytest.approx(calibration.precision) and calibration.precision >= 0.95


def test_separable_data_still_calibrates():
    raw = np.r_[np.linspace(-1, -0.5, 20), np.linspace(0.5, 1, 20)]
    calibration = fit_calibration(raw, np.arange(40) >= 20, 0.95)
    assert np.isfinite(calibration.slope) and calibration.recall == 1.0


def test_far_evidence_moves_the_probability_towards_the_prior_and_never_inverts_it():
    """Fakes and genuine photos separate well where their nearest reference is close, barely
    where it is far: the fitted slope grows with closeness."""
    rng = np.random.default_rng(2)
    closeness = rng.uniform(0.4, 0.9, 4000)
    labels = rng.random(4000) < 0.5
    separation = (closeness - 0.4) / 0.5  # 0 when far, 1 when close
    raw = rng.normal(np.where(labels, 1.0, -1.0) * separation, 0.5)
    calibration = fit_calibration(raw, labels, 0.9, closeness=closeness)
    assert calibration.closeness_slope > 0 and calibration.closeness_center == pytest.approx(np.median(closeness))
    near, far = calibration.probability(np.array([1.0, 1.0]), np.array([0.9, 0.45]))
    assert near > 0.95 and 0.5 < far < near - 0.05
    assert calibration.probability(np.array([1.0, -1.0]), np.array([-5.0, -5.0])).tolist() == pytest.approx(
        [calibration.probability(np.array([0.0]))[0]] * 2)  # far past any fit: the slope stops at zero
    assert calibration.probability(np.array([1.0]))[0] > 0.5  # without closeness: the plain slope
