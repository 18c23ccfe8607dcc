"""Add a reviewed photo to the gallery as a reference of its product, then rescore it.

The "needs references" queue holds `unsupported` photos: a catalogued product, but no
reference close enough to judge them. One keystroke on the item page adds the photo as a
genuine reference or a known fake of that product through `knockoff index add`'s code
(`indexing.add_references`: the gallery is rewritten atomically, under a new version), the
live scorer reloads it, and the item is scored again against the new gallery.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from knockoff_serve.live import LiveScorer
from knockoff_serve.runs import queue_rank
from knockoff_serve.store import write

from knockoff.data.records import FAKE, GENUINE
from knockoff.gallery.indexing import add_references

AUTHENTICITIES = (GENUINE, FAKE)
_GALLERY_WRITER = threading.Lock()  # one gallery rewrite at a time within this service


class CannotAdd(ValueError):
    """The item cannot become a reference (failed to screen, no product, wrong label)."""


def add_as_reference(db: sqlite3.Connection, item: sqlite3.Row, photo: Path, authenticity: str,
                     scorer: LiveScorer) -> dict:
    """Add the item's photo to the gallery and store its new screening; returns the new row values."""
    if authenticity not in AUTHENTICITIES:
        raise CannotAdd(f"authenticity must be one of {AUTHENTICITIES}")
    if item["error"] or not item["product"]:
        raise CannotAdd("only a screened photo of a catalogued product can become a reference")
    with _GALLERY_WRITER:
        added = add_references(scorer.model_path, scorer.gallery_path, [str(photo)], product=item["product"],
                               authenticity=authenticity, brand=item["brand"])
        if added.unreadable:
            raise CannotAdd(f"{photo}: {added.unreadable[0][1]}")
        scorer.reload()
    rescored = scorer.snapshot().score(photo.read_bytes(), name=str(photo), claimed=item["product"])
    values = {
        "status": rescored["status"], "status_reason": rescored["status_reason"], "score": rescored["score"],
        "flagged": rescored["flagged"], "threshold": rescored["threshold"],
        "product_similarity": rescored["product_similarity"], "index_version": rescored["index_version"],
        "evidence": json.dumps({k: rescored[k] for k in ("neighbors", "nearest_genuine", "nearest_fake")}),
    }
    values["rank"] = queue_rank({**values, "error": None})
    with write(db):
        db.execute(f"UPDATE items SET {', '.join(f'{k} = :{k}' for k in values)} WHERE id = :id", {**values, "id": item["id"]})
    return values
