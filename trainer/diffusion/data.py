"""Training data: a folder of image + mask pairs, or a folder of RGBA cutouts, turned into person crops.

Layouts accepted:
  DIR/images/NAME.jpg + DIR/masks/NAME.png   (same stem; mask nonzero = person; e.g. ../shared/data/human-seg)
  DIR/*.png with an alpha channel            (cutouts: alpha = mask; e.g. a run's scene/cutouts)
A mask smaller or larger than its image with the same aspect ratio is resized to the image; a different
aspect ratio means the pair does not belong together and stops the run with the file named.

Every person becomes one crop: the mask's bounding box plus a margin, widened or heightened around its centre
to the target aspect (e.g. 96x256), cut out with gray padding where it leaves the image (a letterbox), then
resized. The whole set is decoded once into uint8 arrays: at 96x256 ten thousand crops take ~1 GB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import CctvkitError
from trainer.diffusion.defaults import DataParams

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
PAD_VALUE = 114  # the letterbox gray used across the project
ASPECT_TOLERANCE = 0.02


@dataclass
class Item:
    image: Path
    mask: Path | None = None  # None: `image` is an RGBA cutout


@dataclass
class PersonData:
    images: np.ndarray  # (N,H,W,3) uint8 RGB
    masks: np.ndarray  # (N,H,W) uint8 {0,255}
    names: list[str]
    skipped: list[str] = field(default_factory=list)  # files with an empty mask
    source: str = ""  # where the crops came from (the checkpoint records it); empty: one folder, given apart

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, idx: np.ndarray | list[int]) -> PersonData:
        idx = np.asarray(idx, dtype=int)
        return PersonData(self.images[idx], self.masks[idx], [self.names[i] for i in idx], [], self.source)

    @staticmethod
    def concat(parts: list[PersonData]) -> PersonData:
        """One set of crops of the same size from several sources (a run's scene cutouts plus --data)."""
        return PersonData(np.concatenate([p.images for p in parts]), np.concatenate([p.masks for p in parts]),
                          [n for p in parts for n in p.names], [s for p in parts for s in p.skipped],
                          "; ".join(p.source for p in parts if p.source))


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def find_items(folder: str | Path) -> list[Item]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CctvkitError("data folder not found", folder, "pass a folder of images/ + masks/ or RGBA PNG cutouts")
    if (folder / "images").is_dir() and (folder / "masks").is_dir():
        masks = {p.stem: p for p in _images_in(folder / "masks")}
        items = []
        for img in _images_in(folder / "images"):
            if img.stem not in masks:
                raise CctvkitError("image has no mask", img,
                                   f"add masks/{img.stem}.png or remove the image")
            items.append(Item(img, masks[img.stem]))
    else:
        items = [Item(p) for p in _images_in(folder) if p.suffix.lower() == ".png"]
    if not items:
        raise CctvkitError("no image+mask pairs or RGBA cutouts found", folder,
                           "pass a folder with images/ and masks/ (same file stems) or RGBA PNG cutouts")
    return items


def _read(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise CctvkitError("cannot decode image", path, "replace or remove the file")
    return img


def read_item(item: Item) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 (H,W,3), mask uint8 (H,W) {0,255}) of one pair or cutout."""
    if item.mask is None:
        img = _read(item.image, cv2.IMREAD_UNCHANGED)
        if img.ndim != 3 or img.shape[2] != 4:
            raise CctvkitError("PNG has no alpha channel", item.image,
                               "save cutouts as RGBA or use the images/ + masks/ layout")
        return cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB), np.where(img[..., 3] > 127, 255, 0).astype(np.uint8)
    rgb = cv2.cvtColor(_read(item.image, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    mask = _read(item.mask, cv2.IMREAD_UNCHANGED)
    if mask.ndim == 3:
        mask = mask[..., 3] if mask.shape[2] == 4 else mask.max(axis=2)
    return rgb, conform_mask(mask, rgb.shape[:2], item.mask, item.image)


def conform_mask(mask: np.ndarray, image_hw: tuple[int, int], mask_path: Path | str,
                 image_path: Path | str = "") -> np.ndarray:
    """The mask at the image's size: resized when only the scale differs, refused when the aspect differs."""
    ih, iw = image_hw
    mh, mw = mask.shape[:2]
    if (mh, mw) != (ih, iw):
        # One pixel of rounding in either side is allowed on top of the relative tolerance.
        slack = ASPECT_TOLERANCE + 1.0 / min(mh, mw)
        if abs((mw / mh) / (iw / ih) - 1.0) > slack:
            raise CctvkitError(
                f"mask is {mw}x{mh} but its image {Path(image_path).name} is {iw}x{ih} (different aspect ratio)",
                mask_path, "use the mask that belongs to this image (same aspect ratio) or remove the pair")
        mask = cv2.resize(mask, (iw, ih), interpolation=cv2.INTER_NEAREST)
    return np.where(mask > 127, 255, 0).astype(np.uint8) if mask.max() > 1 else (mask > 0).astype(np.uint8) * 255


def person_box(mask: np.ndarray, width: int, height: int, margin: float) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 (may extend past the image) of the person's box with margin at aspect width:height."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return None
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    pad = margin * (y1 - y0)
    bw, bh = (x1 - x0) + 2 * pad, (y1 - y0) + 2 * pad
    aspect = width / height
    if bw / bh > aspect:
        bh = bw / aspect
    else:
        bw = bh * aspect
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (int(round(cx - bw / 2)), int(round(cy - bh / 2)), int(round(cx + bw / 2)), int(round(cy + bh / 2)))


def crop_padded(img: np.ndarray, box: tuple[int, int, int, int], value: int) -> np.ndarray:
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    top, left, bottom, right = max(0, -y0), max(0, -x0), max(0, y1 - h), max(0, x1 - w)
    inner = img[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    return cv2.copyMakeBorder(inner, top, bottom, left, right, cv2.BORDER_CONSTANT,
                              value=(value,) * (3 if img.ndim == 3 else 1))


def person_crop(rgb: np.ndarray, mask: np.ndarray, p: DataParams) -> tuple[np.ndarray, np.ndarray] | None:
    """(RGB (H,W,3), mask (H,W)) at p.width x p.height, or None when the mask is empty."""
    box = person_box(mask, p.width, p.height, p.margin)
    if box is None:
        return None
    img = crop_padded(rgb, box, PAD_VALUE)
    m = crop_padded(mask, box, 0)
    shrink = img.shape[0] > p.height
    img = cv2.resize(img, (p.width, p.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    m = cv2.resize(m, (p.width, p.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return img, np.where(m > 127, 255, 0).astype(np.uint8)


def mask_crop(mask: np.ndarray, p: DataParams) -> np.ndarray | None:
    """Only the mask, cropped and letterboxed like person_crop (for the mask bank)."""
    box = person_box(mask, p.width, p.height, p.margin)
    if box is None:
        return None
    m = cv2.resize(crop_padded(mask, box, 0), (p.width, p.height), interpolation=cv2.INTER_AREA)
    return np.where(m > 127, 255, 0).astype(np.uint8)


def load_dataset(folder: str | Path, p: DataParams, progress: bool = False) -> PersonData:
    items = find_items(folder)
    imgs, masks, names, skipped = [], [], [], []
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"reading {Path(folder).name}", total=len(items))
        for item in items:
            rgb, mask = read_item(item)
            crop = person_crop(rgb, mask, p)
            if crop is None:
                skipped.append(item.image.name)
            else:
                imgs.append(crop[0])
                masks.append(crop[1])
                names.append(item.image.name)
            bar.advance(task)
    if not names:
        raise CctvkitError(f"all {len(items)} masks are empty", folder, "masks must mark the person with nonzero pixels")
    return PersonData(np.stack(imgs), np.stack(masks), names, skipped)


def split(data: PersonData, holdout_every: int) -> tuple[PersonData, PersonData]:
    """(train, held out): every `holdout_every`-th crop in name order is held out, so the split is stable
    across runs and machines. With fewer than 2 * holdout_every crops nothing is held out."""
    n = len(data)
    if holdout_every <= 0 or n < 2 * holdout_every:
        return data, data.subset([])
    held = np.arange(n) % holdout_every == holdout_every - 1
    return data.subset(np.nonzero(~held)[0]), data.subset(np.nonzero(held)[0])
