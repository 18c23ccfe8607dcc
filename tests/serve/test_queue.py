"""Keyset pagination against a plain-Python ground truth, for every filter."""

import pytest
from knockoff_serve.queue import Cursor, QueueFilter, Viewer, counts, neighbour, page
from knockoff_serve.runs import import_results

from tests.serve.conftest import result_rows, write_results

ADMIN = Viewer(3, "root", "admin")


@pytest.fixture
def rows(database, users, tmp_path):
    import_results(database, write_results(tmp_path / "a.parquet", result_rows(120)))
    import_results(database, write_results(tmp_path / "b.parquet", result_rows(30, products=("bag",))))
    database.execute("UPDATE items SET decision = 'counterfeit', decided_by = ? WHERE id % 5 = 0 AND error IS NULL", (users["ana"],))
    database.execute("UPDATE items SET decision = 'genuine', decided_by = ? WHERE id % 11 = 0 AND error IS NULL", (users["bo"],))
    return [dict(r) for r in database.execute("SELECT * FROM items")]


def expected(rows, keep):
    return [r["id"] for r in sorted((r for r in rows if keep(r)), key=lambda r: (-r["rank"], r["id"]))]


FILTERS = [
    (QueueFilter(), lambda r: True),
    (QueueFilter(status="pending"), lambda r: r["decision"] is None and r["error"] is None),
    (QueueFilter(status="counterfeit"), lambda r: r["decision"] == "counterfeit"),
    (QueueFilter(status="failed"), lambda r: r["error"] is not None),
    (QueueFilter(product="bag"), lambda r: r["product"] == "bag"),
    (QueueFilter(min_score=0.3, max_score=0.8), lambda r: r["score"] is not None and 0.3 <= r["score"] <= 0.8),
    (QueueFilter(run=2, status="decided"), lambda r: r["run_id"] == 2 and r["decision"] is not None),
]


@pytest.mark.parametrize("queue_filter, keep", FILTERS)
def test_walking_pages_forwards_and_back_matches_the_full_order(database, rows, queue_filter, keep):
    walked, cursor, pages = [], None, []
    while True:
        current = page(database, queue_filter, ADMIN, after=cursor, size=7)
        pages.append(current)
        walked += [r["id"] for r in current.items]
        if current.older is None:
            break
        cursor = current.older
    assert walked == expected(rows, keep)
    # and back: each page's `newer` cursor leads to the page before it
    for earlier, later in zip(pages, pages[1:]):
        back = page(database, queue_filter, ADMIN, before=later.newer, size=7)
        assert [r["id"] for r in back.items] == [r["id"] for r in earlier.items]


def test_analysts_see_pending_and_their_own_decisions_only(database, rows, users):
    ana = Viewer(users["ana"], "ana", "analyst")
    seen = []
    cursor = None
    while True:
        current = page(database, QueueFilter(), ana, after=cursor, size=50)
        seen += [r["id"] for r in current.items]
        if current.older is None:
            break
        cursor = current.older
    assert seen == expected(rows, lambda r: r["decided_by"] in (None, users["ana"]))
    assert counts(database, QueueFilter(), ana)["genuine"] == 0  # bo's decisions are not hers to see


def test_counts_ignore_the_status_filter(database, rows):
    got = counts(database, QueueFilter(status="pending", product="bag"), ADMIN)
    bag = [r for r in rows if r["product"] == "bag"]
    assert got["total"] == len(bag)
    assert got["pending"] == sum(r["decision"] is None and r["error"] is None for r in bag)
    assert got["flagged"] == sum(bool(r["flagged"]) for r in bag)


def test_neighbours_follow_queue_order(database, rows):
    order = expected(rows, lambda r: True)
    item = next(r for r in rows if r["id"] == order[10])
    assert neighbour(database, QueueFilter(), ADMIN, item, "next")["id"] == order[11]
    assert neighbour(database, QueueFilter(), ADMIN, item, "previous")["id"] == order[9]


def test_cursor_text_round_trips():
    assert Cursor.parse(str(Cursor(2.37, 41))) == Cursor(2.37, 41)
    assert Cursor.parse("") is None
    with pytest.raises(ValueError):
        QueueFilter(status="archived")
