import os
import subprocess
import sys
import tempfile
from pathlib import Path

from knockoff.scratch import remove_abandoned, scratch_folder


def test_a_killed_runs_scratch_folder_is_removed_by_the_next_run(tmp_path):
    """A process killed mid-spill leaves its folder; the next run's scratch_folder removes it,
    and never a live process's."""
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    abandoned = Path(tempfile.gettempdir()) / f"knockoff-spill-{killed.pid}-test"
    abandoned.mkdir()
    (abandoned / "part-0.arrows").write_bytes(b"\0" * 1024)
    alive = Path(tempfile.gettempdir()) / f"knockoff-spill-{os.getpid()}-test"
    alive.mkdir()
    try:
        killed.kill()
        killed.wait()
        with scratch_folder("listings") as folder:
            assert folder.is_dir() and folder.name.startswith(f"knockoff-listings-{os.getpid()}-")
        assert not abandoned.exists() and alive.exists() and not folder.exists()
    finally:
        for leftover in (abandoned, alive):
            if leftover.exists():
                (leftover / "part-0.arrows").unlink(missing_ok=True)
                leftover.rmdir()
    assert remove_abandoned(tmp_path) == []
