import numpy as np
import pytest

from knockoff.data.records import FAKE, GENUINE, UNMONITORED, ImageRecord
from knockoff.gallery.matching import match
from knockoff.gallery.store import Gallery
from knockoff.runtime.embedding import ModelInfo
from knockoff.scoring import ScorerParams
from knockoff.scoring.calibration import fit_calibration
from knockoff.scoring.open_world import (
    BORROWED,
    NO_MATCH,
    SCORED,
    UNSUPPORTED,
    HeldBack,
    OpenWorld,
    OpenWorldParams,
    conformal_lower_bound,
    decide,
    fit_open_world,
    impostor_depth,
    no_match_bound,
)

INFO = ModelInfo("test", "finetuned", "m", 64, 3, (0.5,) * 3, (0.5,) * 3)


def unit(*vector):
    vector = np.array(vector, dtype=np.float64)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def test_conformal_lower_bound_is_an_order_statistic_with_the_promised_coverage():
    rng = np.random.default_rng(0)
    calibration, fresh = rng.normal(size=2000), rng.normal(size=200_000)
    for alpha in (0.01, 0.05, 0.2):
        bound = conformal_lower_bound(calibration, alpha)
        assert bound in calibration
        assert np.mean(fresh < bound) == pytest.approx(alpha, abs=0.01)
    assert conformal_lower_bound(np.array([0.5, 0.7, 0.9]), 0.01) == 0.5  # too few photos: the smallest


def test_no_match_bound_lets_through_at_most_the_target_share_of_unmonitored_photos():
    rng = np.random.default_rng(1)
    held_back, fresh = rng.uniform(0.3, 0.7, 500), rng.uniform(0.3, 0.7, 200_000)
    bound = no_match_bound(held_back, 0.01)
    assert np.mean(fresh >= bound.value) == pytest.approx(0.01, abs=0.005)
    assert no_match_bound(np.array([0.5, 0.6]), 0.01).value > 0.6  # too few: nothing passes


def _held_back(rng, product, count, fake_share, similarity):
    is_fake = rng.random(count) < fake_share
    raw = np.where(is_fake, rng.normal(0.1, 0.05, count), rng.normal(-0.1, 0.05, count))
    return product, is_fake, raw, rng.normal(similarity, 0.03, count)


def test_calibration_falls_back_from_product_to_group_to_global_and_says_which():
    rng = np.random.default_rng(2)
    parts = [_held_back(rng, "shoe", 200, 0.5, 0.85), _held_back(rng, "boot", 10, 0.5, 0.8),
             _held_back(rng, "juice", 40, 0.0, 0.7)]
    held = HeldBack(
        product=[p for p, f, _, _ in parts for _ in f], group=["nike" if p != "juice" else "grocery" for p, f, _, _ in parts for _ in f],
        is_fake=np.concatenate([f for _, f, _, _ in parts]), product_similarity=np.concatenate([s for *_, s in parts]),
        raw=np.concatenate([r for _, _, r, _ in parts]), nearest_genuine=np.concatenate([s for *_, s in parts]),
        nearest_catalogue=np.concatenate([s for *_, s in parts]), nearest_background=np.full(250, -1.0),
    )
    products = {"shoe": {"group": "nike", "fakes": True}, "boot": {"group": "nike", "fakes": True},
                "juice": {"group": "grocery", "fakes": False, "genuine_mean": 0.8, "genuine_spread": 0.05},
                "jam": {"group": "grocery", "fakes": False, "genuine_mean": 0.8, "genuine_spread": 0.05}}
    world = fit_open_world(held, np.array([0.4, 0.5, 0.55]), products, OpenWorldParams(min_photos=30, min_per_class=15), 0.95)
    assert world.products["shoe"].calibration_level == "product" and world.products["shoe"].support.level == "product"
    assert world.products["boot"].calibration_level == "group"  # 10 photos: pooled with its brand
    assert world.products["boot"].support.level == "group"
    assert world.products["juice"].cold_start.level == "product" and world.products["juice"].calibration is None
    assert world.products["jam"].cold_start.level == "group"  # no held-back photos of its own
    assert OpenWorld.from_dict(world.to_dict()) == world


def test_a_product_whose_photos_cannot_certify_the_target_borrows_its_groups_calibration():
    """18 fakes can never show 0.95 precision with one false flag more than they show (18/19):
    the product alone would flag nothing on its score; pooled with its group it flags."""
    rng = np.random.default_rng(3)
    parts = [_held_back(rng, "shoe", 200, 0.5, 0.85), ("boot", np.arange(40) < 18, None, None)]
    boot_fake = parts[1][1]
    boot_raw = np.where(boot_fake, rng.normal(0.1, 0.05, 40), rng.normal(-0.1, 0.05, 40))
    is_fake = np.concatenate([parts[0][1], boot_fake])
    raw = np.concatenate([parts[0][2], boot_raw])
    similarity = np.concatenate([parts[0][3], rng.normal(0.85, 0.03, 40)])
    held = HeldBack(product=["shoe"] * 200 + ["boot"] * 40, group=["nike"] * 240, is_fake=is_fake,
                    product_similarity=similarity, raw=raw, nearest_genuine=similarity, nearest_catalogue=similarity,
                    nearest_background=np.full(240, -1.0))
    products = {"shoe": {"group": "nike", "fakes": True}, "boot": {"group": "nike", "fakes": True}}
    params = OpenWorldParams(min_photos=30, min_per_class=15)
    alone = fit_calibration(boot_raw, boot_fake, 0.95, closeness=similarity[200:])
    assert alone.recall == 0  # the product's own photos certify no threshold
    world = fit_open_world(held, np.array([0.4, 0.5, 0.55]), products, params, 0.95)
    boot = world.products["boot"]
    assert boot.calibration_level == "group" and boot.calibration.recall > 0.5
    assert boot.calibration.precision >= 0.95
    assert world.products["shoe"].calibration_level == "product"  # 100 fakes: certifies on its own


@pytest.fixture
def open_gallery():
    """Bags with genuine references and fakes; shoes with genuine references and fakes; juice
    with genuine references only; fruit as background (unmonitored) references."""
    vectors, records = [], []
    def add(vector, product, authenticity):
        vectors.append(unit(*vector))
        records.append(ImageRecord(f"{product}-{len(records)}.jpg", f"R{len(records)}", product, authenticity))
    for i in range(4):
        add((1, 0.02 * i, 0, 0, 0), "bag", GENUINE)
        add((1, 0.02 * i, 0.3, 0, 0), "bag", FAKE)
        add((0, 1, 0.02 * i, 0, 0), "shoe", GENUINE)
        add((0.0, 1, 0.3 + 0.02 * i, 0, 0), "shoe", FAKE)
        add((0, 0, 0, 1, 0.02 * i), "juice", GENUINE)
        add((0, 0, 0, 0.02 * i, 1), "orange", UNMONITORED)
    gallery = Gallery.build(np.stack(vectors), records, INFO.__class__(**{**INFO.__dict__, "embedding_dim": 5}),
                            scorer=ScorerParams(k=3, temperature=0.02, candidates=6, evidence=2))
    return gallery


def test_a_photo_is_judged_only_against_its_own_products_references(open_gallery):
    # A genuine-looking bag that also sits near shoe fakes: shoe fakes must not count.
    query = unit(1, 0.01, 0, 0, 0) + 0.2 * unit(0, 1, 0.3, 0, 0)
    result = match(open_gallery, unit(*query)[None])
    assert result.product == ["bag"]
    evidence = [e for column in (result.nearest_fake, result.nearest_genuine, result.neighbors) for e in column[0].as_py()]
    assert {e["product"] for e in evidence} == {"bag"}
    assert result.raw[0] < 0  # nearer bag genuine than bag fakes


def test_a_claimed_product_is_the_one_judged_and_the_mismatch_shows(open_gallery):
    result = match(open_gallery, unit(1, 0.01, 0, 0, 0)[None], claimed=["SHOE"])
    assert result.product == ["shoe"] and result.matched_product == ["bag"]
    assert {e["product"] for e in result.nearest_genuine[0].as_py()} == {"shoe"}


def test_statuses_no_match_unsupported_and_scored(open_gallery):
    held = HeldBack(["bag"] * 40 + ["juice"] * 40, ["b"] * 40 + ["g"] * 40, np.array([True, False] * 20 + [False] * 40),
                    np.full(80, 0.95), np.array([0.02, -0.02] * 20 + [-1.0] * 40), np.full(80, 0.95), np.full(80, 0.95),
                    np.full(80, -1.0))
    described = {"bag": {"group": "b", "fakes": True}, "shoe": {"group": "b", "fakes": True},
                 "juice": {"group": "g", "fakes": False, "genuine_mean": 0.99, "genuine_spread": 0.01}}
    open_gallery.info.open_world = fit_open_world(held, np.array([0.6, 0.65, 0.7]), described, OpenWorldParams(min_photos=30), 0.9)
    photos = np.stack([
        unit(0, 0, 0, 0.01, 1),  # an orange: nearest to a background reference
        unit(0, 0, 1, 0, 0),  # nothing in particular: far from everything
        unit(1, 0.3, 0, 0, 0.5),  # a bag, but far from every bag reference
        unit(1, 0.01, 0.29, 0, 0),  # a fake-looking bag
        unit(1, 0.01, 0.0, 0, 0),  # a genuine-looking bag
    ])
    result = match(open_gallery, photos, with_evidence=False)
    assert result.status[0] == NO_MATCH and "unmonitored" in result.reason[0]
    assert result.status[1] == NO_MATCH and "catalogued products start at" in result.reason[1]
    assert result.status[2] == UNSUPPORTED and "held-back photos are >=" in result.reason[2]
    assert result.status[3:] == [SCORED, SCORED] and list(result.flagged[3:]) == [True, False]
    assert not result.flagged[:3].any() and np.isnan(result.score[:3]).all()
    assert result.level[3] == "product"


def test_a_view_of_a_product_below_the_catalogue_threshold_but_within_its_support_needs_references(open_gallery):
    held = HeldBack(["bag"] * 40, ["b"] * 40, np.array([True, False] * 20), np.full(40, 0.9),
                    np.array([0.02, -0.02] * 20), np.full(40, 0.9), np.full(40, 0.9), np.full(40, -1.0))
    described = {"bag": {"group": "b", "fakes": True}, "shoe": {"group": "b", "fakes": True},
                 "juice": {"group": "g", "fakes": False, "genuine_mean": 0.99, "genuine_spread": 0.01}}
    open_gallery.info.open_world = fit_open_world(held, np.array([0.97, 0.98, 0.99]), described, OpenWorldParams(min_photos=30), 0.9)
    photo = unit(1, 0.0, 0.0, 0.35, 0)  # a bag, cosine ~0.94 to the nearest bag: within its support, under the threshold
    result = match(open_gallery, photo[None], with_evidence=False)
    assert result.product_similarity[0] < open_gallery.info.open_world.no_match.value
    assert result.status == [UNSUPPORTED] and "like its held-back photos" in result.reason[0]
    assert not result.flagged[0]


def test_cold_start_threshold_flags_scored_photos_when_the_genuine_tail_lies_below_the_no_match_gate():
    """Genuine-only product whose far genuine photos fall under the catalogue threshold: the
    flag threshold must sit among photos that reach a verdict, not in the no_match region."""
    rng = np.random.default_rng(3)
    similarity = np.clip(rng.normal(0.8, 0.09, 400), -1, 1)  # held-back genuine photos of 'shoe'
    held = HeldBack(["shoe"] * 400, ["nike"] * 400, np.zeros(400, dtype=bool), similarity, np.zeros(400), similarity,
                    similarity, np.full(400, -1.0))
    products = {"shoe": {"group": "nike", "fakes": False, "genuine_mean": 0.82, "genuine_spread": 0.09}}
    unmonitored = rng.uniform(0.3, 0.7, 500)
    params = OpenWorldParams(cold_start_false_flag_rate=0.02, min_photos=30)
    world = fit_open_world(held, unmonitored, products, params, 0.95)
    cold, gate = world.products["shoe"].cold_start, world.no_match.value
    flag_below = cold.mean - cold.threshold * cold.spread  # similarity under which a scored photo is flagged
    assert flag_below > gate  # reachable: some scored photos can be flagged
    genuine_flagged = (similarity >= gate) & (similarity <= flag_below)
    assert 0 < genuine_flagged.mean() <= 0.02
    # fresh genuine photos like these: the promised rate holds out of sample
    fresh = np.clip(rng.normal(0.8, 0.09, 100_000), -1, 1)
    assert ((fresh >= gate) & (fresh <= flag_below)).mean() == pytest.approx(0.02, abs=0.01)


def test_a_photo_with_one_side_far_is_unsupported_when_held_back_photos_had_both_sides_close(open_gallery):
    """A new kind of photo (a studio shot among listing photos) finds all its near references on
    one side by style: the nearer side must be as close as on the photos that calibrated it."""
    held = HeldBack(["bag"] * 40, ["b"] * 40, np.array([True, False] * 20), np.full(40, 0.97),
                    np.array([0.02, -0.02] * 20), np.full(40, 0.95), np.full(40, 0.97), np.full(40, -1.0),
                    nearest_fake=np.full(40, 0.96))
    described = {"bag": {"group": "b", "fakes": True}, "shoe": {"group": "b", "fakes": True},
                 "juice": {"group": "g", "fakes": False, "genuine_mean": 0.99, "genuine_spread": 0.01}}
    world = fit_open_world(held, np.array([0.5, 0.55, 0.6]), described, OpenWorldParams(min_photos=30), 0.9)
    assert world.products["bag"].style.value == pytest.approx(0.95) and world.products["juice"].style is None
    open_gallery.info.open_world = world
    one_sided = unit(1, 0.01, 0.3, 0, 0) + 0.12 * unit(0, 0, 1, 0, 0)  # right by the bag fakes, far from genuine bags
    both_close = unit(1, 0.01, 0.15, 0, 0)
    result = match(open_gallery, np.stack([unit(*one_sided), both_close]), with_evidence=False)
    assert result.status[0] == UNSUPPORTED and "both sides are >=" in result.reason[0] and not result.flagged[0]
    assert result.status[1] == SCORED
    assert OpenWorld.from_dict(world.to_dict()) == world


def test_a_photo_no_closer_to_a_product_than_its_groups_other_products_is_no_match(open_gallery):
    """Held-back shoes come as close as 0.3 to the bags: a photo at 0.3 from the bags may be any
    product of the kind, so it is not judged as a bag."""
    rng = np.random.default_rng(4)
    held = HeldBack(["bag"] * 40, ["b"] * 40, np.array([True, False] * 20), np.full(40, 0.2),
                    np.array([0.02, -0.02] * 20), np.full(40, 0.2), np.full(40, 0.9), np.full(40, -1.0),
                    nearest_fake=np.full(40, 0.2), impostors={"bag": rng.uniform(0.0, 0.3, 200)})
    described = {"bag": {"group": "b", "fakes": True}}
    world = fit_open_world(held, np.array([-0.5, -0.4]), described, OpenWorldParams(min_photos=30), 0.9)
    assert world.products["bag"].impostor.level == "category" and 0.28 < world.products["bag"].impostor.value <= 0.3
    verdicts = decide(world, ["bag", "bag"], np.array([0.25, 0.5]), np.array([-1.0, -1.0]), np.array([0.25, 0.5]),
                      np.array([0.0, 0.0]), np.array([0.25, 0.5]), np.array([0.25, 0.5]))
    assert verdicts.status == [NO_MATCH, SCORED] and "other b products reach" in verdicts.reason[0]


def _held_back_with_hats(impostors: dict[str, np.ndarray], bag_neighbours: int = 5) -> HeldBack:
    """40 held-back bags (group b) at similarities 0.50..0.89 to their references, beside
    `bag_neighbours` other products of group b (10 photos each), and 40 hats (group h, the only
    product of its kind) at 0.60..0.99."""
    others = [f"purse{i}" for i in range(bag_neighbours) for _ in range(10)]
    own = np.concatenate([np.linspace(0.5, 0.89, 40), np.full(len(others), 0.9), np.linspace(0.6, 0.99, 40)])
    n = len(own)
    return HeldBack(["bag"] * 40 + others + ["hat"] * 40, ["b"] * (40 + len(others)) + ["h"] * 40,
                    np.array([True, False] * (n // 2)), own, np.array([0.02, -0.02] * (n // 2)), own, np.full(n, 0.95),
                    np.full(n, -1.0), nearest_fake=own, impostors=impostors)


DESCRIBED = {"bag": {"group": "b", "fakes": True}, "hat": {"group": "h", "fakes": True}}
# 98 neighbour photos below every bag, 2 closer than 20 of the 40 bags: rank 20 / 41 at 2%
BAG_NEIGHBOURS = np.concatenate([np.full(98, 0.4), np.full(2, 0.7)])
HAT_DEPTH = np.quantile(np.linspace(0.6, 0.99, 40), 20 / 41)


def test_a_product_alone_in_its_group_borrows_its_impostor_bound_by_rank_from_other_groups():
    """No other hat is catalogued, yet an unmonitored hat most resembles the hats: the bound is
    set as deep into the hats' own photos as the bags' neighbours reach into the bags' photos."""
    held = _held_back_with_hats({"bag": BAG_NEIGHBOURS})
    depth = impostor_depth(held, 0.02, min_products=5)
    assert depth.value == pytest.approx(20 / 41) and depth.photos == 100
    world = fit_open_world(held, np.array([-0.5, -0.4]), DESCRIBED, OpenWorldParams(min_photos=30), 0.9)
    assert world.products["bag"].impostor.level == "category"
    hat = world.products["hat"].impostor
    assert hat.level == BORROWED and hat.value == pytest.approx(HAT_DEPTH) and 0.78 < hat.value < 0.80
    verdicts = decide(world, ["hat", "hat"], np.array([0.75, 0.9]), np.array([-1.0, -1.0]), np.array([0.75, 0.9]),
                      np.array([0.0, 0.0]), np.array([0.75, 0.9]), np.array([0.75, 0.9]))
    assert verdicts.status == [NO_MATCH, SCORED] and "too few other h products are catalogued" in verdicts.reason[0]
    assert OpenWorld.from_dict(world.to_dict()) == world


def test_a_bound_set_on_too_few_neighbour_products_is_made_no_looser_than_the_borrowed_one():
    """One other hat (a cap) bounds the hats loosely: the cap is not every hat nobody monitors,
    where the params ask for five neighbour products."""
    caps_far, caps_near = np.full(50, 0.3), np.full(50, 0.95)
    held = _held_back_with_hats({"bag": BAG_NEIGHBOURS, "hat": caps_far})
    held.product[-10:], held.group[-10:] = ["cap"] * 10, ["h"] * 10  # the last ten hat photos show caps
    params = OpenWorldParams(min_photos=30, category_min_products=5)
    assert impostor_depth(held, 0.02, min_products=5).value == pytest.approx(20 / 41)  # the hats' one neighbour adds nothing
    loose = fit_open_world(held, np.array([-0.5, -0.4]), DESCRIBED, params, 0.9).products["hat"].impostor
    hats = np.linspace(0.6, 0.99, 40)[:30]
    assert loose.level == BORROWED and loose.value == pytest.approx(np.quantile(hats, 20 / 41))
    held.impostors["hat"] = caps_near  # the cap's own bound, stricter than the borrowed one, stands
    strict = fit_open_world(held, np.array([-0.5, -0.4]), DESCRIBED, params, 0.9).products["hat"].impostor
    assert strict.level == "category" and strict.value == pytest.approx(0.95)
    alone = fit_open_world(held, np.array([-0.5, -0.4]), DESCRIBED, OpenWorldParams(min_photos=30), 0.9)
    assert alone.products["hat"].impostor.level == "category"  # the shipped default: one neighbour product is enough
    held.impostors["hat"] = caps_far
    alone = fit_open_world(held, np.array([-0.5, -0.4]), DESCRIBED, OpenWorldParams(min_photos=30), 0.9)
    assert alone.products["hat"].impostor.level == "category" and alone.products["hat"].impostor.value < 0.31


def test_a_product_without_held_back_photos_keeps_the_bound_its_well_covered_group_sets():
    held = _held_back_with_hats({"bag": BAG_NEIGHBOURS, "wallet": np.full(100, 0.3)})
    described = {**DESCRIBED, "wallet": {"group": "b", "fakes": True}}  # catalogued, no held-back photo
    params = OpenWorldParams(min_photos=30, category_min_products=5)
    world = fit_open_world(held, np.array([-0.5, -0.4]), described, params, 0.9)
    assert world.products["wallet"].impostor.level == "category"  # six neighbour products: bag and five purses


def test_bags_with_too_few_neighbour_products_lend_no_depth_and_no_bound_is_made_up():
    held = _held_back_with_hats({"bag": BAG_NEIGHBOURS}, bag_neighbours=4)
    assert impostor_depth(held, 0.02, min_products=5) is None
    world = fit_open_world(held, np.array([-0.5, -0.4]), DESCRIBED, OpenWorldParams(min_photos=30, category_min_products=5), 0.9)
    assert world.products["hat"].impostor is None and world.products["bag"].impostor.level == "category"
    held = _held_back_with_hats({})
    assert impostor_depth(held, 0.02, min_products=5) is None


def test_a_reason_never_prints_two_unequal_numbers_alike():
    from knockoff.wording import apart

    assert apart(0.678, 0.681) == ["0.678", "0.681"]  # "0.68 ... below the 0.68" before
    assert apart(0.6801, 0.6804) == ["0.6801", "0.6804"] and apart(0.5, 0.5) == ["0.50", "0.50"]
    assert apart(0.61, 0.72, 0.68) == ["0.61", "0.72", "0.68"]
