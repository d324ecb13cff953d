"""One error type for everything a user can fix: the CLIs print its message on one line and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.redact import mask_text


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


def run_command(func: Callable[[Any], int], args: Any) -> int:
    """What every cctvkit CLI does with a parsed command: a user error becomes one line on stderr, exit 2."""
    try:
        return int(func(args))
    except CctvkitError as e:
        # Masked once more here, the last stop: a message may quote a camera URL from anywhere.
        print(f"error: {mask_text(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
