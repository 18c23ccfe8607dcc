"""Changes to the service's gallery: proposed by analysts, made by admins, audited, reversible.

The "needs references" queue holds `unsupported` and `no_match` photos: a product no
reference is close enough to judge. Such a photo may join the gallery as a genuine reference
or a known fake of its product, through `knockoff index add`'s code (`indexing.add_references`:
the gallery is rewritten atomically under a new version, behind its write lock). Every other
photo is judged by a decision, never by changing the evidence it was judged against.

- An admin's "add as reference" is applied at once; an analyst's is a *proposal* an admin
  approves or rejects on the gallery page.
- Every change is a row of `gallery_changes`: who proposed and who decided, when, which photo
  with which label, and the gallery versions before and after.
- Before each change the gallery's files are kept under KNOCKOFF_HOME/gallery-history/VERSION,
  so an admin can roll the gallery back to any earlier version (itself an audited change).
- The service works on its own copy of the gallery under KNOCKOFF_HOME (`working_gallery`),
  never on the checkout's tracked one, unless told to (`knockoff review --edit-gallery-in-place`).
- A rescored photo is never evidence for itself: matching leaves out references of its own path.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

from knockoff_serve.auth import Viewer
from knockoff_serve.live import LiveScorer
from knockoff_serve.runs import queue_rank
from knockoff_serve.settings import Settings
from knockoff_serve.store import write

from knockoff.data.records import FAKE, GENUINE
from knockoff.gallery.indexing import add_references
from knockoff.gallery.store import INFO_FILE, read_info, writing

AUTHENTICITIES = (GENUINE, FAKE)
_CHANGING = threading.Lock()  # one change of the gallery at a time within this service
OPEN_STATUSES = ("unsupported", "no_match")  # what the gallery may learn from; the rest is decided
COPIED_FROM = ".copied-from"  # in the working gallery: the configured gallery's version it copies


class CannotChange(ValueError):
    """The change is not allowed (wrong photo, wrong label, wrong role, already decided)."""


def working_gallery(settings: Settings) -> Path:
    """The gallery the service scores with and changes: the configured one when editing in
    place, else a copy of it under KNOCKOFF_HOME. The copy follows the configured gallery
    (a `knockoff index add`, a `dvc repro`) while the service has changed nothing since it
    copied it; once an admin has changed it, it follows only a gallery for another model (a
    retrain), whose references the old changes cannot join. Called at start and at each of
    the scorer's checks."""
    if settings.edit_gallery_in_place:
        return settings.gallery
    working, source = settings.home / "gallery", settings.gallery
    if not (source / INFO_FILE).is_file():
        return working
    with writing(working):
        copied_from = working / COPIED_FROM
        if not (working / INFO_FILE).is_file():
            _follow(source, working)
            return working
        here, there = read_info(working), read_info(source)
        unchanged = copied_from.is_file() and copied_from.read_text().strip() == here.version
        if there.version != here.version and (unchanged or there.model_version != here.model_version):
            _follow(source, working)
    return working


def _follow(source: Path, working: Path) -> None:
    _copy_gallery(source, working)
    (working / COPIED_FROM).write_text(read_info(working).version + "\n")


def propose(db: sqlite3.Connection, item: sqlite3.Row, authenticity: str, viewer: Viewer, scorer: LiveScorer,
            photo: Path, settings: Settings) -> dict:
    """An analyst's proposal (pending an admin), or an admin's change applied at once."""
    if authenticity not in AUTHENTICITIES:
        raise CannotChange(f"authenticity must be one of {AUTHENTICITIES}")
    if item["error"] or not item["product"]:
        raise CannotChange("only a screened photo of a catalogued product can become a reference")
    if item["status"] not in OPEN_STATUSES:
        raise CannotChange(f"only {' or '.join(OPEN_STATUSES)} photos can become references; a {item['status']} photo "
                           f"is judged by a decision (it may be confirmed genuine or counterfeit), not by changing the gallery")
    with write(db):
        change = db.execute(
            "INSERT INTO gallery_changes (action, item_id, path, product, authenticity, state, proposed_by) "
            "VALUES ('add', ?, ?, ?, ?, 'proposed', ?)",
            (item["id"], str(photo), item["product"], authenticity, viewer.id)).lastrowid
    if viewer.is_admin:
        return apply(db, change, viewer, scorer, settings)
    return {"state": "proposed", "change": change}


def apply(db: sqlite3.Connection, change_id: int, viewer: Viewer, scorer: LiveScorer, settings: Settings) -> dict:
    """An admin applies a proposed addition: the gallery grows, the change is audited with both
    versions, and the photo is rescored against the new gallery (never matching itself)."""
    change = _pending(db, change_id, viewer)
    photo = Path(change["path"])
    with _CHANGING:
        before = read_info(scorer.gallery_path).version
        _keep_version(scorer.gallery_path, settings)
        added = add_references(scorer.model_path, scorer.gallery_path, [str(photo)], product=change["product"],
                               authenticity=change["authenticity"])
        if added.unreadable:
            raise CannotChange(f"{photo}: {added.unreadable[0][1]}")
        scorer.reload()
    with write(db):
        db.execute("UPDATE gallery_changes SET state = 'applied', decided_by = ?, decided_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), "
                   "version_before = ?, version_after = ? WHERE id = ?",
                   (viewer.id, before, added.gallery.info.version, change_id))
    item = db.execute("SELECT * FROM items WHERE id = ?", (change["item_id"],)).fetchone()
    return {"state": "applied", "change": change_id, **rescore(db, item, photo, scorer)}


def reject(db: sqlite3.Connection, change_id: int, viewer: Viewer, note: str | None = None) -> None:
    _pending(db, change_id, viewer)
    with write(db):
        db.execute("UPDATE gallery_changes SET state = 'rejected', decided_by = ?, note = ?, "
                   "decided_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?", (viewer.id, note, change_id))


def roll_back(db: sqlite3.Connection, version: str, viewer: Viewer, scorer: LiveScorer, settings: Settings) -> str:
    """Restore an earlier version of the gallery (one kept before a change), as an audited change."""
    if not viewer.is_admin:
        raise CannotChange("only an admin can roll the gallery back")
    kept = _history(settings) / version
    if not (kept / INFO_FILE).is_file():
        raise CannotChange(f"no kept gallery version {version!r}")
    with _CHANGING, writing(scorer.gallery_path):
        before = read_info(scorer.gallery_path).version
        _keep_version(scorer.gallery_path, settings)
        _copy_gallery(kept, scorer.gallery_path)
    scorer.reload()
    with write(db):
        db.execute("INSERT INTO gallery_changes (action, state, proposed_by, decided_by, decided_at, version_before, version_after) "
                   "VALUES ('rollback', 'applied', ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), ?, ?)",
                   (viewer.id, viewer.id, before, version))
    return version


def changes(db: sqlite3.Connection, limit: int = 200) -> list[sqlite3.Row]:
    return db.execute(
        "SELECT c.*, p.name AS proposed_by_name, d.name AS decided_by_name FROM gallery_changes c "
        "JOIN users p ON p.id = c.proposed_by LEFT JOIN users d ON d.id = c.decided_by ORDER BY c.id DESC LIMIT ?",
        (limit,)).fetchall()


def kept_versions(settings: Settings) -> list[str]:
    history = _history(settings)
    return sorted((p.name for p in history.iterdir() if (p / INFO_FILE).is_file()), reverse=True) if history.is_dir() else []


def rescore(db: sqlite3.Connection, item: sqlite3.Row, photo: Path, scorer: LiveScorer) -> dict:
    """Score the item's photo against the current gallery and store its new screening."""
    rescored = scorer.snapshot().score(photo.read_bytes(), name=str(photo), claimed=item["product"], own_path=str(photo))
    values = {
        "status": rescored["status"], "status_reason": rescored["status_reason"], "score": rescored["score"],
        "flagged": rescored["flagged"], "threshold": rescored["threshold"],
        "product_similarity": rescored["product_similarity"], "index_version": rescored["index_version"],
        "evidence": json.dumps({k: rescored.get(k) or [] for k in ("neighbors", "nearest_genuine", "nearest_fake", "regions")}),
    }
    values["rank"] = queue_rank({**values, "error": None})
    with write(db):
        db.execute(f"UPDATE items SET {', '.join(f'{k} = :{k}' for k in values)} WHERE id = :id", {**values, "id": item["id"]})
    return values


def _pending(db: sqlite3.Connection, change_id: int, viewer: Viewer) -> sqlite3.Row:
    if not viewer.is_admin:
        raise CannotChange("only an admin can change the gallery; analysts propose")
    change = db.execute("SELECT * FROM gallery_changes WHERE id = ?", (change_id,)).fetchone()
    if change is None or change["action"] != "add":
        raise CannotChange("no such proposal")
    if change["state"] != "proposed":
        raise CannotChange(f"that proposal was already {change['state']}")
    return change


def _history(settings: Settings) -> Path:
    return settings.home / "gallery-history"


def _keep_version(gallery: Path, settings: Settings) -> None:
    """The gallery's current files, kept under gallery-history/VERSION (once per version)."""
    kept = _history(settings) / read_info(gallery).version
    if not (kept / INFO_FILE).is_file():
        _copy_gallery(gallery, kept)


def _copy_gallery(source: Path, target: Path) -> None:
    """Copy a gallery's current files (those its gallery.json names, then gallery.json itself)."""
    target.mkdir(parents=True, exist_ok=True)
    info = read_info(source)
    for name in info.files.values():
        if not (target / name).is_file():
            shutil.copy2(source / name, target / name)
    partial = target / f".{INFO_FILE}.tmp"
    shutil.copy2(source / INFO_FILE, partial)
    partial.replace(target / INFO_FILE)
    for stale in target.iterdir():  # files of versions before this one
        if stale.is_file() and stale.name not in (INFO_FILE, *info.files.values()) and not stale.name.startswith("."):
            stale.unlink()
