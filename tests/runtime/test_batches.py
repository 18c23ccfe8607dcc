import numpy as np

from knockoff.data.records import ImageRecord
from knockoff.runtime.batches import decode_batches
from tests.helpers import write_image


def test_order_errors_and_pixels_line_up(tmp_path):
    colors = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    records = []
    for i in range(11):
        name = list(colors)[i % 3]
        if i in (4, 9):
            records.append(ImageRecord(str(tmp_path / f"missing{i}.jpg"), listing_id=str(i)))
        else:
            records.append(ImageRecord(str(write_image(tmp_path / f"{i}.png", colors[name])), listing_id=str(i)))
    records.append(ImageRecord("", listing_id="no path"))
    batches = list(decode_batches(records, size=8, batch_size=4, workers=3, prefetch=1))
    assert [len(b.records) for b in batches] == [4, 4, 4]
    flat = [r for b in batches for r in b.records]
    assert [r.listing_id for r in flat] == [r.listing_id for r in records]
    errors = [e for b in batches for e in b.errors]
    assert [i for i, e in enumerate(errors) if e] == [4, 9, 11]
    assert "no path" in errors[11]
    images = np.concatenate([b.images for b in batches])
    decoded = [r for r, e in zip(records, errors) if e is None]
    for record, image in zip(decoded, images):
        brightest_channel = int(image.reshape(-1, 3).mean(axis=0).argmax())
        assert brightest_channel == int(record.listing_id) % 3  # red, green, blue in turn


def test_empty_input_yields_nothing():
    assert list(decode_batches([], size=8)) == []


def test_slow_downloads_wait_side_by_side_off_the_decode_threads(trickling_server, sample_photos, monkeypatch):
    """Four URLs that trickle until the deadline, among local photos, with one decode thread:
    all four downloads are under way at once (they used to take the decode threads one by one),
    each is one error row, and every local photo still decodes in input order."""
    from knockoff.images import decode

    monkeypatch.setattr(decode, "DOWNLOAD_DEADLINE_S", 1.0)
    local = [ImageRecord(path=str(p)) for p in sample_photos[:12]]
    slow = [ImageRecord(path=f"{trickling_server.url}/slow?{i}") for i in range(4)]
    records = local[:3] + slow[:2] + local[3:9] + slow[2:] + local[9:] + [ImageRecord(path=f"{trickling_server.url}/photo")]
    batches = list(decode_batches(records, 32, batch_size=4, workers=1, prefetch=1))
    assert [r.path for b in batches for r in b.records] == [r.path for r in records]
    errors = {r.path: e for b in batches for r, e in zip(b.records, b.errors)}
    assert all("longer than 1 s" in errors[r.path] for r in slow)
    assert all(errors[r.path] is None for r in local) and errors[records[-1].path] is None
    assert trickling_server.peak == 4
