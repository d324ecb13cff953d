"""One rich progress bar per frame loop, silent when progress is off (tests, piped logs)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


@contextlib.contextmanager
def task_progress(label: str, total: int, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yield advance(); the bar is transient so a run's log keeps only the summary lines."""
    if not enabled:
        yield lambda: None
        return
    columns = (TextColumn(f"scene: {label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)
