"""How good are the generated people? Three scores that need nothing downloaded.

1. person-likeness: each cutout is pasted (alpha-blended, at its own pixel size unless told otherwise) at a
   random place on a real background and a local person detector runs on the result; a cutout counts as
   found when a person box overlapping the pasted box (IoU >= 0.5) has confidence >= 0.5. Reported: the
   fraction found and the mean confidence of the best overlapping box (0 when none). The pasted alpha is a
   person silhouette, so the shape alone earns some detections: the same cutouts filled with one flat colour
   are scored too ("flat silhouette"), and only the margin above that floor is credit for the generated
   pixels.
2. silhouette agreement: the generated figure's foreground is segmented by GrabCut started from the mask's
   bounding box only (never from the mask itself), and compared with the conditioning mask (the cutout's
   alpha) by IoU. GrabCut is imperfect, so the same measure on real crops is reported beside it as the
   ceiling to compare with.
3. KID (kernel inception distance, unbiased, cubic polynomial kernel) between generated and held-out real
   crops on the features of a network the user supplies (ONNX or TorchScript); skipped without one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import CctvkitError
from trainer.diffusion.data import IMAGE_EXTS, _images_in, _read

FOUND_CONF = 0.5
MATCH_IOU = 0.5


def read_rgba_folder(folder: str | Path, limit: int | None = None) -> list[np.ndarray]:
    """RGBA (H,W,4) uint8 cutouts of a folder (a `persons sample` output folder or its cutouts/)."""
    folder = Path(folder)
    if (folder / "cutouts").is_dir():
        folder = folder / "cutouts"
    if not folder.is_dir():
        raise CctvkitError("cutout folder not found", folder, "pass the --out folder of `trainer persons sample`")
    out = []
    for path in _images_in(folder)[:limit]:
        img = _read(path, cv2.IMREAD_UNCHANGED)
        if img.ndim == 3 and img.shape[2] == 4:
            out.append(cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA))
    if not out:
        raise CctvkitError("no RGBA PNG cutouts found", folder, "pass the --out folder of `trainer persons sample`")
    return out


def read_backgrounds(paths: list[str | Path]) -> list[np.ndarray]:
    """BGR images from files and folders (every image in a folder)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += [f for f in _images_in(p) if f.suffix.lower() in IMAGE_EXTS]
        elif p.is_file():
            files.append(p)
        else:
            raise CctvkitError("background not found", p, "pass image files or folders of images")
    if not files:
        raise CctvkitError("no background images found", paths[0] if paths else None, "pass images of empty scenes")
    return [_read(f, cv2.IMREAD_COLOR) for f in files]


def load_detector(path: str | Path, conf: float = 0.1) -> Any:
    """An edge Detector for a local .tflite or .onnx YOLO file (spec read from the model itself)."""
    from edge.backends import spec_from_onnx, spec_from_tflite
    from edge.detector import Detector

    path = Path(path)
    if not path.is_file():
        raise CctvkitError("detector file not found", path, "pass a local YOLO .tflite or .onnx file")
    if path.suffix == ".tflite":
        meta = path.with_name("coco-names-metadata.yaml")
        spec = spec_from_tflite(path, meta if meta.is_file() else None)
    elif path.suffix == ".onnx":
        spec = spec_from_onnx(path)
    else:
        raise CctvkitError(f"unsupported detector format '{path.suffix}'", path, "pass a .tflite or .onnx file")
    return Detector(spec, path, conf=conf, classes=[spec.person_class])


def _alpha_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    ys, xs = np.nonzero(alpha > 127)
    return None if len(ys) == 0 else (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def paste(rgba: np.ndarray, bg_bgr: np.ndarray, rng: np.random.Generator, height: int | None = None
          ) -> tuple[np.ndarray, np.ndarray]:
    """(composite BGR, pasted person box xyxy in frame pixels)."""
    h, w = rgba.shape[:2]
    bh, bw = bg_bgr.shape[:2]
    target = min(height or h, int(0.8 * bh))
    if target != h:
        s = target / h
        rgba = cv2.resize(rgba, (max(1, round(w * s)), target), interpolation=cv2.INTER_LINEAR)
        h, w = rgba.shape[:2]
    x, y = int(rng.integers(0, max(1, bw - w))), int(rng.integers(0, max(1, bh - h)))
    frame = bg_bgr.copy()
    region = frame[y:y + h, x:x + w].astype(np.float32)
    a = rgba[: region.shape[0], : region.shape[1], 3:4].astype(np.float32) / 255
    fg = cv2.cvtColor(rgba[: region.shape[0], : region.shape[1], :3], cv2.COLOR_RGB2BGR).astype(np.float32)
    frame[y:y + h, x:x + w] = (fg * a + region * (1 - a)).round().astype(np.uint8)
    box = _alpha_box(rgba[..., 3])
    assert box is not None
    return frame, np.array([x + box[0], y + box[1], x + box[2], y + box[3]], np.float32)


def person_likeness(cutouts: list[np.ndarray], backgrounds: list[np.ndarray], detector: Any, seed: int = 0,
                    height: int | None = None) -> dict[str, float]:
    from edge.eval.coco import iou_matrix

    rng = np.random.default_rng(seed)
    best = []
    for i, rgba in enumerate(cutouts):
        if _alpha_box(rgba[..., 3]) is None:
            best.append(0.0)
            continue
        frame, box = paste(rgba, backgrounds[i % len(backgrounds)], rng, height)
        dets = detector.detect(frame)
        if len(dets) == 0:
            best.append(0.0)
            continue
        iou = iou_matrix(box[None], dets.xyxy)[0]
        ok = iou >= MATCH_IOU
        best.append(float(dets.scores[ok].max()) if ok.any() else 0.0)
    arr = np.array(best)
    return {"found_frac": float((arr >= FOUND_CONF).mean()), "mean_conf": float(arr.mean()), "n": len(arr)}


def flat_silhouettes(cutouts: list[np.ndarray]) -> list[np.ndarray]:
    """The cutouts with every RGB pixel replaced by the cutout's mean colour under its alpha."""
    out = []
    for rgba in cutouts:
        flat = rgba.copy()
        sel = rgba[..., 3] > 127
        flat[..., :3] = rgba[..., :3][sel].mean(axis=0).round().astype(np.uint8) if sel.any() else 128
        out.append(flat)
    return out


def grabcut_foreground(rgb: np.ndarray, box: tuple[int, int, int, int], iters: int = 5) -> np.ndarray:
    """Boolean foreground of an RGB crop by GrabCut initialised with a rectangle (1 px inside the border)."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    x0, y0 = max(1, x0 - 1), max(1, y0 - 1)
    x1, y1 = min(w - 1, x1 + 1), min(h - 1, y1 + 1)
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut's k-means initialisation: deterministic scores
    try:
        cv2.grabCut(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iters,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # a degenerate rectangle or a flat image: no foreground found
        return np.zeros((h, w), bool)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def silhouette_iou(cutouts: list[np.ndarray]) -> dict[str, float]:
    ious = []
    for rgba in cutouts:
        cond = rgba[..., 3] > 127
        box = _alpha_box(rgba[..., 3])
        if box is None:
            continue
        fg = grabcut_foreground(np.ascontiguousarray(rgba[..., :3]), box)
        union = (fg | cond).sum()
        ious.append(float((fg & cond).sum() / union) if union else 0.0)
    return {"mean_iou": float(np.mean(ious)) if ious else 0.0, "n": len(ious)}


def kid(feat_a: np.ndarray, feat_b: np.ndarray, subsets: int = 20, subset_size: int = 100, seed: int = 0
        ) -> tuple[float, float]:
    """Unbiased KID (mean, std over random subsets) with k(x, y) = (x.y / d + 1)^3."""
    a, b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    m = min(len(a), len(b), subset_size)
    if m < 2:
        raise CctvkitError(f"KID needs at least 2 samples per side, got {len(a)} and {len(b)}",
                           fix="generate more cutouts or pass more real images")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        vals.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                    - 2 * kxy.mean())
    return float(np.mean(vals)), float(np.std(vals))


class FeatureNet:
    """Images (N,H,W,3) uint8 RGB -> features (N,D), from a user's ONNX or TorchScript file. The input is
    NCHW float in [0,1]; images are resized when the ONNX input has a fixed spatial size."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CctvkitError("feature network not found", self.path, "pass an .onnx or TorchScript .pt file")
        try:
            if self.path.suffix == ".onnx":
                import onnxruntime as ort

                self.sess = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
                shape = self.sess.get_inputs()[0].shape
                self.size = (shape[3], shape[2]) if all(isinstance(s, int) for s in shape[2:4]) else None
                self.kind = "onnx"
            else:
                import torch

                self.net = torch.jit.load(str(self.path), map_location="cpu").eval()
                self.size, self.kind = None, "torchscript"
        except CctvkitError:
            raise
        except Exception as e:
            raise CctvkitError(f"cannot load feature network ({type(e).__name__})", self.path,
                               "pass an ONNX or TorchScript model that maps NCHW images to (N, D) features") from None

    def __call__(self, images: np.ndarray, batch: int = 32) -> np.ndarray:
        feats = []
        for s in range(0, len(images), batch):
            chunk = images[s:s + batch]
            if self.size is not None:
                chunk = np.stack([cv2.resize(im, self.size, interpolation=cv2.INTER_AREA) for im in chunk])
            x = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), np.float32) / 255
            if self.kind == "onnx":
                f = self.sess.run(None, {self.sess.get_inputs()[0].name: x})[0]
            else:
                import torch

                with torch.inference_mode():
                    f = self.net(torch.from_numpy(x)).float().numpy()
            feats.append(f.reshape(len(chunk), -1))
        return np.concatenate(feats)


def real_cutouts(folder: str | Path, width: int, height: int, holdout_every: int, feather: float
                 ) -> list[np.ndarray]:
    """Held-out real crops (the training split's held-out part, or all when too few) as RGBA like samples."""
    from trainer.diffusion.data import load_dataset, split
    from trainer.diffusion.defaults import DataParams
    from trainer.diffusion.sample import to_rgba

    data = load_dataset(folder, DataParams(width=width, height=height))
    held = split(data, holdout_every)[1]
    held = held if len(held) else data
    return list(to_rgba(held.images, held.masks, feather))


def run_score(cutouts: str | Path, backgrounds: list[str | Path] | None = None, detector: str | Path | None = None,
              real: str | Path | None = None, kid_features: str | Path | None = None, seed: int = 0,
              limit: int | None = None, paste_height: int | None = None, holdout_every: int = 10,
              feather: float = 0.8) -> dict[str, Any]:
    """All three scores for a folder of generated cutouts; with `real`, the same scores of held-out real crops
    as the reference. Missing inputs skip a score with the reason in result["skipped"]."""
    gen = read_rgba_folder(cutouts, limit)
    sizes = {im.shape[:2] for im in gen}
    h, w = max(sizes)
    res: dict[str, Any] = {"n": len(gen), "size": [w, h], "skipped": {}}
    ref = real_cutouts(real, w, h, holdout_every, feather) if real else None
    if detector and backgrounds:
        det = load_detector(detector)
        bgs = read_backgrounds(backgrounds)
        res["likeness"] = person_likeness(gen, bgs, det, seed, paste_height)
        res["likeness_flat"] = person_likeness(flat_silhouettes(gen), bgs, det, seed, paste_height)
        if ref:
            res["likeness_real"] = person_likeness(ref, bgs, det, seed, paste_height)
    else:
        res["skipped"]["likeness"] = "needs --detector (a local YOLO .tflite/.onnx) and --backgrounds"
    res["silhouette"] = silhouette_iou(gen)
    if ref:
        res["silhouette_real"] = silhouette_iou(ref)
    if kid_features and ref:
        net = FeatureNet(kid_features)
        same = [im for im in gen if im.shape[:2] == (h, w)]
        mean, std = kid(net(np.stack([im[..., :3] for im in same])), net(np.stack([im[..., :3] for im in ref])),
                        seed=seed)
        res["kid"] = {"mean": mean, "std": std, "n_gen": len(same), "n_real": len(ref)}
    else:
        res["skipped"]["kid"] = ("no feature network given (--kid-features model.onnx|.pt)" if not kid_features
                                 else "needs --real DATA for the real side")
    return res
