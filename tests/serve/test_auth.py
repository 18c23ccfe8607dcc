import re

from fastapi.testclient import TestClient
from knockoff_serve.auth import add_user, authenticate, create_api_token

from tests.serve.conftest import PASSWORD, login


def test_passwords_are_argon2id_hashes(database, users):
    stored = database.execute("SELECT password_hash FROM users WHERE name = 'ana'").fetchone()[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert authenticate(database, "ana", PASSWORD).name == "ana"
    assert authenticate(database, "ana", "wrong password") is None
    assert authenticate(database, "nobody", PASSWORD) is None


def test_weak_or_duplicate_users_are_refused(database, users):
    import pytest

    with pytest.raises(ValueError, match="at least 8"):
        add_user(database, "cy", "analyst", "short")
    with pytest.raises(ValueError, match="already exists"):
        add_user(database, "ana", "analyst", PASSWORD)
    with pytest.raises(ValueError, match="role"):
        add_user(database, "cy", "superuser", PASSWORD)


def test_session_cookie_is_httponly_and_samesite(app):
    client = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": token}, follow_redirects=False)
    cookie = response.headers["set-cookie"]
    assert "knockoff_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert response.headers["location"] == "/queue"


def test_login_needs_its_csrf_token_and_the_right_password(app):
    client = TestClient(app)
    client.get("/login")
    assert client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": "forged"}).status_code == 403
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    wrong = client.post("/login", data={"name": "ana", "password": "nope nope", "csrf_token": token}, follow_redirects=False)
    assert wrong.status_code == 303 and "failed=1" in wrong.headers["location"]
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_login_never_redirects_off_site(app):
    client = TestClient(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    response = client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"},
                           follow_redirects=False)
    assert response.headers["location"] == "/queue"


def test_forms_refuse_a_missing_csrf_token(app):
    client, csrf = login(app, "ana")
    item = re.search(r'/items/(\d+)\?', client.get("/queue").text).group(1)
    assert client.post(f"/items/{item}/decision", data={"decision": "genuine"}).status_code == 403
    assert client.post(f"/items/{item}/decision", data={"decision": "genuine", "csrf_token": csrf}, follow_redirects=False).status_code == 303


def test_logout_ends_the_session(app):
    client, csrf = login(app, "ana")
    client.post("/logout", data={"csrf_token": csrf})
    assert client.get("/queue", follow_redirects=False).status_code == 303
    assert client.get("/api/items").status_code == 401


def test_api_tokens_work_without_cookies_or_csrf(app, database):
    token = create_api_token(database, "bo")
    client = TestClient(app)
    headers = {"Authorization": f"Bearer {token}"}
    items = client.get("/api/items?status=pending", headers=headers).json()["items"]
    response = client.post(f"/api/items/{items[0]['id']}/decision", json={"decision": "unsure"}, headers=headers)
    assert response.status_code == 200 and response.json()["decision"] == "unsure"
    assert client.get("/api/items", headers={"Authorization": "Bearer ko_forged"}).status_code == 401


def test_revoking_tokens_and_deactivating_a_user_from_the_cli(tmp_path, monkeypatch):
    from knockoff_serve.auth import add_user, authenticate, create_api_token, viewer_for_api_token
    from knockoff_serve.store import closing, connect, initialize
    from typer.testing import CliRunner

    from knockoff.cli import app as cli

    monkeypatch.setenv("KNOCKOFF_HOME", str(tmp_path / "home"))
    database = tmp_path / "home" / "knockoff.db"
    initialize(database)
    with closing(connect(database)) as connection:
        add_user(connection, "eve", "analyst", "a long enough password")
        token = create_api_token(connection, "eve")
        assert viewer_for_api_token(connection, token).name == "eve"
        revoked = CliRunner().invoke(cli, ["users", "revoke-tokens", "eve"])
        assert revoked.exit_code == 0 and "revoked 1 API token of eve" in revoked.output
        assert viewer_for_api_token(connection, token) is None
        fresh = create_api_token(connection, "eve")
        assert CliRunner().invoke(cli, ["users", "deactivate", "eve"]).exit_code == 0
        assert authenticate(connection, "eve", "a long enough password") is None
        assert viewer_for_api_token(connection, fresh) is None
        assert CliRunner().invoke(cli, ["users", "activate", "eve"]).exit_code == 0
        assert authenticate(connection, "eve", "a long enough password").name == "eve"
    missing = CliRunner().invoke(cli, ["users", "deactivate", "nobody"])
    assert missing.exit_code == 1 and "no user 'nobody'" in missing.output


def _try_login(client, name: str, password: str):
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    return client.post("/login", data={"name": name, "password": password, "csrf_token": token}, follow_redirects=False)


def test_wrong_passwords_are_throttled_per_account_and_per_address_with_an_audit_trail(settings, database, users):
    from dataclasses import replace

    from fastapi.testclient import TestClient
    from knockoff_serve.app import create_app

    from tests.serve.conftest import PASSWORD

    client = TestClient(create_app(replace(settings, login_attempts=3)))
    for _ in range(3):
        assert _try_login(client, "ana", "wrong").status_code == 303
    refused = _try_login(client, "ana", PASSWORD)  # even the right password, until the window passes
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert _try_login(client, "bo", PASSWORD).status_code == 303  # another account is not locked...
    for name in ("x1", "x2", "x3", "x4", "x5", "x6"):  # ...until this address has tried 3 x 3 wrong ones
        _try_login(client, name, "wrong")
    assert _try_login(client, "root", PASSWORD).status_code == 429
    outcomes = [row["outcome"] for row in database.execute("SELECT outcome FROM login_failures ORDER BY id")]
    assert outcomes.count("wrong password") == 9 and outcomes.count("throttled") == 2


def test_a_planted_login_csrf_cookie_is_refused(app):
    """Double-submit alone trusts any cookie an attacker could plant (a sibling subdomain):
    the token must carry the service's signature, and a fresh one."""
    from fastapi.testclient import TestClient

    from tests.serve.conftest import PASSWORD

    client = TestClient(app)
    planted = "attacker-chosen-token"
    client.cookies.set("knockoff_login_csrf", planted)
    forged = client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": planted}, follow_redirects=False)
    assert forged.status_code == 403
    body = f"nonce.{0}"  # well-formed but old and unsigned
    client.cookies.set("knockoff_login_csrf", f"{body}.00")
    stale = client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf_token": f"{body}.00"}, follow_redirects=False)
    assert stale.status_code == 403
    assert _try_login(TestClient(app), "ana", PASSWORD).status_code == 303  # the real form still works
