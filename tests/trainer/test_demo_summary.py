"""The demo's closing summary: a detector that learned nothing is said in one red line, never left silent
(a budget too short for the machine once gave mAP50 0.000 and a normal-looking table)."""

from __future__ import annotations


def test_a_detector_that_learned_nothing_is_said_not_left_silent() -> None:
    from trainer.cli import detector_learned_nothing

    def result(*maps: float | None, boxes: int = 600) -> dict:
        cells = [{"task": "detect", "status": "ok", "map50": m} for m in maps]
        return {"data": {"boxes": boxes}, "cells": cells + [{"task": "classify", "status": "ok", "map50": None}]}

    line = detector_learned_nothing(result(0.0, 0.004))
    assert line is not None and "best mAP50 0.004 on 600 held-out boxes" in line and "--budget" in line
    assert detector_learned_nothing(result(0.0, 0.31)) is None  # one detector that learned is enough
    assert detector_learned_nothing(result(0.0, boxes=3)) is None  # too few people to judge
    assert detector_learned_nothing(result()) is None  # no detector scored (classifier-only)
