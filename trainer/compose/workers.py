"""Compose's images made by worker processes: the stage is CPU-bound per image (paste, blend, jitter, JPEG),
so N cores make it about N times faster.

Workers are spawned, not forked: OpenCV's thread pool does not survive fork() (opencv/opencv#5150), and the
trainer has used it before compose. Each worker rebuilds the composer from the same inputs (scene folder,
parameters, persons folder) and every image draws from its own seeded generator, so a worker's image is
byte-identical to the one this process would make, and the output does not depend on the worker count.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Callable, Iterator
from typing import Any

import cv2

MIN_JOBS_PER_WORKER = 32  # below this a worker's start-up (~1 s: imports, reading the scene) is not repaid
MAX_AUTO_WORKERS = 8

_maker: Any = None  # the worker's ImageMaker


def worker_count(asked: int, n_jobs: int) -> int:
    """compose.workers: 0 is one per core (at most 8), never more than the jobs repay; >= 1 is that many."""
    n = asked or min(os.cpu_count() or 1, MAX_AUTO_WORKERS)
    return max(1, min(n, n_jobs // MIN_JOBS_PER_WORKER))


def _start(init_args: tuple) -> None:
    global _maker
    from trainer.compose.compositor import prepare_inputs
    from trainer.compose.maker import ImageMaker

    cv2.setNumThreads(1)  # the processes are the parallelism; OpenCV's own threads would only contend
    scene_dir, params, persons_dir, out, previews = init_args
    _maker = ImageMaker(prepare_inputs(scene_dir, params, persons_dir), params, out, previews)


def _call(task: tuple[str, Any]) -> dict[str, Any]:
    method, job = task
    return getattr(_maker, method)(job)


@contextlib.contextmanager
def make_pool(maker: Any, init_args: tuple, workers: int, n_jobs: int
              ) -> Iterator[Callable[[str, list], Iterator[dict[str, Any]]]]:
    """Yields run(method, jobs): the maker's method applied to each job, results in job order, lazily (so a
    progress bar can follow). One worker runs in this process with `maker` itself."""
    n = worker_count(workers, n_jobs)
    if n == 1:
        yield lambda method, jobs: (getattr(maker, method)(j) for j in jobs)
        return
    with mp.get_context("spawn").Pool(n, initializer=_start, initargs=(init_args,)) as pool:
        yield lambda method, jobs: pool.imap(_call, [(method, j) for j in jobs], chunksize=4)
