"""A folder made read-only for real, for the tests of unwritable output folders.

chmod is enough for a normal user; root ignores permission bits, so as root the folder gets a read-only bind
mount over itself instead (the test is skipped where mounting is not allowed).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _writable(path: Path) -> bool:
    probe = path / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(mode)
        return
    cmds = (["mount", "--bind", str(path), str(path)], ["mount", "-o", "remount,bind,ro", str(path)])
    for n, cmd in enumerate(cmds):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            r = subprocess.CompletedProcess(cmd, 1, "", str(e))
        if r.returncode != 0:
            if n:
                subprocess.run(["umount", str(path)], check=False)
            pytest.skip(f"root here cannot make a read-only bind mount ({r.stderr.strip()})")
    try:
        if _writable(path):
            pytest.skip("the read-only bind mount is still writable here")
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=False)
