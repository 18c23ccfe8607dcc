"""Service settings: where state lives, which files may be shown, which model scores uploads."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOME = ".knockoff"


def knockoff_home() -> Path:
    return Path(os.environ.get("KNOCKOFF_HOME", DEFAULT_HOME))


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=knockoff_home)
    model: Path = Path("models/knockoff.onnx")
    gallery: Path = Path("models/gallery")
    # The service scores with, and changes, a copy of `gallery` under `home` (serve/references.py);
    # True: `gallery` itself (never the checkout's tracked gallery unless asked).
    edit_gallery_in_place: bool = False
    # Listing photos and references are shown only from inside these folders.
    image_roots: tuple[Path, ...] = ()
    # Gallery reference paths are relative to the data root (KNOCKOFF_DATA).
    data_root: Path = Path("data/raw")
    lease_seconds: int = 300
    session_hours: float = 12.0
    max_upload_bytes: int = 10 * 1024 * 1024
    thumbnail_px: int = 360
    page_size: int = 50
    secure_cookies: bool = False  # set behind HTTPS
    # Brute force: after this many wrong passwords for one account within the window, logins to
    # it are refused (429) until the window has passed; one client address gets three times that.
    login_attempts: int = 10
    login_window_s: float = 600.0
    # How long a write waits for another process's write lock on the store before the request
    # is answered 503 (Retry-After) rather than held open.
    store_busy_timeout_s: float = 5.0

    @property
    def database(self) -> Path:
        return self.home / "knockoff.db"

    @property
    def thumbnails(self) -> Path:
        return self.home / "thumbnails"

    def allowed_roots(self) -> tuple[Path, ...]:
        roots = self.image_roots or (self.data_root, Path.cwd())
        return tuple(Path(root).resolve() for root in roots)
