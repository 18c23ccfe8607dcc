import numpy as np
import pytest

from knockoff.data.records import FAKE, GENUINE, ImageRecord
from knockoff.gallery.matching import match
from knockoff.gallery.store import Gallery
from knockoff.runtime.embedding import ModelInfo
from knockoff.scoring import Calibration, ScorerParams

INFO = ModelInfo("test", "finetuned", "m", 64, 3, (0.5,) * 3, (0.5,) * 3)


def unit(*vector):
    vector = np.array(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def gallery():
    # Two products; each has a genuine cluster and a nearby fake cluster.
    vectors = np.stack([unit(1, 0, 0), unit(1, 0.05, 0), unit(1, 0, 0.3), unit(1, 0.05, 0.3),
                        unit(0, 1, 0), unit(0.05, 1, 0), unit(0, 1, 0.3)])
    records = [ImageRecord(f"r{i}.jpg", f"R{i}", product, authenticity) for i, (product, authenticity) in enumerate([
        ("bag", GENUINE), ("bag", GENUINE), ("bag", FAKE), ("bag", FAKE),
        ("shoe", GENUINE), ("shoe", GENUINE), ("shoe", FAKE)])]
    built = Gallery.build(vectors, records, INFO, scorer=ScorerParams(k=3, temperature=0.02, candidates=7, evidence=2))
    built.info.calibration = Calibration(slope=10.0, intercept=0.0, threshold=0.5, target_precision=0.95, precision=1, recall=1, count=10)
    return built


def test_fake_looking_photo_scores_high_and_matches_its_product(gallery):
    result = match(gallery, np.stack([unit(1, 0.02, 0.31), unit(1, 0.02, -0.01)]))
    assert result.product == ["bag", "bag"]
    assert result.score[0] > 0.5 > result.score[1]
    assert list(result.flagged) == [True, False]
    assert result.raw[0] > 0 > result.raw[1]


def test_evidence_lists_nearest_genuine_and_fakes_in_order(gallery):
    result = match(gallery, np.stack([unit(1, 0.02, 0.31)]))
    genuine, fakes = result.nearest_genuine[0].as_py(), result.nearest_fake[0].as_py()
    assert [e["authenticity"] for e in genuine] == [GENUINE, GENUINE]
    assert [e["authenticity"] for e in fakes] == [FAKE, FAKE]
    assert fakes[0]["similarity"] >= fakes[1]["similarity"] and fakes[0]["similarity"] > genuine[0]["similarity"]
    neighbors = result.neighbors[0].as_py()
    assert len(neighbors) == 3 and neighbors[0]["listing_id"] == fakes[0]["listing_id"]
    assert [e["row"] for e in neighbors] == [e["row"] for e in sorted(neighbors, key=lambda e: -e["similarity"])]


def test_product_similarity_is_the_closest_reference_of_that_product(gallery):
    query = unit(0, 1, 0.1)
    result = match(gallery, query[None])
    shoe_vectors = [unit(0, 1, 0), unit(0.05, 1, 0), unit(0, 1, 0.3)]
    assert result.product == ["shoe"]
    assert result.product_similarity[0] == pytest.approx(max(float(query @ v) for v in shoe_vectors), abs=1e-5)


def test_a_side_missing_from_the_candidates_is_found_by_a_restricted_search():
    # Many fakes around the query, the only genuine reference far away: with candidates=3 the
    # genuine one is not fetched, yet it is the evidence and its similarity enters the score.
    fakes = [unit(1, 0.01 * i, 0) for i in range(6)]
    genuine = unit(0, 1, 0.2)
    records = [ImageRecord(f"f{i}.jpg", f"F{i}", "bag", FAKE) for i in range(6)] + [ImageRecord("g.jpg", "G", "bag", GENUINE)]
    built = Gallery.build(np.stack(fakes + [genuine]), records, INFO, scorer=ScorerParams(k=3, temperature=1e-4, candidates=3, evidence=2))
    query = unit(1, 0.005, 0)
    result = match(built, query[None])
    evidence = result.nearest_genuine[0].as_py()
    assert [e["listing_id"] for e in evidence] == ["G"]
    assert evidence[0]["similarity"] == pytest.approx(float(query @ genuine), abs=1e-5)
    assert result.raw[0] == pytest.approx(float(query @ fakes[0]) - float(query @ genuine), abs=1e-3)


def test_without_evidence_only_scores(gallery):
    result = match(gallery, unit(1, 0, 0)[None], with_evidence=False)
    assert result.neighbors is None and result.score is not None
