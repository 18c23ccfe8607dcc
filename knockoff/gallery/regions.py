"""Local evidence: the regions of a photo least like any genuine reference of its product.

Each cell of the photo's patch grid (knockoff/model/patches.py) is matched against its
product's genuine bank and its known-fake bank (gallery/patches.py). A cell's distance is
1 - cosine to its nearest genuine patch: how unlike any genuine reference that part of the
photo is. The farthest cells on the product (where the product has an objectness head:
gallery/patches.py), each at least three cells from a region already chosen, are the regions; each comes with the reference region it matched best, so an analyst sees this
part of the photo beside that part of a genuine shoe. A region nearer to a known fake's patch
than to any genuine one is labelled `fake`, with the fake it matched: the strongest local
evidence. Coordinates are fractions of the upright photo (the model sees it squashed to a
square, so fractions carry over both ways).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from knockoff.data.records import FAKE, GENUINE
from knockoff.gallery.patches import PatchBanks

MAX_REGIONS = 5
SEPARATION = 3  # cells: regions closer than this to a chosen one describe the same part
SPAN = 1  # cells each side of a region's centre: the 3 x 3 neighbourhood its feature averages


@dataclass(frozen=True)
class Region:
    x0: float
    y0: float
    x1: float
    y1: float
    distance: float  # 1 - cosine to the nearest genuine patch (0 = a genuine reference has it)
    reference_path: str  # the reference whose region matched best (a known fake's where side is fake)
    ref_x0: float
    ref_y0: float
    ref_x1: float
    ref_y1: float
    side: str  # 'genuine' or 'fake': which side the best match is on

    def to_dict(self) -> dict:
        return asdict(self)


def find_regions(features: np.ndarray, product: str, banks: PatchBanks, path_of: Callable[[int], str],
                 count: int = MAX_REGIONS) -> list[Region]:
    """The photo's `count` most unlike regions, most unlike first; none if its product has no
    genuine bank. `features`: (g, g, C) of one photo; `path_of`: gallery row -> reference path.
    Only the cells on the product are matched against the genuine bank, and only the chosen
    regions against the fakes': what a region's side needs."""
    grid = features.shape[0]
    cells = np.ascontiguousarray(features.reshape(-1, features.shape[-1]), np.float32)
    on_product = banks.product_cells(cells, product)  # where the product has an objectness head
    candidates = np.arange(len(cells)) if on_product is None else np.flatnonzero(on_product)
    genuine = banks.nearest(cells[candidates], product, GENUINE)
    if genuine is None:
        return []
    genuine_similarity = np.full(len(cells), np.inf, np.float32)
    genuine_similarity[candidates] = genuine[0]
    distance = 1.0 - genuine_similarity.astype(np.float64)  # -inf off the product
    genuine_patch = np.zeros(len(cells), np.int64)
    genuine_patch[candidates] = genuine[1]
    chosen = np.array(_farthest_apart(distance, grid, count), np.int64)
    fake = banks.nearest(cells[chosen], product, FAKE)
    regions = []
    for j, cell in enumerate(chosen):
        on_fake_side = fake is not None and fake[0][j] > genuine_similarity[cell]
        patch = int(fake[1][j]) if on_fake_side else int(genuine_patch[cell])
        regions.append(Region(*_box(int(cell), grid), float(distance[cell]), path_of(int(banks.rows[patch])),
                              *_box(int(banks.cells[patch]), banks.grid), FAKE if on_fake_side else GENUINE))
    return regions


def _farthest_apart(distance: np.ndarray, grid: int, count: int) -> list[int]:
    """Cells in order of distance, skipping any within SEPARATION cells of one already taken."""
    taken: list[int] = []
    for cell in np.argsort(-distance, kind="stable"):
        if not np.isfinite(distance[cell]):
            break  # off the product
        y, x = divmod(int(cell), grid)
        if all(max(abs(y - ty), abs(x - tx)) >= SEPARATION for ty, tx in (divmod(t, grid) for t in taken)):
            taken.append(int(cell))
            if len(taken) == count:
                break
    return taken


def _box(cell: int, grid: int) -> tuple[float, float, float, float]:
    y, x = divmod(cell, grid)
    return (max(0, x - SPAN) / grid, max(0, y - SPAN) / grid, min(grid, x + SPAN + 1) / grid, min(grid, y + SPAN + 1) / grid)
