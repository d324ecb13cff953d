"""preview.png: a contact sheet of composed images with their label boxes, for a human to judge at a glance
whether the persons have the right size for their row, stand on the ground and carry no halo."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

TILE_W = 384
COLS = 4


def contact_sheet(
    items: Sequence[tuple[np.ndarray, Sequence[Sequence[float]], str]], cols: int = COLS
) -> np.ndarray:
    """items: (BGR image, xyxy boxes in its pixels, caption). All tiles share the first image's aspect."""
    if not items:
        return np.full((64, TILE_W, 3), 40, np.uint8)
    h0, w0 = items[0][0].shape[:2]
    tile_h = max(1, round(TILE_W * h0 / w0))
    rows = (len(items) + cols - 1) // cols
    sheet = np.full((rows * tile_h, cols * TILE_W, 3), 40, np.uint8)
    for i, (img, boxes, caption) in enumerate(items):
        s = TILE_W / img.shape[1]
        tile = cv2.resize(img, (TILE_W, tile_h), interpolation=cv2.INTER_AREA)
        for b in boxes:
            p1 = (int(round(b[0] * s)), int(round(b[1] * s)))
            p2 = (int(round(b[2] * s)) - 1, int(round(b[3] * s)) - 1)
            cv2.rectangle(tile, p1, p2, (0, 255, 0), 1)
        cv2.putText(tile, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(tile, caption, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
        r, c = divmod(i, cols)
        sheet[r * tile_h : (r + 1) * tile_h, c * TILE_W : (c + 1) * TILE_W] = tile
    return sheet
