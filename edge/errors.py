"""One error type for everything a user can fix: the CLIs print its message on one line and exit 2."""

from __future__ import annotations

from pathlib import Path


class CctvkitError(Exception):
    """A problem with the user's input, phrased as 'what is wrong (file): what to do'."""

    def __init__(self, message: str, path: str | Path | None = None, fix: str | None = None):
        self.path = Path(path) if path is not None else None
        self.fix = fix
        text = message
        if path is not None:
            text = f"{path}: {text}"
        if fix:
            text = f"{text} -- {fix}"
        super().__init__(text)
