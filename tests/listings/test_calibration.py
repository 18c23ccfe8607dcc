import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from knockoff.listings.calibration import MIN_RUN_PHOTOS, ListingCalibration, RunScores, estimate_prevalence, listing_precision, read_listing_calibration
from knockoff.scoring.held_back import HeldBackPool, HeldBackScores

TARGET = 0.95


def held_back_pool(rng: np.random.Generator, genuine: int = 400, fakes: int = 400) -> HeldBackPool:
    """Scores like a calibrated scorer's: genuine photos near 0, fakes near 1, overlapping tails."""
    return HeldBackPool(sorted(rng.beta(1.2, 6.0, genuine).tolist()), sorted(rng.beta(6.0, 1.2, fakes).tolist()))


def run_of(pool: HeldBackPool, rng: np.random.Generator, photos: int, prevalence: float) -> tuple[np.ndarray, np.ndarray]:
    """(is_fake, score) of a run's judged photos, each drawn from the held-back scores of its class."""
    is_fake = rng.random(photos) < prevalence
    scores = np.where(is_fake, rng.choice(pool.fakes, photos), rng.choice(pool.genuine, photos))
    return is_fake, scores


def calibration_for(pool: HeldBackPool, scores: np.ndarray, false_flag_rate: float = 0.01) -> ListingCalibration:
    run = RunScores()
    run.add(["p"], np.zeros(len(scores), int), scores)
    return ListingCalibration(HeldBackScores(TARGET, false_flag_rate, {"p": pool}, {"shoe": "p"}), run)


@pytest.mark.parametrize("prevalence", [0.03, 0.1, 0.5])
def test_the_runs_share_of_fakes_is_estimated_from_its_scores(prevalence):
    rng = np.random.default_rng(1)
    pool = held_back_pool(rng)
    _, scores = run_of(pool, rng, 20_000, prevalence)
    run = RunScores()
    run.add(["p"], np.zeros(len(scores), int), scores)
    estimate, source = estimate_prevalence(pool, run, "p")
    assert abs(estimate - prevalence) < 0.02 and "20000 judged photos" in source


def test_a_run_too_small_to_estimate_keeps_the_held_back_share():
    rng = np.random.default_rng(2)
    pool = held_back_pool(rng, genuine=300, fakes=100)
    _, scores = run_of(pool, rng, MIN_RUN_PHOTOS - 1, 0.02)
    run = RunScores()
    run.add(["p"], np.zeros(len(scores), int), scores)
    estimate, source = estimate_prevalence(pool, run, "p")
    assert estimate == pytest.approx(0.25) and "held-back share" in source


@pytest.mark.parametrize("prevalence", [0.05, 0.2])
@pytest.mark.parametrize("photos", [1, 3])
def test_flagged_listings_reach_the_precision_they_promise_even_when_genuine_photos_are_independent(prevalence, photos):
    """Independent photos are the worst case for a genuine listing (n fresh chances); the
    flagged listings of a simulated run must still be >= 95% fakes, and photo-level flags not."""
    rng = np.random.default_rng(3)
    pool = held_back_pool(rng)
    listings = 30_000
    is_fake = rng.random(listings) < prevalence
    scores = np.where(is_fake[:, None], rng.choice(pool.fakes, (listings, photos)), rng.choice(pool.genuine, (listings, photos)))
    calibration = calibration_for(pool, scores.ravel())
    threshold, bound, estimated = calibration.threshold("shoe", photos)
    flagged = scores.max(axis=1) >= threshold
    # The bound is the target where 400 held-back genuine photos can vouch for it, else the best they can.
    assert is_fake[flagged].mean() >= min(bound, TARGET) - 0.01
    assert abs(estimated - prevalence) < 0.02
    assert is_fake[flagged].sum() / is_fake.sum() > 0.3  # it still finds fakes
    photo_threshold = 0.5  # a threshold set for precision at the held-back half-and-half
    assert is_fake[scores.max(axis=1) >= photo_threshold].mean() < TARGET


def test_thresholds_rise_as_fakes_get_rarer_and_listings_have_more_photos():
    rng = np.random.default_rng(4)
    pool = held_back_pool(rng)
    thresholds = {}
    for prevalence in (0.02, 0.1, 0.4):
        _, scores = run_of(pool, rng, 5_000, prevalence)
        calibration = calibration_for(pool, scores)
        thresholds[prevalence] = [calibration.threshold("shoe", n)[0] for n in (1, 2, 4)]
    for prevalence in thresholds:
        assert thresholds[prevalence] == sorted(thresholds[prevalence])
    assert thresholds[0.02][0] > thresholds[0.1][0] > thresholds[0.4][0]


def test_where_no_threshold_reaches_the_target_the_best_one_is_used_and_says_so():
    pool = HeldBackPool(genuine=[0.2, 0.5, 0.9, 0.95], fakes=[0.3, 0.6, 0.9, 0.95, 0.97])  # fakes and genuine overlap
    calibration = calibration_for(pool, np.array([0.2] * 190 + [0.97] * 10))  # a run of few fakes
    threshold, bound, _ = calibration.threshold("shoe", 1)
    assert threshold in pool.fakes and bound < TARGET  # the threshold with the highest bound, far below the target
    assert "BELOW the 0.95 target from 1 photo:" in calibration.lines()[0]
    assert calibration.threshold("a product nobody calibrated", 1)[0] == math.inf


def test_a_genuine_only_product_keeps_its_listings_false_flag_rate():
    rng = np.random.default_rng(5)
    pool = HeldBackPool(sorted(rng.normal(0.2, 0.15, 2_000).tolist()), [])
    few = HeldBackPool([0.1, 0.3, 0.5], [])  # too few to resolve 1%: beyond the top one
    assert calibration_for(few, np.array([0.2])).threshold("shoe", 1)[0] == pytest.approx(0.5)
    calibration = calibration_for(pool, np.array(pool.genuine))
    for photos in (1, 3):
        threshold, bound, prevalence = calibration.threshold("shoe", photos)
        listings = rng.choice(pool.genuine, (50_000, photos)).max(axis=1)
        assert (listings >= threshold).mean() <= 0.01 + 0.002
        assert bound is None and prevalence is None


def test_a_genuine_only_flag_is_worth_the_share_of_flags_chance_does_not_explain():
    """A run of genuine photos alone is flagged at about the false-flag rate: a flag there is
    worth little. Add far-off photos (fakes no reference resembles) and a flag is worth more."""
    rng = np.random.default_rng(6)
    pool = HeldBackPool(sorted(rng.normal(0.2, 0.15, 2_000).tolist()), [])
    genuine = rng.choice(pool.genuine, 5_000)
    chance, with_fakes = (calibration_for(pool, scores) for scores in (genuine, np.r_[genuine, np.full(250, 2.0)]))
    threshold = chance.threshold("shoe", 1)[0]
    worth = [c.judge(pa.array(["shoe", "shoe"]), np.array([1, 1]), np.array([threshold + 0.01, threshold - 0.01]))[3]
             for c in (chance, with_fakes)]
    assert worth[0][1] == worth[1][1] == 0.0  # not flagged: nothing
    assert worth[0][0] < 0.3 < 0.7 < worth[1][0] < 1.0  # about 1% flagged by chance, against about 6% with fakes


def test_the_precision_bound_counts_n_chances_of_a_false_flag():
    assert listing_precision(0.8, 0.01, 0.1, 1) == pytest.approx(0.08 / (0.08 + 0.9 * 0.01))
    assert listing_precision(0.8, 0.01, 0.1, 3) == pytest.approx(0.08 / (0.08 + 0.9 * (1 - 0.99 ** 3)))


def test_results_without_held_back_scores_get_a_clear_error(tmp_path):
    path = tmp_path / "results.parquet"
    pq.write_table(pa.table({"status": ["scored"], "product": ["shoe"], "score": [0.9]}), path)
    with pytest.raises(ValueError, match="rebuild the gallery"):
        read_listing_calibration(path)
