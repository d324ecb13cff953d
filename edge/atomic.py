"""Write files and directories so that a reader never sees half of them: temp path, then rename.

A folder that cannot be written (read-only, full, a file where a folder should be) is the user's to fix:
these functions raise CctvkitError naming the path, not a bare OSError traceback. An OSError raised by the
caller's own code inside atomic_dir passes through unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edge.errors import CctvkitError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def unwritable(path: str | Path, e: OSError) -> CctvkitError:
    """The one-line error for a path that cannot be written, with the fix its errno suggests."""
    fixes = {errno.EACCES: "make the folder writable or choose another output folder",
             errno.EPERM: "make the folder writable or choose another output folder",
             errno.EROFS: "the file system is read-only: choose an output folder on a writable one",
             errno.ENOSPC: "the disk is full: free some space or choose an output folder on another disk",
             errno.EDQUOT: "the disk quota is used up: free some space or choose another output folder",
             errno.ENOTDIR: "a file stands where a folder is needed: move it or choose another output folder",
             errno.EEXIST: "a file stands where a folder is needed: move it or choose another output folder"}
    return CctvkitError(f"cannot write here ({e.strerror or e})", path,
                        fixes.get(e.errno or 0, "check the folder's permissions and free space"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise unwritable(path.parent, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise unwritable(path, e) from e
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a sibling temp directory; on success it replaces `final`, on error it is removed.

    A directory that exists under its final name is therefore always complete.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    except OSError as e:
        raise unwritable(final.parent, e) from e
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old-{os.getpid()}") if final.exists() else None
    try:
        if old is not None:
            os.replace(final, old)
        os.replace(tmp, final)
    except OSError as e:
        if old is not None and not final.exists():  # the earlier complete directory goes back in place
            with contextlib.suppress(OSError):
                os.replace(old, final)
        shutil.rmtree(tmp, ignore_errors=True)
        raise unwritable(final, e) from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
