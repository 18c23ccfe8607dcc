import numpy as np

from knockoff.scoring.held_back import HeldBackScores, fit_held_back_scores

TARGET = 0.95


def test_pools_fall_back_from_product_to_group_and_never_mix_genuine_only_products_with_known_fakes():
    rng = np.random.default_rng(6)
    product = ["big"] * 60 + ["small"] * 10 + ["milk"] * 40
    is_fake = np.array([i % 2 == 0 for i in range(70)] + [False] * 40)
    score = rng.random(110)
    status = ["scored"] * 109 + ["unsupported"]
    catalogue = {"big": ("nike", True), "small": ("nike", True), "unseen": ("nike", True), "milk": ("grocery", False),
                 "cream": ("grocery", False)}
    scores = fit_held_back_scores(product, catalogue, status, score, is_fake, TARGET, 0.01, min_per_class=15, min_photos=30)
    # A product with no held-back photo at all reads its group's pool.
    assert scores.products == {"big": "product:big", "small": "group:nike", "unseen": "group:nike",
                               "milk": "product:milk", "cream": "group:grocery"}
    assert len(scores.pools["group:nike"].fakes) == 35 and len(scores.pools["product:milk"].genuine) == 39
    assert scores.pools["product:milk"].fakes == []
    assert HeldBackScores.from_json(scores.to_json()) == scores
