"""The "needs references" queue, and changes to the gallery: proposed, approved, audited, rolled back."""

import json
import re

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


def test_an_analyst_proposes_an_admin_applies_and_every_change_is_audited_with_versions(unsupported_app, database, settings, tmp_path):
    ana, ana_csrf = login(unsupported_app, "ana")
    root, root_csrf = login(unsupported_app, "root")
    working = settings.home / "gallery"  # the service's own copy, never the configured gallery
    configured = Gallery.load(tmp_path / "gallery")
    before = Gallery.load(working)
    assert before.info.version == configured.info.version
    item_id = database.execute("SELECT id FROM items WHERE status = 'unsupported'").fetchone()["id"]
    proposed = ana.post(f"/items/{item_id}/reference", data={"authenticity": "genuine", "csrf_token": ana_csrf},
                        follow_redirects=False)
    assert proposed.status_code == 303 and "an+admin+decides" in proposed.headers["location"]
    assert Gallery.load(working).info.version == before.info.version  # nothing changed yet
    change = database.execute("SELECT * FROM gallery_changes").fetchone()
    assert (change["state"], change["authenticity"], change["product"]) == ("proposed", "genuine", "nike air force")
    assert ana.post(f"/gallery/changes/{change['id']}/approve", data={"csrf_token": ana_csrf}).status_code == 403
    approved = root.post(f"/gallery/changes/{change['id']}/approve", data={"csrf_token": root_csrf}, follow_redirects=False)
    assert approved.status_code == 303
    after = Gallery.load(working)
    assert after.info.count == before.info.count + 1 and after.info.version != before.info.version
    assert Gallery.load(tmp_path / "gallery").info.version == configured.info.version  # the configured one untouched
    audited = database.execute("SELECT * FROM gallery_changes WHERE id = ?", (change["id"],)).fetchone()
    assert (audited["state"], audited["version_before"], audited["version_after"]) == ("applied", before.info.version, after.info.version)
    assert audited["decided_by"] == database.execute("SELECT id FROM users WHERE name = 'root'").fetchone()[0]
    row = database.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
    assert row["index_version"] == after.info.version
    # the photo is a reference now, but never evidence for itself
    evidence = json.loads(row["evidence"])
    assert all(e["similarity"] < 0.9999 for group in evidence.values() for e in group)
    assert row["product_similarity"] < 0.9999
    page = root.get("/gallery").text
    assert f"{before.info.version} → {after.info.version}" in page and f'id="rollback-{change["id"]}"' in page


def test_an_admin_rolls_the_gallery_back_and_that_is_audited_too(unsupported_app, database, settings):
    root, csrf = login(unsupported_app, "root")
    working = settings.home / "gallery"
    before = Gallery.load(working).info
    item_id = database.execute("SELECT id FROM items WHERE status = 'unsupported'").fetchone()["id"]
    assert root.post(f"/items/{item_id}/reference", data={"authenticity": "fake", "csrf_token": csrf},
                     follow_redirects=False).status_code == 303  # an admin's change is applied at once
    assert Gallery.load(working).info.count == before.count + 1
    back = root.post("/gallery/rollback", data={"version": before.version, "csrf_token": csrf}, follow_redirects=False)
    assert back.status_code == 303
    restored = Gallery.load(working)
    assert restored.info.version == before.version and restored.info.count == before.count
    actions = [(r["action"], r["state"]) for r in database.execute("SELECT * FROM gallery_changes ORDER BY id")]
    assert actions == [("add", "applied"), ("rollback", "applied")]
    ana, ana_csrf = login(unsupported_app, "ana")
    assert ana.post("/gallery/rollback", data={"version": before.version, "csrf_token": ana_csrf}).status_code == 403


def test_only_photos_no_reference_could_judge_may_join_the_gallery(unsupported_app, database):
    """A flagged listing is decided (confirmed genuine, say), never rescored by adding itself."""
    root, csrf = login(unsupported_app, "root")
    scored = database.execute("SELECT id FROM items WHERE status = 'scored' AND error IS NULL").fetchone()["id"]
    refused = root.post(f"/items/{scored}/reference", data={"authenticity": "genuine", "csrf_token": csrf}, follow_redirects=False)
    assert refused.status_code == 400 and "judged by a decision" in refused.text
    assert 'id="add-reference"' not in root.get(f"/items/{scored}").text
    assert database.execute("SELECT COUNT(*) FROM gallery_changes").fetchone()[0] == 0
    item_id = database.execute("SELECT id FROM items WHERE status = 'unsupported'").fetchone()["id"]
    ana, ana_csrf = login(unsupported_app, "ana")
    assert ana.post(f"/items/{item_id}/reference", data={"authenticity": "maybe", "csrf_token": ana_csrf},
                    follow_redirects=False).status_code == 400
    forged = ana.post(f"/items/{item_id}/reference", data={"authenticity": "fake", "csrf_token": "wrong"}, follow_redirects=False)
    assert forged.status_code in (400, 403)


def test_the_working_gallery_follows_the_configured_one_until_an_admin_changes_it(unsupported_app, database, settings, tmp_path,
                                                                                  tiny_onnx):
    """`knockoff index add` on the configured gallery reaches the service at its next check;
    once the service's own copy holds an audited change, the configured gallery no longer
    overwrites it."""
    from knockoff.gallery.indexing import add_references
    from tests.serve.conftest import PHOTOS

    configured, working = tmp_path / "gallery", settings.home / "gallery"
    scorer = unsupported_app.state.scorer
    scorer.check_every_s = 0.0
    add_references(tiny_onnx, configured, [str(PHOTOS[3])], product="nike air force", authenticity="fake")
    scorer.snapshot()
    assert Gallery.load(working).info.version == Gallery.load(configured).info.version
    root, csrf = login(unsupported_app, "root")
    item_id = database.execute("SELECT id FROM items WHERE status = 'unsupported'").fetchone()["id"]
    root.post(f"/items/{item_id}/reference", data={"authenticity": "genuine", "csrf_token": csrf}, follow_redirects=False)
    changed = Gallery.load(working).info.version
    add_references(tiny_onnx, configured, [str(PHOTOS[4])], product="nike air force", authenticity="fake")
    scorer.snapshot()
    assert Gallery.load(working).info.version == changed != Gallery.load(configured).info.version
