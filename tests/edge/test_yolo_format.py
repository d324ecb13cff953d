from __future__ import annotations

import numpy as np
import pytest

from edge.errors import CctvkitError
from edge.formats.yolo import label_path_for, load_yolo_labels, parse_yolo_labels, save_yolo_labels


def test_save_load_round_trip(tmp_path):
    xyxy = np.array([[10, 20, 50, 120], [300, 40, 340, 200]], np.float32)
    ids = np.array([0, 0])
    path = save_yolo_labels(tmp_path / "a.txt", ids, xyxy, 640, 480)
    got_ids, got_xyxy = load_yolo_labels(path, 640, 480)
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(got_xyxy, xyxy, atol=1e-3)


def test_missing_file_is_an_empty_image(tmp_path):
    ids, xyxy = load_yolo_labels(tmp_path / "none.txt", 10, 10)
    assert ids.shape == (0,) and xyxy.shape == (0, 4)


def test_bad_line_names_file_and_line():
    with pytest.raises(CctvkitError, match=r"f\.txt: line 2 has 3 fields"):
        parse_yolo_labels("0 .5 .5 .1 .1\n0 .5 .5\n", 10, 10, "f.txt")


def test_label_path_swaps_the_last_images_part(tmp_path):
    assert label_path_for("/d/images/train/x.jpg").as_posix() == "/d/labels/train/x.txt"
    assert label_path_for("/images/d/images/val/y.png").as_posix() == "/images/d/labels/val/y.txt"
