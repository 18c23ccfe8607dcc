"""Scratch folders for what a run spills to disk (listings' partitions, sellers' listings,
duplicates' embeddings), named with the process id, so that the next run removes what a
killed one left behind: a `listings` run over two million rows killed midway left 720 MB in
the temporary folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PREFIX = "knockoff-"


@contextmanager
def scratch_folder(kind: str) -> Iterator[Path]:
    """A new temporary folder `knockoff-KIND-PID-...`, removed when done; first, every such
    folder of a process that no longer runs is removed."""
    remove_abandoned()
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{kind}-{os.getpid()}-") as folder:
        yield Path(folder)


def remove_abandoned(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders whose process has gone (killed before it could clean up)."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*-*-*"):
        pid = _owner(folder.name)
        if folder.is_dir() and pid is not None and not _running(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _owner(name: str) -> int | None:
    parts = name.removeprefix(PREFIX).split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
