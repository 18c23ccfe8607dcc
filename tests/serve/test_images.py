import os

import pytest
from fastapi.testclient import TestClient

from tests.serve.conftest import login


@pytest.fixture
def client(app):
    return login(app, "root")[0]


def first_item(database) -> int:
    return database.execute("SELECT id FROM items WHERE error IS NULL ORDER BY id LIMIT 1").fetchone()[0]


def test_listing_and_evidence_thumbnails(client, database, settings):
    item = first_item(database)
    listing = client.get(f"/images/items/{item}")
    assert listing.status_code == 200 and listing.headers["content-type"] == "image/jpeg" and listing.content[:2] == b"\xff\xd8"
    assert client.get(f"/images/items/{item}/nearest_fake/1").status_code == 200
    assert len(list(settings.thumbnails.rglob("*.jpg"))) == 2  # cached on disk
    assert client.get(f"/images/items/{item}/nearest_fake/9").status_code == 404
    assert client.get(f"/images/items/{item}/passwords/0").status_code == 404


@pytest.mark.parametrize("path", ["/etc/passwd", "../../../../etc/passwd", "sneakers/../../../../etc/hostname"])
def test_paths_outside_the_roots_are_refused(client, database, path):
    item = first_item(database)
    database.execute("UPDATE items SET path = ? WHERE id = ?", (path, item))
    response = client.get(f"/images/items/{item}")
    assert response.status_code == 403 and b"root:" not in response.content


def test_evidence_paths_with_dot_dot_are_refused(client, database):
    item = first_item(database)
    evidence = '{"nearest_fake": [{"path": "../../../../etc/passwd", "similarity": 0.9}], "nearest_genuine": [], "neighbors": []}'
    database.execute("UPDATE items SET evidence = ? WHERE id = ?", (evidence, item))
    assert client.get(f"/images/items/{item}/nearest_fake/0").status_code == 403


def test_symlinks_out_of_a_root_are_refused(client, database, tmp_path, settings):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    link = tmp_path / "link.jpg"
    os.symlink(secret, link)
    item = first_item(database)
    database.execute("UPDATE items SET path = ? WHERE id = ?", (str(link), item))
    response = client.get(f"/images/items/{item}")
    assert response.status_code == 403 and b"top secret" not in response.content


def test_a_non_image_inside_a_root_is_never_sent_raw(client, database, tmp_path, monkeypatch):
    from tests.helpers import SAMPLE

    item = first_item(database)
    database.execute("UPDATE items SET path = ? WHERE id = ?", (str(SAMPLE / "README.md"), item))
    response = client.get(f"/images/items/{item}")
    assert b"Bundled sample" not in response.content and response.content.startswith(b"\xff\xd8")  # a placeholder JPEG
    assert response.headers["X-Knockoff-Not-Shown"]


def test_url_traversal_does_not_reach_files(app):
    client = login(app, "root")[0]
    for raw in ("/images/%2e%2e/%2e%2e/etc/passwd", "/images/items/..%2f..%2fetc%2fpasswd", "/static/../../etc/passwd"):
        response = client.get(raw)
        assert response.status_code in (403, 404, 422) and b"root:" not in response.content


def test_anonymous_image_request_is_refused(app, database):
    assert TestClient(app).get(f"/images/items/{first_item(database)}", follow_redirects=False).status_code == 303


def test_concurrent_requests_for_one_new_thumbnail_all_succeed(tmp_path):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from knockoff_serve.images import thumbnail

    from tests.helpers import write_image

    photo = write_image(tmp_path / "photo.png", size=(2400, 1800))  # slow enough to overlap
    cache = tmp_path / "thumbnails"
    start = threading.Barrier(8)

    def request(_: int):
        start.wait()
        return thumbnail(photo, 240, cache)

    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(request, range(8)))
    assert len(set(paths)) == 1 and paths[0].stat().st_size > 0
    assert not list(cache.rglob("*.tmp"))


def test_a_decompression_bomb_is_a_placeholder_that_says_why_never_decoded(settings, database, users, run, tmp_path):
    """A 169-megapixel PNG of under 0.5 MB, as an item's photo: the thumbnail route answers at
    once with a placeholder saying why (screening refuses the same file), and so does the
    evidence pack's inline image."""
    import time
    from dataclasses import replace

    from knockoff_serve.app import create_app

    from knockoff.listings.evidence import _data_uri
    from tests.helpers import zero_png

    bomb = zero_png(tmp_path / "photos" / "bomb.png", 13000, 13000, bit_depth=8)
    client = login(create_app(replace(settings, image_roots=(tmp_path / "photos",))), "root")[0]
    item = first_item(database)
    database.execute("UPDATE items SET path = ? WHERE id = ?", (str(bomb), item))
    started = time.monotonic()
    response = client.get(f"/images/items/{item}")
    assert time.monotonic() - started < 5 and response.status_code == 200
    assert "169 megapixels, over Knockoff's ceiling" in response.headers["X-Knockoff-Not-Shown"]
    assert response.content.startswith(b"\xff\xd8")
    assert client.get(f"/images/items/{item}").headers["X-Knockoff-Not-Shown"] == response.headers["X-Knockoff-Not-Shown"]  # cached
    assert len(response.content) < 60_000  # a small grey card, not 169 megapixels re-encoded
    assert _data_uri(bomb).startswith("data:image/jpeg;base64,")
