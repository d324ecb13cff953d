"""trainer/relabel/tighten.py: a loose box around one clean blob becomes the blob's box; every unclear
case (nothing moving, a blob running out of the margin, a neighbour, a fragment) keeps the box."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.relabel.tighten import TightenParams, tighten_boxes

P = TightenParams(enabled=True)


def mask_with(*rects: tuple[int, int, int, int], shape: tuple[int, int] = (120, 160)) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    for x1, y1, x2, y2 in rects:
        m[y1:y2, x1:x2] = 255
    return m


def test_loose_box_around_one_blob_becomes_the_blob() -> None:
    m = mask_with((50, 30, 62, 70))  # a 12 x 40 person
    loose = np.array([[47, 27, 65, 74]], np.float32)
    out, n = tighten_boxes(loose, m, P)
    assert n == 1 and out[0].tolist() == [50, 30, 62, 70]
    # a blob that only passes through the margin (someone else's foot) is not part of this box
    out, n = tighten_boxes(loose, mask_with((50, 30, 62, 70), (40, 72, 46, 79)), P)
    assert n == 1 and out[0].tolist() == [50, 30, 62, 70]


@pytest.mark.parametrize(("why", "mask", "boxes"), [
    ("nothing moving", mask_with(), [[47, 27, 65, 74]]),
    ("the blob runs out of the margin (a crowd, a car)", mask_with((50, 30, 100, 70)), [[47, 27, 65, 74]]),
    ("a neighbour reaches into the margin", mask_with((50, 30, 62, 70)), [[47, 27, 65, 74], [66, 27, 80, 74]]),
    ("a fragment: the tight box is another box", mask_with((50, 30, 62, 38)), [[47, 27, 65, 74]]),
    ("mostly empty: a thin outline", mask_with((50, 30, 62, 31), (50, 69, 62, 70), (50, 30, 51, 70), (61, 30, 62, 70)),
     [[47, 27, 65, 74]]),
])
def test_unclear_cases_keep_the_box(why: str, mask: np.ndarray, boxes: list[list[int]]) -> None:
    b = np.array(boxes, np.float32)
    out, n = tighten_boxes(b, mask, P)
    assert n == 0 and np.array_equal(out, b), why


def test_a_box_at_the_image_edge_can_still_be_tightened() -> None:
    m = mask_with((0, 30, 10, 70))  # a person walking in from the left edge
    out, n = tighten_boxes(np.array([[0, 26, 14, 74]], np.float32), m, P)
    assert n == 1 and out[0].tolist() == [0, 30, 10, 70]


@pytest.mark.parametrize("enabled", [False, True])
def test_teacher_scan_tightens_its_labels_to_the_mask_only_when_asked(tmp_path, enabled: bool) -> None:
    from edge_builders import const_detector

    from trainer.relabel.teacher import Teacher, TeacherParams
    from trainer.scene.teach import TeacherScan

    teacher = Teacher.load(const_detector(tmp_path / "teacher.onnx"))
    frame = np.full((96, 128, 3), 90, np.uint8)
    loose = teacher.find(frame).xyxy[0]  # where the teacher's constant box lands in this frame
    x1, y1, x2, y2 = (int(round(v)) for v in loose)
    person = (x1 + 3, y1 + 4, x2 - 2, y2 - 3)  # the moving pixels, a little inside the teacher's box
    scan = TeacherScan(teacher, TeacherParams(tighten={"enabled": enabled}, track=False))
    scan.see(0, frame, np.zeros((0, 4)), True, mask_with(person, shape=frame.shape[:2]))
    labels, summary = scan.labels()
    assert labels[0].tolist() == ([list(map(float, person))] if enabled else [loose.tolist()])
    assert summary["label_boxes_tightened"] == (1 if enabled else None)
    hold = scan.holdout_boxes(frame, np.zeros((0, 4)), mask_with(person, shape=frame.shape[:2]))
    assert hold.tolist() == labels[0].tolist()  # held-out frames are labelled the same way
