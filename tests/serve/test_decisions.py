import subprocess
import sys
import threading

import pytest
from knockoff_serve.decisions import LeaseHeld, NotAllowed, acquire_lease, bulk_decide, claim_next, decide, history, undo_last
from knockoff_serve.queue import QueueFilter, Viewer
from knockoff_serve.store import connect


@pytest.fixture
def people(users):
    return {name: Viewer(user_id, name, "admin" if name == "root" else "analyst") for name, user_id in users.items()}


def pending_ids(database):
    return [r[0] for r in database.execute("SELECT id FROM items WHERE decision IS NULL AND error IS NULL ORDER BY rank DESC, id")]


def test_decision_is_audited_with_versions_and_previous_state(database, run, people):
    item = pending_ids(database)[0]
    decide(database, item, people["ana"], "counterfeit", "  sole stitching  ")
    decide(database, item, people["root"], "genuine")
    rows = history(database, people["root"], item_id=item)
    assert [(r["user_name"], r["decision"], r["previous_decision"]) for r in rows] == [("root", "genuine", "counterfeit"), ("ana", "counterfeit", None)]
    assert rows[1]["note"] == "sole stitching" and rows[1]["model_version"] == "model-a" and rows[1]["index_version"] == "gallery-a"


def test_undo_restores_the_previous_state_and_is_itself_audited(database, run, people):
    first, second = pending_ids(database)[:2]
    decide(database, first, people["ana"], "counterfeit")
    decide(database, second, people["ana"], "genuine")
    assert undo_last(database, people["ana"]).item_id == second
    assert undo_last(database, people["ana"]).item_id == first
    assert undo_last(database, people["ana"]) is None
    assert database.execute("SELECT COUNT(*) FROM items WHERE decision IS NOT NULL").fetchone()[0] == 0
    actions = [r["action"] for r in history(database, people["ana"])]
    assert actions == ["undo", "undo", "decide", "decide"]


def test_undo_skips_decisions_someone_else_has_since_changed(database, run, people):
    item = pending_ids(database)[0]
    decide(database, item, people["ana"], "counterfeit")
    decide(database, item, people["root"], "unsure")
    assert undo_last(database, people["ana"]) is None
    assert database.execute("SELECT decision FROM items WHERE id = ?", (item,)).fetchone()[0] == "unsure"


def test_a_leased_item_cannot_be_decided_by_another_analyst(database, run, people):
    item = pending_ids(database)[0]
    assert acquire_lease(database, item, people["ana"], 60) is None
    assert acquire_lease(database, item, people["bo"], 60) == "ana"
    with pytest.raises(LeaseHeld, match="ana"):
        decide(database, item, people["bo"], "genuine")
    decide(database, item, people["ana"], "genuine")  # deciding releases the lease
    assert database.execute("SELECT COUNT(*) FROM leases WHERE item_id = ?", (item,)).fetchone()[0] == 0


def test_analysts_cannot_overwrite_each_other_but_admins_can(database, run, people):
    item = pending_ids(database)[0]
    decide(database, item, people["ana"], "counterfeit")
    with pytest.raises(NotAllowed):
        decide(database, item, people["bo"], "genuine")
    decide(database, item, people["root"], "genuine")


def test_failed_rows_cannot_be_decided(database, run, people):
    failed = database.execute("SELECT id FROM items WHERE error IS NOT NULL LIMIT 1").fetchone()[0]
    with pytest.raises(NotAllowed):
        decide(database, failed, people["ana"], "counterfeit")


def test_bulk_decides_in_one_go_and_skips_leased_items(database, run, people):
    ids = pending_ids(database)[:5]
    acquire_lease(database, ids[2], people["bo"], 60)
    decided, skipped = bulk_decide(database, ids, people["ana"], "counterfeit")
    assert decided == [ids[0], ids[1], ids[3], ids[4]] and skipped == [ids[2]]


def test_two_analysts_claiming_at_once_get_different_items(settings, database, run, people):
    claimed = {}

    def claim(name):
        connection = connect(settings.database)
        item = claim_next(connection, QueueFilter(), people[name], None, 60)
        claimed[name] = item["id"]
        connection.close()

    for _ in range(5):
        database.execute("DELETE FROM leases")
        threads = [threading.Thread(target=claim, args=(name,)) for name in ("ana", "bo")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert claimed["ana"] != claimed["bo"]
        assert set(claimed.values()) == set(pending_ids(database)[:2])


def test_an_acknowledged_decision_survives_a_kill(settings, database, run, people):
    """A separate process decides, prints 'acknowledged', then is killed with SIGKILL."""
    item = pending_ids(database)[0]
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from knockoff_serve.store import connect\n"
        "from knockoff_serve.decisions import decide\n"
        "from knockoff_serve.queue import Viewer\n"
        f"c = connect(Path({str(settings.database)!r}))\n"
        f"decide(c, {item}, Viewer({people['ana'].id}, 'ana', 'analyst'), 'counterfeit')\n"
        "print('acknowledged', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == -9 and "acknowledged" in result.stdout
    fresh = connect(settings.database)
    assert fresh.execute("SELECT decision FROM items WHERE id = ?", (item,)).fetchone()[0] == "counterfeit"
    assert fresh.execute("SELECT COUNT(*) FROM decisions WHERE item_id = ?", (item,)).fetchone()[0] == 1
