import numpy as np
import pytest

from knockoff.data.records import FAKE, GENUINE, UNMONITORED, ImageRecord
from knockoff.evaluation.open_world_report import CrawlPart, open_world_report, summarize
from knockoff.gallery.indexing import IndexConfig
from knockoff.gallery.store import Gallery
from knockoff.runtime.embedding import ModelInfo
from knockoff.scoring import ScorerParams
from knockoff.scoring.open_world import OpenWorldParams

INFO = ModelInfo("test", "finetuned", "m", 64, 6, (0.5,) * 3, (0.5,) * 3)


def test_summary_counts_flags_precision_and_rates_per_group():
    verdicts = (
        [{"group": "shoes", "product": "shoe", "fake": True, "status": "scored", "flagged": True, "raw": 1.0, "matched": "shoe"}] * 9
        + [{"group": "shoes", "product": "shoe", "fake": False, "status": "scored", "flagged": True, "raw": 0.5, "matched": "shoe"}]
        + [{"group": "shoes", "product": "shoe", "fake": False, "status": "scored", "flagged": False, "raw": -1.0, "matched": "bag"}] * 10
        + [{"group": "unmonitored", "product": "kiwi", "fake": False, "status": "no_match", "flagged": False, "raw": 0.0, "matched": None}] * 20
    )
    report = summarize(verdicts)
    assert report["flagged"] == 10 and report["flag_precision"] == pytest.approx(0.9)
    shoes = report["groups"]["shoes"]
    assert shoes["fakes_flagged"] == 1.0 and shoes["genuine_flagged"] == pytest.approx(1 / 11)
    assert shoes["roc_auc_raw"] == 1.0 and shoes["product_top1"] == pytest.approx(0.5)
    assert shoes["roc_auc_scored"] == 1.0
    unscored = [dict(v, status="no_match") if v["raw"] == 1.0 else v for v in verdicts]  # the fakes go unjudged
    assert "roc_auc_scored" not in summarize(unscored)["groups"]["shoes"]
    assert report["groups"]["unmonitored"] == {"photos": 20, "status": {"no_match": 20}, "flagged": 0,
                                               "flagged_rate": 0.0, "no_match_rate": 1.0}
    assert report["products"] == {"shoe": {"photos": 20, "scored": 20, "flagged": 10, "flag_precision": pytest.approx(0.9)}}


def _cluster(rng, center, count, spread=0.05):
    vectors = np.asarray(center, dtype=np.float32) + rng.normal(0, spread, (count, len(center))).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


GENUINE_SHOE, FAKE_SHOE, FRUIT = (1, 0, 0, 0, 0, 0), (1, 0.6, 0, 0, 0, 0), (0, 0, 0, 0, 1, 0)


def _shoe_gallery(rng) -> tuple[Gallery, CrawlPart, IndexConfig]:
    """Shoes with genuine references and known fakes, fruit as background; 80 held-back shoe photos."""
    vectors = np.concatenate([_cluster(rng, GENUINE_SHOE, 60), _cluster(rng, FAKE_SHOE, 60), _cluster(rng, FRUIT, 30)])
    records = ([ImageRecord(f"g{i}.jpg", None, "shoe", GENUINE, "nike") for i in range(60)]
               + [ImageRecord(f"f{i}.jpg", None, "shoe", FAKE, "nike") for i in range(60)]
               + [ImageRecord(f"o{i}.jpg", None, "orange", UNMONITORED) for i in range(30)])
    gallery = Gallery.build(vectors, records, INFO, scorer=ScorerParams(k=5, candidates=20, evidence=2))
    held = [ImageRecord(f"hg{i}.jpg", None, "shoe", GENUINE) for i in range(40)] + [ImageRecord(f"hf{i}.jpg", None, "shoe", FAKE) for i in range(40)]
    shoes = CrawlPart("sneakers", held, np.concatenate([_cluster(rng, GENUINE_SHOE, 40), _cluster(rng, FAKE_SHOE, 40)]), True)
    config = IndexConfig(target_precision=0.9, open_world=OpenWorldParams(min_photos=10, min_per_class=5))
    return gallery, shoes, config


def test_cross_fitted_report_judges_every_photo_once_and_never_flags_unmonitored_ones():
    rng = np.random.default_rng(0)
    fruit = FRUIT
    gallery, shoes, config = _shoe_gallery(rng)
    fruit_photos = CrawlPart("unmonitored", [ImageRecord(f"u{i}.jpg", None, "kiwi") for i in range(50)],
                             _cluster(rng, fruit, 50, spread=0.3), False)
    report = open_world_report(gallery, [shoes, fruit_photos], _cluster(rng, fruit, 40, spread=0.3), config)
    assert report["photos"] == 130
    assert report["groups"]["sneakers"]["photos"] == 80 and report["groups"]["unmonitored"]["photos"] == 50
    assert report["groups"]["unmonitored"]["flagged"] == 0 and report["groups"]["unmonitored"]["no_match_rate"] >= 0.9
    assert report["groups"]["sneakers"]["roc_auc_raw"] > 0.95 and report["flag_precision"] >= 0.9


def test_a_monitored_group_left_out_of_the_gallery_is_screened_as_unforeseen_unmonitored_products():
    """Juice cartons, once nobody monitors them, look like neither the shoes in the catalogue nor
    the fruit in the background: they must come out no_match, never flagged."""
    rng = np.random.default_rng(1)
    genuine, fake, juice, fruit = (1, 0, 0, 0, 0, 0), (1, 0.6, 0, 0, 0, 0), (0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 1, 0)
    vectors = np.concatenate([_cluster(rng, genuine, 60), _cluster(rng, fake, 60), _cluster(rng, juice, 20),
                              _cluster(rng, fruit, 30)])
    records = ([ImageRecord(f"g{i}.jpg", None, "shoe", GENUINE, "nike") for i in range(60)]
               + [ImageRecord(f"f{i}.jpg", None, "shoe", FAKE, "nike") for i in range(60)]
               + [ImageRecord(f"j{i}.jpg", None, "juice", GENUINE, "grocery") for i in range(20)]
               + [ImageRecord(f"o{i}.jpg", None, "orange", UNMONITORED) for i in range(30)])
    gallery = Gallery.build(vectors, records, INFO, scorer=ScorerParams(k=5, candidates=20, evidence=2))
    held = [ImageRecord(f"hg{i}.jpg", None, "shoe", GENUINE) for i in range(40)] + [ImageRecord(f"hf{i}.jpg", None, "shoe", FAKE) for i in range(40)]
    shoes = CrawlPart("sneakers", held, np.concatenate([_cluster(rng, genuine, 40), _cluster(rng, fake, 40)]), True)
    cartons = CrawlPart("grocery", [ImageRecord(f"hj{i}.jpg", None, "juice", GENUINE) for i in range(40)],
                        _cluster(rng, juice, 40), True)
    config = IndexConfig(target_precision=0.9, open_world=OpenWorldParams(min_photos=10, min_per_class=5))
    report = open_world_report(gallery, [shoes, cartons], _cluster(rng, fruit, 40, spread=0.3), config)
    unlike = report["unmonitored_unlike_background"]
    assert unlike["grocery"]["catalogue"] == ["shoe"] and unlike["grocery"]["photos"] == 40
    assert unlike["grocery"]["flagged_rate"] == 0.0 and unlike["grocery"]["no_match_rate"] == 1.0
    assert unlike["sneakers"]["catalogue"] == ["juice"] and unlike["sneakers"]["flagged_rate"] == 0.0
    assert report["groups"]["grocery"]["no_match_rate"] == 0.0  # in the catalogue, the same photos are judged


def test_the_report_is_on_new_photographs_and_again_apart_on_copies_of_a_reference():
    rng = np.random.default_rng(2)
    gallery, shoes, config = _shoe_gallery(rng)
    copies = frozenset(r.path for r in shoes.records[::4])
    report = open_world_report(gallery, [shoes], _cluster(rng, FRUIT, 40, spread=0.3), config, copies=copies)
    assert report["photos"] == 60 and report["copies"]["photos"] == 20
    assert "copies" not in open_world_report(gallery, [shoes], _cluster(rng, FRUIT, 40, spread=0.3), config)


def test_folds_keep_a_photograph_group_in_one_part():
    from knockoff.evaluation.open_world_report import _folds

    keys = [f"g{i // 3}" for i in range(30)]  # ten photographs, three copies each
    folds = _folds(keys, seed=0, count=5)
    assert sorted(i for fold in folds for i in fold) == list(range(30))
    owners = [{keys[i] for i in fold} for fold in folds]
    assert all(a.isdisjoint(b) for j, a in enumerate(owners) for b in owners[j + 1:])
    assert [len(fold) for fold in folds] == [6] * 5  # two photographs each


def test_leave_one_product_out_screens_each_product_against_the_others_and_measures_what_the_rest_keep():
    """Two shoe models and two juice cartons, each left out in turn: its photos are screened
    against the others of its group, and the others' own photos (cross-fitted) say what the
    bounds that turn it away cost them."""
    from knockoff.evaluation.open_world_report import unmonitored_within_category

    rng = np.random.default_rng(5)
    centers = {"af1": ((1, 0, 0, 0, 0, 0), (1, 0.6, 0, 0, 0, 0)), "aj1": ((1, 0, 0.8, 0, 0, 0), (1, 0.6, 0.8, 0, 0, 0)),
               "juice": ((0, 0, 0, 1, 0, 0), None), "milk": ((0, 0, 0, 1, 0, 0.3), None)}
    vectors, records, held, held_vectors = [], [], [], []
    for name, (genuine, fake) in centers.items():
        brand = "nike" if fake else "grocery"
        for side, center in ((GENUINE, genuine), (FAKE, fake)):
            if center is None:
                continue
            vectors.append(_cluster(rng, center, 30))
            records += [ImageRecord(f"{name}-{side}{i}.jpg", None, name, side, brand) for i in range(30)]
            held_vectors.append(_cluster(rng, center, 20))
            held += [ImageRecord(f"h-{name}-{side}{i}.jpg", None, name, side) for i in range(20)]
    vectors.append(_cluster(rng, FRUIT, 30))
    records += [ImageRecord(f"o{i}.jpg", None, "orange", UNMONITORED) for i in range(30)]
    gallery = Gallery.build(np.concatenate(vectors), records, INFO, scorer=ScorerParams(k=5, candidates=20, evidence=2))
    references = gallery.index.reconstruct_n(0, gallery.index.ntotal)
    parts = [CrawlPart("crawl", held, np.concatenate(held_vectors), True)]
    config = IndexConfig(target_precision=0.9, open_world=OpenWorldParams(min_photos=10, min_per_class=5))
    report = unmonitored_within_category(gallery, references, parts, _cluster(rng, FRUIT, 40, spread=0.3), config,
                                         frozenset())
    assert set(report) == {"nike", "grocery"}
    nike, grocery = report["nike"], report["grocery"]
    assert nike["products"] == 2 and nike["photos"] == 80 and sum(nike["status"].values()) == 80
    assert nike["kept"]["photos"] == 80 and sum(nike["kept"]["status"].values()) == 80 and nike["kept"]["fakes"] == 40
    assert grocery["photos"] == 40 and grocery["kept"]["photos"] == 40 and grocery["kept"]["fakes"] == 0
    # a carton left out leaves the other alone in its kind: the bound it borrows from the shoes
    # turns the left-out one away (without it, 40 of 40 were judged and 38 flagged)
    assert grocery["judged_rate"] <= 0.1 and grocery["flagged_rate"] == 0.0 and nike["flagged_rate"] == 0.0
    assert nike["kept"]["judged_rate"] > 0.5 and grocery["kept"]["judged_rate"] > 0.5  # the products that remain are still judged
