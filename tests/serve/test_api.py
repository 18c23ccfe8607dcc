import io

import pytest
from fastapi.testclient import TestClient
from knockoff_serve.app import create_app

from tests.serve.conftest import PHOTOS, login

PROTECTED = [
    ("GET", "/queue"), ("GET", "/items/1"), ("GET", "/items/next"), ("GET", "/decisions"), ("GET", "/images/items/1"),
    ("GET", "/images/items/1/nearest_fake/0"), ("GET", "/api/items"), ("GET", "/api/items/1"), ("GET", "/api/decisions"),
    ("POST", "/api/items/1/decision"), ("POST", "/api/undo"), ("POST", "/api/decisions/bulk"), ("POST", "/api/items/1/lease"),
    ("GET", "/api/openapi.json"), ("GET", "/api/docs"), ("GET", "/api/docs/assets/swagger-ui.css"), ("GET", "/"),
    ("POST", "/logout"), ("POST", "/undo"), ("POST", "/queue/decide"), ("POST", "/items/1/decision"), ("POST", "/items/1/reference"), ("POST", "/api/score"),
    ("POST", "/items/next"), ("GET", "/sellers"), ("GET", "/seller?id=some-seller"), ("GET", "/seller/evidence?id=some-seller&run=1"),
    ("GET", "/gallery"), ("POST", "/gallery/changes/1/approve"), ("POST", "/gallery/rollback"),
    ("GET", "/listings"), ("GET", "/listings/1"), ("POST", "/listings/1/decision"), ("POST", "/listings/next"),
    ("POST", "/listings/decide"), ("GET", "/api/listings"), ("GET", "/api/listings/1"), ("POST", "/api/listings/1/lease"),
    ("POST", "/api/listings/1/decision"), ("GET", "/decisions/export"), ("GET", "/api/decisions/export"),
]


@pytest.mark.parametrize("method, path", PROTECTED)
def test_anonymous_requests_are_refused(app, method, path):
    response = TestClient(app).request(method, path, follow_redirects=False)
    assert response.status_code in (401, 303, 413)  # 413: the upload guard refuses a body-less POST first
    if response.status_code == 303:
        assert response.headers["location"].startswith("/login")


def route_paths(routes) -> list[str]:
    """Every route's path, descending into included routers (nested in newer FastAPI)."""
    paths = []
    for route in routes:
        if hasattr(route, "original_router"):
            paths += route_paths(route.original_router.routes)
        elif getattr(route, "path", None):
            paths.append(route.path)
    return paths


def test_every_route_is_covered_by_the_anonymous_check(app):
    """No route may be added without being listed above (or being the health check / login)."""
    public = {"/api/health", "/login"}
    listed = {path.split("?")[0] for _, path in PROTECTED}
    paths = route_paths(app.routes)
    assert len(paths) >= 20 and "/api/items/{item_id}/decision" in paths
    for path in paths:
        if path in public:
            continue
        concrete = path.replace("{item_id}", "1").replace("{listing_id}", "1").replace("{group}", "nearest_fake").replace("{rank}", "0").replace("{name}", "swagger-ui.css").replace("{seller_id}", "some-seller").replace("{change_id}", "1").replace("{verdict}", "approve")
        assert concrete in listed, f"route {path} is not in the anonymous-access test"


def test_public_health_says_which_model_scores(app):
    body = TestClient(app).get("/api/health").json()
    assert body["status"] == "ok" and body["scorer_error"]  # no model in these settings


def test_items_list_filters_and_pages(app):
    client, _ = login(app, "root")
    first = client.get("/api/items", params={"status": "pending", "limit": 5}).json()
    assert len(first["items"]) == 5 and first["counts"]["pending"] > 5
    scores = [item["score"] for item in first["items"]]
    assert all(item["decision"] is None and item["error"] is None for item in first["items"])
    second = client.get("/api/items", params={"status": "pending", "limit": 5, "after": first["older"]}).json()
    assert not {i["id"] for i in first["items"]} & {i["id"] for i in second["items"]}
    assert scores == sorted(scores, reverse=True) or first["items"][0]["flagged"]
    assert client.get("/api/items", params={"status": "archived"}).status_code == 400


def test_deciding_with_claim_next_leases_the_next_pending_item(app):
    ana, ana_csrf = login(app, "ana")
    bo, _ = login(app, "bo")
    first = ana.get("/api/items", params={"status": "pending", "limit": 1}).json()["items"][0]
    decided = ana.post(f"/api/items/{first['id']}/decision?status=pending", json={"decision": "counterfeit", "claim_next": True},
                       headers={"X-CSRF-Token": ana_csrf}).json()
    assert decided["decision"] == "counterfeit" and decided["next_item_id"] not in (None, first["id"])
    bo_csrf = login(app, "bo")[1]
    bo, bo_csrf = login(app, "bo")
    refused = bo.post(f"/api/items/{decided['next_item_id']}/decision", json={"decision": "genuine"}, headers={"X-CSRF-Token": bo_csrf})
    assert refused.status_code == 409 and "ana" in refused.json()["detail"]


def test_analysts_do_not_see_each_others_decisions_but_admins_do(app):
    ana, csrf = login(app, "ana")
    item = ana.get("/api/items", params={"status": "pending", "limit": 1}).json()["items"][0]["id"]
    ana.post(f"/api/items/{item}/decision", json={"decision": "genuine"}, headers={"X-CSRF-Token": csrf})
    bo, _ = login(app, "bo")
    assert bo.get(f"/api/items/{item}").status_code == 404
    assert bo.get(f"/items/{item}").status_code == 404
    root, _ = login(app, "root")
    assert root.get(f"/api/items/{item}").json()["decision"] == "genuine"
    assert [d["user_name"] for d in root.get("/api/decisions").json()] == ["ana"]
    assert bo.get("/api/decisions").json() == []


def test_item_page_shows_listing_evidence_and_keys(app):
    client, _ = login(app, "ana")
    item = client.get("/api/items", params={"status": "pending", "limit": 1}).json()["items"][0]
    page = client.get(f"/items/{item['id']}").text
    for text in ("Nearest genuine references", "Nearest known fakes", "threshold", "<kbd>f</kbd>", "<kbd>z</kbd>",
                 f"/images/items/{item['id']}/nearest_fake/0", item["listing_id"]):
        assert text in page


@pytest.fixture
def scoring_app(settings, database, users, run, tiny_onnx, tmp_path, monkeypatch):
    from dataclasses import replace

    from knockoff.gallery.indexing import IndexConfig, index
    from tests.helpers import SAMPLE

    monkeypatch.setenv("KNOCKOFF_DATA", str(SAMPLE))
    index(IndexConfig(references=("sneakers/train",), calibration="sneakers/valid"), tiny_onnx, tmp_path / "gallery")
    return create_app(replace(settings, model=tiny_onnx, gallery=tmp_path / "gallery", max_upload_bytes=200_000))


def test_score_an_upload(scoring_app):
    client, csrf = login(scoring_app, "ana")
    with open(PHOTOS[0], "rb") as photo:
        body = client.post("/api/score", files={"image": ("x.jpg", photo, "image/jpeg")}, headers={"X-CSRF-Token": csrf}).json()
    assert body["product"] in ("nike air force", "nike jordan 1")
    assert body["status"] in ("scored", "no_match", "unsupported")
    if body["status"] == "scored":
        assert 0 <= body["score"] <= 1 and body["status_reason"] is None
    else:  # not judged: no score, and the reason in figures
        assert body["score"] is None and body["flagged"] is False and body["status_reason"]
    assert body["nearest_genuine"] and body["nearest_fake"] and body["model_version"]


def test_score_refuses_big_and_broken_uploads(scoring_app):
    client, csrf = login(scoring_app, "ana")
    big = client.post("/api/score", files={"image": ("big.jpg", io.BytesIO(b"\xff" * 300_000), "image/jpeg")}, headers={"X-CSRF-Token": csrf})
    assert big.status_code == 413
    broken = client.post("/api/score", files={"image": ("x.jpg", io.BytesIO(b"not an image"), "image/jpeg")}, headers={"X-CSRF-Token": csrf})
    assert broken.status_code == 422 and "not an image" in broken.json()["detail"]


def test_score_without_a_model_is_unavailable(app):
    client, csrf = login(app, "ana")
    with open(PHOTOS[0], "rb") as photo:
        response = client.post("/api/score", files={"image": ("x.jpg", photo, "image/jpeg")}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 503


def test_api_docs_are_served_locally(app):
    client, _ = login(app, "ana")
    docs = client.get("/api/docs").text
    assert "/api/docs/assets/swagger-ui-bundle.js" in docs and "cdn" not in docs
    schema = client.get("/api/openapi.json").json()
    assert {"/api/items", "/api/items/{item_id}/decision", "/api/score", "/api/undo"} <= set(schema["paths"])


@pytest.mark.parametrize("method, url, data", [
    ("GET", "/queue?after=garbage", None), ("GET", "/queue?after=1:2:3", None), ("GET", "/queue?before=x", None),
    ("GET", "/api/items/99999999999999999999", None), ("GET", "/items/99999999999999999999", None),
    ("GET", "/items/next?after=99999999999999999999", None), ("GET", "/items/next?after=abc", None),
    ("GET", "/api/decisions?item_id=99999999999999999999", None), ("GET", "/api/items?after=nan:1", None),
    ("POST", "/queue/decide", {"item": "abc", "decision": "genuine"}),
])
def test_bad_query_and_path_values_are_client_errors_not_500(app, method, url, data):
    client, csrf = login(app, "root")
    if data is not None:
        data = {**data, "csrf_token": csrf}
    response = client.request(method, url, data=data, follow_redirects=False)
    assert response.status_code in (400, 404, 422), (url, response.status_code, response.text[:300])
    assert client.get("/api/health").status_code == 200  # the connection and the service carry on


def test_the_bulk_form_keeps_the_note_and_count_limits_and_writes_nothing_when_refused(app, database):
    from knockoff_serve.decisions import MAX_BULK, MAX_NOTE

    client, csrf = login(app, "root")
    items = [row["id"] for row in database.execute("SELECT id FROM items WHERE error IS NULL LIMIT 3")]
    long_note = client.post("/queue/decide", data={"item": [str(i) for i in items], "decision": "genuine",
                                                    "note": "x" * (MAX_NOTE + 1), "csrf_token": csrf}, follow_redirects=False)
    too_many = client.post("/queue/decide", data={"item": [str(i) for i in range(1, MAX_BULK + 2)], "decision": "genuine",
                                                   "csrf_token": csrf}, follow_redirects=False)
    assert long_note.status_code == 400 and "at most 2000 characters" in long_note.text
    assert too_many.status_code == 400  # the form parser's own field limit (1,000) comes first
    from knockoff_serve.decisions import bulk_decide
    from knockoff_serve.queue import Viewer

    with pytest.raises(ValueError, match=f"at most {MAX_BULK} items"):
        bulk_decide(database, list(range(1, MAX_BULK + 2)), Viewer(1, "root", "admin"), "genuine")
    assert database.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
    fine = client.post("/queue/decide", data={"item": [str(i) for i in items], "decision": "genuine", "note": "ok",
                                               "csrf_token": csrf}, follow_redirects=False)
    assert fine.status_code == 303 and database.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 3


def test_no_page_can_be_framed_by_another_site(app):
    client, _ = login(app, "ana")
    for url in ("/login", "/queue", "/api/health", "/api/items"):
        response = client.get(url)
        assert response.headers["x-frame-options"] == "DENY", url
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], url


def test_a_bad_filter_saves_nothing_and_a_retried_decision_is_one_audit_entry(app, database):
    client, csrf = login(app, "ana")
    item = client.get("/api/items", params={"status": "pending", "limit": 1}).json()["items"][0]["id"]
    headers = {"X-CSRF-Token": csrf}
    bad = client.post(f"/api/items/{item}/decision?min_score=abc", json={"decision": "genuine", "claim_next": True}, headers=headers)
    assert bad.status_code == 400 and "min_score" in bad.text
    assert database.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 0
    answers = [client.post(f"/api/items/{item}/decision", json={"decision": "genuine", "note": "box label"}, headers=headers)
               for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.json()["decision_id"] for a in answers}) == 1
    assert database.execute("SELECT COUNT(*) FROM decisions WHERE item_id = ?", (item,)).fetchone()[0] == 1
    changed = client.post(f"/api/items/{item}/decision", json={"decision": "counterfeit"}, headers=headers)
    assert changed.status_code == 200 and changed.json()["decision_id"] != answers[0].json()["decision_id"]


def test_score_refuses_a_decompression_bomb_without_decoding_it(scoring_app, tmp_path):
    from tests.helpers import zero_png

    client, csrf = login(scoring_app, "ana")
    bomb = zero_png(tmp_path / "bomb.png", 9_000, 9_000)  # under the upload limit of this app (200 KB)
    with open(bomb, "rb") as upload:
        response = client.post("/api/score", files={"image": ("bomb.png", upload, "image/png")}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 422 and "81 megapixels, over Knockoff's ceiling" in response.text
    assert client.get("/api/health").status_code == 200


def _leases(database) -> list[tuple]:
    return [tuple(r) for r in database.execute("SELECT item_id, user_id FROM leases")]


def test_pages_read_with_get_reserve_nothing_and_start_reviewing_leases_by_post(app, database, users):
    """A cross-site link (or a prefetch) to /items/next or /items/N must not reserve a listing."""
    ana, csrf = login(app, "ana")
    shown = ana.get("/items/next?status=pending", follow_redirects=False)
    assert shown.status_code == 303 and "/items/" in shown.headers["location"]
    item = int(shown.headers["location"].split("/items/")[1].split("?")[0])
    assert ana.get(f"/items/{item}").status_code == 200
    assert _leases(database) == []
    assert ana.post("/items/next?status=pending", data={}, follow_redirects=False).status_code == 403  # no CSRF token
    assert _leases(database) == []
    claimed = ana.post("/items/next?status=pending", data={"csrf_token": csrf}, follow_redirects=False)
    assert claimed.status_code == 303 and claimed.headers["location"] == shown.headers["location"]
    assert _leases(database) == [(item, users["ana"])]
    bo, _ = login(app, "bo")  # the leased item is skipped for someone else, and its page says who holds it
    assert bo.get("/items/next?status=pending", follow_redirects=False).headers["location"] != shown.headers["location"]
    assert "ana is reviewing this listing" in bo.get(f"/items/{item}").text


def test_the_no_script_decision_form_claims_the_next_item_itself(app, database, users):
    ana, csrf = login(app, "ana")
    first = ana.get("/api/items", params={"status": "pending", "limit": 1}).json()["items"][0]["id"]
    moved = ana.post(f"/items/{first}/decision?status=pending", data={"decision": "genuine", "csrf_token": csrf},
                     follow_redirects=False)
    following = int(moved.headers["location"].split("/items/")[1].split("?")[0])
    assert moved.status_code == 303 and following != first
    assert _leases(database) == [(following, users["ana"])]


def test_a_store_locked_by_another_process_answers_503_with_retry_after_and_saves_nothing(settings, database, users, run):
    """Another process holds SQLite's write lock past the busy timeout: the decision is not
    saved, and the answer says so (503, Retry-After), on the API and on the page."""
    import sqlite3
    import time
    from dataclasses import replace

    from knockoff_serve.app import create_app

    from tests.serve.conftest import login

    app = create_app(replace(settings, store_busy_timeout_s=0.3))
    ana, csrf = login(app, "ana")
    item = database.execute("SELECT id FROM items WHERE error IS NULL ORDER BY id LIMIT 1").fetchone()[0]
    holder = sqlite3.connect(settings.database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write, never finished
    try:
        started = time.monotonic()
        api = ana.post(f"/api/items/{item}/decision", json={"decision": "genuine"}, headers={"X-CSRF-Token": csrf})
        page = ana.post(f"/items/{item}/decision", data={"decision": "genuine", "csrf_token": csrf}, follow_redirects=False)
        waited = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert api.status_code == 503 and api.headers["Retry-After"] == "5" and "not saved" in api.json()["detail"]
    assert page.status_code == 503 and 'id="store-busy"' in page.text.replace("'", '"')
    assert waited < 5  # bounded by the busy timeout, not held open
    assert database.execute("SELECT decision FROM items WHERE id = ?", (item,)).fetchone()[0] is None


@pytest.mark.parametrize("path, code", [("/items/999999", 404), ("/queue?status=archived", 400), ("/items/abc", 422),
                                        ("/seller/evidence?id=x&run=1", 403)])
def test_browsers_get_html_error_pages_and_scripts_get_json(app, path, code):
    from tests.serve.conftest import login

    client, _ = login(app, "ana")
    page = client.get(path, headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == code and page.headers["content-type"].startswith("text/html")
    assert 'id="error-title"' in page.text and "<nav" in page.text  # the site's own page, with its navigation
    script = client.get(path, headers={"Accept": "application/json"})
    assert script.status_code == code and script.json()["detail"]


def test_the_api_docs_page_serves_a_swagger_ui_that_reads_openapi_3_1(app):
    from tests.serve.conftest import login

    client, _ = login(app, "ana")
    assert client.get("/api/openapi.json").json()["openapi"].startswith("3.1")
    page = client.get("/api/docs").text
    bundle = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert "/api/docs/assets/swagger-ui-bundle.js" in page and bundle.status_code == 200
    assert '"5.' in bundle.text[:2_000_000]  # Swagger UI 5: OpenAPI 3.1 support (3.x renders "Unable to render")
