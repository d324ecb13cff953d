"""Fixtures of the daemon tests; the helpers they use live in daemon_helpers.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from daemon_helpers import NotifyListener

# The process tests run the daemon against the source tests' real MJPEG camera (sources_media.py); that
# folder is on sys.path only when its own tests are collected too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sources"))


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    """A real AF_UNIX datagram socket bound where NOTIFY_SOCKET will point."""
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture
def tiny_fs(tmp_path) -> Iterator[Path]:
    """A 64 KiB tmpfs: writes to it really fail with ENOSPC. Needs root and permission to mount."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a 64 KiB tmpfs for the disk-full test needs root")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot run mount ({e}): the disk-full test needs a real full file system")
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}): the disk-full test needs one")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
