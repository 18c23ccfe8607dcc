import numpy as np
import pytest

from knockoff.gallery.patches import PatchBanks, build_banks, coreset


def _unit(rng, *shape):
    vectors = rng.normal(size=shape).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def test_the_coreset_covers_every_cluster_that_random_sampling_misses():
    """k-center keeps the rare part: 995 points in one tight cluster, 5 far off; a coreset of
    6 holds one of the far ones, as the exact farthest-point distance shows."""
    rng = np.random.default_rng(0)
    common = _unit(rng, 1, 32) + 0.01 * rng.normal(size=(995, 32)).astype(np.float32)
    rare = -common[:5] + 0.01
    vectors = np.concatenate([common, rare])
    kept = coreset(vectors, 6)
    assert len(set(kept.tolist())) == 6 and (kept >= 995).any()
    # every point lies within the coreset radius of a kept one (exact check)
    radius = np.sqrt(((vectors[:, None] - vectors[kept][None]) ** 2).sum(-1)).min(1).max()
    assert radius < 0.5
    assert coreset(vectors[:4], 6).tolist() == [0, 1, 2, 3]  # fewer than asked: all of them


def test_banks_keep_per_reference_patches_with_their_reference_and_cell(tmp_path):
    rng = np.random.default_rng(1)
    features = _unit(rng, 6, 4, 4, 8)  # 6 references, 4x4 cells, 8 channels
    keys = [("shoe", "genuine")] * 4 + [("shoe", "fake")] * 2
    rows = np.array([10, 11, 12, 13, 20, 21])
    banks = build_banks(features, rows, keys, "m1-patches", per_reference=3)
    assert banks.keys == [("shoe", "fake"), ("shoe", "genuine")] and banks.offsets.tolist() == [0, 6, 18]
    for vector, row, cell in zip(banks.vectors, banks.rows, banks.cells):
        reference = int(np.flatnonzero(rows == row)[0])
        y, x = divmod(int(cell), 4)
        np.testing.assert_allclose(vector, features[reference, y, x], atol=1e-3)  # float16
    assert banks.bank("shoe", "genuine").shape == (12, 8) and banks.bank("bag", "genuine") is None
    similarity, patch = banks.nearest(features[2].reshape(16, 8), "shoe", "genuine")  # a reference's own cells
    kept = patch[similarity > 0.999]
    assert len(kept) == 3 and (banks.rows[kept] == 12).all() and (6 <= kept).all()  # its 3 kept patches, found exactly
    assert banks.nearest(features[0, 0], "bag", "genuine") is None
    path = tmp_path / "patches.npz"
    banks.save(path)
    again = PatchBanks.read(path)
    assert again.digest() == banks.digest() and again.keys == banks.keys and again.grid == 4


def test_adding_references_later_gives_the_banks_a_rebuild_would():
    rng = np.random.default_rng(2)
    features = _unit(rng, 5, 4, 4, 8)
    keys = [("shoe", "genuine")] * 3 + [("boot", "genuine"), ("shoe", "fake")]
    whole = build_banks(features, np.arange(5), keys, "m", per_reference=4)
    grown = build_banks(features[:2], np.arange(2), keys[:2], "m", per_reference=4).extended(features[2:], np.arange(2, 5), keys[2:], 4)
    assert grown.digest() == whole.digest()
    with pytest.raises(ValueError, match="do not fit"):
        whole.extended(_unit(rng, 1, 5, 5, 8), np.array([9]), [("shoe", "genuine")])


def test_a_damaged_bank_file_is_one_clear_error(tmp_path):
    path = tmp_path / "patches.npz"
    path.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ValueError, match="not a patch bank file"):
        PatchBanks.read(path)


def test_banks_without_rows_renumber_the_rows_after_them():
    rng = np.random.default_rng(3)
    features = _unit(rng, 5, 4, 4, 8)
    keys = [("shoe", "genuine")] * 3 + [("shoe", "fake")] * 2
    banks = build_banks(features, np.arange(5), keys, "m", per_reference=2)
    without = banks.without_rows(1, 3)  # rows 1 and 2 go; 3 and 4 become 1 and 2
    expected = build_banks(features[[0, 3, 4]], np.arange(3), [keys[i] for i in (0, 3, 4)], "m", per_reference=2)
    assert without.digest() == expected.digest()
