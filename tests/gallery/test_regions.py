import numpy as np

from knockoff.gallery.patches import build_banks
from knockoff.gallery.regions import MAX_REGIONS, find_regions


def _unit(vectors):
    return (vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)).astype(np.float32)


def _banks_and_photo():
    """Genuine references share 12 part features (one per cell); a known fake has one odd
    part. The photo shows the genuine parts, except the fake's odd part at cell (1, 4) and
    an unseen part at (5, 0)."""
    rng = np.random.default_rng(0)
    grid, channels = 6, 64
    parts = _unit(rng.normal(size=(grid * grid, channels)))
    genuine = np.stack([parts.reshape(grid, grid, channels)] * 2)
    odd, unseen = _unit(rng.normal(size=(2, channels)))
    fake = parts.copy().reshape(grid, grid, channels)
    fake[2, 2] = odd  # the fake shows its odd part at (2, 2)
    banks = build_banks(np.concatenate([genuine, fake[None]]), np.array([0, 1, 2]),
                        [("shoe", "genuine")] * 2 + [("shoe", "fake")], "m", per_reference=grid * grid)
    photo = parts.reshape(grid, grid, channels).copy()
    photo[1, 4] = odd
    photo[5, 0] = unseen
    return banks, photo


def _box(y, x, grid=6):
    """The 3 x 3 cells around (y, x), clipped to the photo, as fractions."""
    return (max(0, x - 1) / grid, max(0, y - 1) / grid, min(grid, x + 2) / grid, min(grid, y + 2) / grid)


def _where(region):
    return (region.x0, region.y0, region.x1, region.y1)


def test_regions_are_the_photos_parts_unlike_any_genuine_reference_with_their_match():
    banks, photo = _banks_and_photo()
    regions = find_regions(photo, "shoe", banks, {0: "g0.jpg", 1: "g1.jpg", 2: "fake.jpg"}.__getitem__)
    first, second = regions[:2]
    assert {_where(first), _where(second)} == {_box(1, 4), _box(5, 0)}
    at_fake = next(r for r in regions[:2] if r.side == "fake")
    assert at_fake.reference_path == "fake.jpg"  # nearer the fake's part than any genuine one
    assert _where(at_fake) == _box(1, 4)
    assert (at_fake.ref_x0, at_fake.ref_y0, at_fake.ref_x1, at_fake.ref_y1) == _box(2, 2)  # the fake's own cell
    unseen = next(r for r in regions[:2] if r.side == "genuine")
    assert unseen.reference_path in ("g0.jpg", "g1.jpg") and unseen.distance > 0.5
    assert all(r.distance < 1e-3 for r in regions[2:])  # the rest has a genuine twin
    assert [r.distance for r in regions] == sorted((r.distance for r in regions), reverse=True)
    assert len(regions) <= MAX_REGIONS and all(0 <= r.x0 < r.x1 <= 1 and 0 <= r.y0 < r.y1 <= 1 for r in regions)


def test_neighbouring_cells_make_one_region_and_a_product_without_a_bank_none():
    banks, photo = _banks_and_photo()
    photo[1, 5] = photo[1, 4]  # the odd part spans two cells
    regions = find_regions(photo, "shoe", banks, str)
    boxes = [_where(r) for r in regions]
    assert (_box(1, 4) in boxes) != (_box(1, 5) in boxes)  # one of the two, not both
    assert find_regions(photo, "bag", banks, str) == []


def test_with_an_objectness_head_regions_stay_on_the_product():
    """The photo's most unlike cell is background (the unseen part at (5, 0)); a head fit on
    cells inside and outside a box says the left column is not the product."""
    from knockoff.gallery.patches import fit_objectness

    banks, photo = _banks_and_photo()
    cells = photo.reshape(36, -1)
    inside = np.ones((6, 6), bool)
    inside[:, 0] = False  # the box leaves out the left column
    banks.objectness["shoe"] = fit_objectness(cells, inside.ravel())
    on_product = banks.product_cells(cells, "shoe")
    assert (on_product == inside.ravel()).all()
    regions = find_regions(photo, "shoe", banks, str)
    assert regions[0].side == "fake" and _where(regions[0]) == _box(1, 4)
    assert _box(5, 0) not in [_where(r) for r in regions]
    assert fit_objectness(cells, np.ones(36, bool)) is None  # a box over everything teaches nothing
