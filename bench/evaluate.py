"""The demo's bench stage: every model of a run through `bench run`'s own matrix, at one thread count.

It imports only bench/ and edge/ (no torch), so the figures are those the device would measure, scored by
edge/eval on the run's held-out frames: real labels when the run was given --labels, else the scene's
pseudo-labels (agreement with the person finder, and the results say so).
"""

from __future__ import annotations

from typing import Any

from bench.cells import CellOptions
from bench.feeds import ListFeed
from bench.matrix import build_cells, load_models, results_doc, run_matrix
from edge.backends import BACKENDS
from edge.detector import load_from_manifest
from edge.eval import DETECTION_KEYS, LabelledSet, model_accuracy
from edge.eval.holdout import real_holdout, run_labels, scene_holdout
from edge.manifest import Manifest


def holdout_data(manifest: Manifest, max_frames: int) -> tuple[LabelledSet, LabelledSet | None]:
    """(what the run is scored on, pseudo-label agreement beside it or None): the real labels of the
    held-out frames recorded with the run, else the pseudo-labelled holdout alone."""
    labels = run_labels(manifest)
    pseudo = scene_holdout(manifest, max_frames)
    if labels is None:
        return pseudo, None
    return real_holdout(manifest, labels, max_frames), pseudo


def _agreement(manifest: Manifest, rows: list[dict[str, Any]], pseudo: LabelledSet, opts: CellOptions) -> None:
    """Each row's scores against the pseudo-labels too, prefixed pseudo_: the number the demo used to
    print alone, kept beside the real one so the gap stays visible."""
    for row in rows:
        if row.get("status") != "ok":
            continue
        kw: dict[str, Any] = {"iou": opts.iou} if row["task"] == "detect" else {}
        model = load_from_manifest(manifest, row["model"], backend=row["backend"], threads=row["threads"], **kw)
        acc = model_accuracy(model, pseudo, conf=opts.conf)
        row.update({f"pseudo_{k}": acc.get(k) for k in (*DETECTION_KEYS, "presence_f1")})


def evaluate_run(manifest: Manifest, *, threads: int = 2, conf: float = 0.25, iou: float = 0.45,
                 max_frames: int = 120, speed_frames: int = 60, progress: bool = True) -> dict[str, Any]:
    data, pseudo = holdout_data(manifest, max_frames)
    models, _ = load_models([str(manifest.path)])
    cells = build_cells(models, list(BACKENDS), [threads])
    feed = ListFeed(data.presence_frames, f"the {len(data.presence_frames)} held-out frames, in memory, cycled")
    opts = CellOptions(conf=conf, iou=iou, speed_frames=speed_frames)
    rows = run_matrix(cells, data, feed, opts, progress=progress)
    if pseudo is not None:
        _agreement(manifest, rows, pseudo, opts)
    params = {"threads": [threads], "conf": conf, "iou": iou, "max_frames": max_frames, "stage": "trainer bench"}
    doc = results_doc(rows, manifest=manifest, data=data, feed=feed, opts=opts, params=params)
    doc["real_labels"] = pseudo is not None
    if pseudo is not None:
        doc["agreement_data"] = pseudo.summary()
    return doc
