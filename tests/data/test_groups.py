import numpy as np
import pytest
from PIL import Image, ImageOps

from knockoff.data.groups import (
    GroupOptions,
    candidate_pairs,
    conflicting_groups,
    group_keys,
    group_weights,
    groups_report,
    new_photographs,
    one_per_group,
    photograph_groups,
    read_groups,
    write_groups,
)
from tests.helpers import SAMPLE


def test_candidate_pairs_equal_exact_search_on_synthetic_vectors():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(300, 32)).astype(np.float32)
    vectors[150:] = vectors[:150] + rng.normal(scale=0.3, size=(150, 32))  # 150 near twins
    mirrored = vectors[::-1].copy()  # another view: each photo searched as the photo 299 - i
    options = GroupOptions(candidates=3, min_similarity=0.6)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    expected = set()
    for queries in (unit, mirrored / np.linalg.norm(mirrored, axis=1, keepdims=True)):
        similarity = queries @ unit.T
        for i in range(len(queries)):
            order = [j for j in np.argsort(-similarity[i]) if j != i][:3]  # self excluded, as FAISS ranks it first
            expected |= {(min(i, j), max(i, j)) for j in order if similarity[i, j] >= 0.6}
    found = set(candidate_pairs(vectors, [mirrored], options))
    assert found == expected and {(i, i + 150) for i in range(150)} <= found


@pytest.mark.slow
def test_a_photo_and_its_edited_copies_form_one_group_and_other_photos_their_own(tmp_path):
    pytest.importorskip("cv2")
    # six photographs of the sample that no other sample photo copies (48 photos, 28 groups)
    originals = [next((SAMPLE / "sneakers" / "train" / "images").glob(f"{stem}_jpg.*"))
                 for stem in ("0004", "0006", "0073", "0098", "0099", "0102")]
    photo = Image.open(originals[0])
    width, height = photo.size
    copies = {"crop.jpg": photo.crop((60, 40, width - 30, height - 70)),
              "mirror.jpg": ImageOps.mirror(photo),
              "rotated.jpg": photo.rotate(12, expand=True, fillcolor=(255, 255, 255))}
    for name, image in copies.items():
        image.save(tmp_path / name, quality=80)
    paths = [str(p) for p in originals] + [str(tmp_path / name) for name in copies]
    # every pair is a candidate: the pixels alone decide
    everything = np.ones((len(paths), 4), np.float32)
    groups = photograph_groups(paths, everything, options=GroupOptions(candidates=len(paths), min_similarity=-1.0))
    assert groups.pairs == len(paths) * (len(paths) - 1) // 2
    assert groups.group.tolist() == [0, 1, 2, 3, 4, 5, 0, 0, 0] and groups.count == 6


def test_groups_are_written_and_read_back_by_portable_path(tmp_path):
    from knockoff.data.groups import PhotographGroups

    groups = PhotographGroups(["/data/a.jpg", "/data/b.jpg", "/data/c.jpg"], np.array([0, 1, 0]), pairs=3, copies=1)
    write_groups(groups, ["a.jpg", "b.jpg", "c.jpg"], ["1", "2", "3"], tmp_path / "groups.parquet")
    read = read_groups(tmp_path / "groups.parquet")
    assert read == {"a.jpg": 0, "b.jpg": 1, "c.jpg": 0}
    keys = group_keys(["c.jpg", "unknown.jpg", "a.jpg"], read)
    assert keys[0] == keys[2] != keys[1]
    with pytest.raises(FileNotFoundError, match="knockoff groups"):
        read_groups(tmp_path / "missing.parquet")


def test_splits_by_group():
    keys = ["g0", "g0", "g1", "g2", "g2", "g2"]
    assert conflicting_groups(keys, ["fake", "genuine", "fake", "fake", None, "fake"]) == {"g0"}
    assert new_photographs(["g1", "g3", "g2"], ["g0", "g1"]).tolist() == [False, True, True]
    assert one_per_group(keys).tolist() == [0, 2, 3]
    weights = group_weights(keys)
    assert weights.tolist() == pytest.approx([0.5, 0.5, 1.0, 1 / 3, 1 / 3, 1 / 3])
    for key in set(keys):  # each photograph weighs the same
        assert sum(w for w, k in zip(weights, keys) if k == key) == pytest.approx(1.0)


def test_groups_report_counts_photos_copying_another_source_and_conflicting_labels():
    sources = ["train", "train", "valid", "valid", "valid"]
    labels = ["a | fake", "a | fake", "a | fake", "b | genuine", "b | fake"]
    group = np.array([0, 1, 0, 3, 3])
    report = groups_report(sources, labels, group, pairs=7, copies=2)
    assert report["groups"] == 3 and report["groups_with_conflicting_labels"] == 1
    assert report["sources"]["valid"] == {"photos": 3, "groups": 2, "photos_copying_another_source": 1,
                                          "photos_in_conflicting_groups": 2}
    assert report["sources"]["train"]["photos_copying_another_source"] == 1
