"""The "needs references" queue: unsupported photos, and adding one to the gallery in one step."""

import re

import pytest

from knockoff.gallery.store import Gallery
from tests.serve.conftest import login


def test_the_needs_references_queue_lists_unsupported_photos_with_their_reason(unsupported_app, database):
    client, _ = login(unsupported_app, "ana")
    page = client.get("/queue", params={"screening": "unsupported"}).text
    listed = re.findall(r'href="/items/(\d+)\?', page)
    assert len(set(listed)) == 1 and "L00000" in page and "L00001" not in page
    assert re.search(r"<b>1</b>need references", client.get("/queue").text)
    item = client.get(f"/items/{listed[0]}").text
    assert "needs references" in item and "its product&#39;s held-back photos are &gt;= 0.62" in item
    assert 'id="add-genuine"' in item and "<kbd>r</kbd>" in item and "<kbd>x</kbd>" in item
    assert client.get("/queue", params={"screening": "bogus"}).status_code == 400


def test_adding_the_photo_as_a_reference_grows_the_gallery_and_rescores_it(unsupported_app, database, tmp_path):
    client, csrf = login(unsupported_app, "ana")
    item_id = database.execute("SELECT id FROM items WHERE status = 'unsupported'").fetchone()["id"]
    before = Gallery.load(tmp_path / "gallery")
    response = client.post(f"/items/{item_id}/reference", data={"authenticity": "genuine", "csrf_token": csrf},
                           follow_redirects=False)
    assert response.status_code == 303 and "rescored" in response.headers["location"]
    after = Gallery.load(tmp_path / "gallery")
    assert after.info.count == before.info.count + 1 and after.info.version != before.info.version
    added = after.reference_rows([after.info.count - 1])[after.info.count - 1]
    assert added["product"] == "nike air force" and added["authenticity"] == "genuine"
    row = database.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
    assert row["index_version"] == after.info.version
    # the photo is now a reference of its product: its nearest reference is itself
    assert row["product_similarity"] == pytest.approx(1.0, abs=1e-4) and row["status"] == "scored"
    refused = client.post(f"/items/{item_id}/reference", data={"authenticity": "maybe", "csrf_token": csrf}, follow_redirects=False)
    assert refused.status_code == 400
    forged = client.post(f"/items/{item_id}/reference", data={"authenticity": "fake", "csrf_token": "wrong"}, follow_redirects=False)
    assert forged.status_code in (400, 403)
