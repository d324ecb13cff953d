"""build_scene: one unlabelled fixed-camera video in, the scene model and pseudo-labelled frames out.

Steps (each timed in scene.json):
  probe      open the video (or frame folder, or glob), split it in time: training part first, held-out last
  segments   scene changes over the training part: one segment per stretch of one empty scene
  plate      per segment, the temporal median of frames spread over it (plate.png: the longest one's)
  calibrate  find people without any size prior, fit the perspective (height vs foot row); for a camera
             looking down ("any" orientation, the fallback of "auto") the size by distance from the centre
  scan       every k-th training frame with the perspective-aware finder: pseudo-labelled frames,
             cutouts (fewer than 2 usable stop the stage: compose could not run), foot points
  scene      refit the perspective on the scan, walkable area, overview.png
  evidence   the scene's self-check (trainer/scene/evidence.py: judge_scene)
  holdout    every k-th held-out frame, pseudo-labelled by the same finder
The held-out part is never used for a plate, the perspective, the cutouts or the training frames; each
held-out frame is judged against the training plate that fits it best.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console

from edge.errors import CctvkitError
from edge.formats.yolo import save_yolo_labels
from edge.sampling import spread_indices
from edge.stages import SceneOut
from trainer.relabel.teacher import Teacher
from trainer.scene import evidence as ev
from trainer.scene.anyscene import any_perspective_json, fit_any, row_model, size_of, width_ratio_any
from trainer.scene.cutouts import CutoutCollector
from trainer.scene.distractors import DistractorBank
from trainer.scene.frames import VideoInfo, iter_frames, open_video
from trainer.scene.overview import draw_overview
from trainer.scene.params import SceneParams
from trainer.scene.people import WIDTH_RATIO, PersonFinder, PersonObservation
from trainer.scene.perspective import MIN_OBSERVATIONS, Perspective, fit_perspective
from trainer.scene.plate import Plate, build_plates
from trainer.scene.progress import task_progress
from trainer.scene.segments import Segment, closest_plate, find_segments, segment_of, thumbnail
from trainer.scene.teach import TeacherScan
from trainer.scene.topdown import AnyPersonFinder
from trainer.scene.walkable import walkable_mask

__all__ = ["SceneParams", "build_scene", "split_video"]

LABELS_NOTE = "pseudo (background difference + HOG)"
# "auto": below this share of HOG-confirmed upright calibration candidates, consider "any" (measured:
# vtest 0.98, thermal harbour 0.78; a synthetic top-down clip 0.5, HOG liking its one vertical walker)...
HOG_SHARE_MIN = 0.6
# ... and switch when people at any orientation outnumber the upright ones by this factor (vtest 0.9,
# thermal 2.0: small warm blobs that are not upright people, synthetic top-down ~4).
ANY_GAIN = 2.5
LABELS_NOTE_ANY = "pseudo (background difference, people at any orientation)"


def _labels_note(upright: bool, teacher: Teacher | None, taught_mode: str) -> str:
    note = LABELS_NOTE if upright else LABELS_NOTE_ANY
    if teacher is None:
        return note
    if taught_mode == "teacher":
        return f"pseudo (teacher {teacher.path.name})"
    return f"pseudo (teacher {teacher.path.name}, plus the finder's boxes it does not cover: {note[8:-1]})"


def split_video(info: VideoInfo, params: SceneParams) -> tuple[range, range]:
    """(training frames, held-out frames): the held-out part is the last holdout_fraction, in time."""
    n = info.frame_count
    n_hold = max(1, int(round(n * params.holdout_fraction))) if n >= 2 else 0
    return range(0, n - n_hold), range(n - n_hold, n)


def _imwrite(path: Path, image: np.ndarray, options: tuple[int, ...] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, list(options)):
        raise OSError(f"cannot write {path}")


def _boxes(people: list[PersonObservation]) -> np.ndarray:
    return np.array([p.box for p in people], np.float32).reshape(-1, 4)


def _write_labelled(root: Path, split: str, index: int, frame: np.ndarray, boxes: np.ndarray,
                    quality: int) -> None:
    name = f"f{index:06d}"
    _imwrite(root / split / "images" / f"{name}.jpg", frame, (cv2.IMWRITE_JPEG_QUALITY, quality))
    _write_labels(root, split, index, boxes, frame.shape[:2])


def _write_labels(root: Path, split: str, index: int, boxes: np.ndarray, shape: tuple[int, ...]) -> None:
    h, w = shape[:2]
    save_yolo_labels(root / split / "labels" / f"f{index:06d}.txt", np.zeros(len(boxes), np.int64), boxes, w, h)


def _fit(people: list[PersonObservation], video: Path) -> tuple[Perspective, np.ndarray, list[PersonObservation]]:
    """Perspective from whole people only: a person cut by the frame border has a wrong height."""
    usable = [p for p in people if not p.touches_border]
    rows = np.array([p.foot[1] for p in usable])
    heights = np.array([p.height for p in usable])
    model, inliers = fit_perspective(rows, heights, video)
    return model, inliers, usable


def _calibrate(video: Path, segments: list[Segment], train: range, params: SceneParams, progress: bool,
               finders: list[PersonFinder], fit: Callable) -> tuple[tuple, list[PersonObservation], list[int]]:
    """(fit(observations), observations, frames used): the sampled calibration frames first; if they hold
    too few people (a quiet video), every scan frame before giving up (fit raises CctvkitError)."""
    calib_idx = spread_indices(train.start, train.stop, params.calib_frames)
    calib = _collect(video, segments, finders, calib_idx, "calibrate", progress)
    try:
        return fit(calib), calib, calib_idx
    except CctvkitError:
        more = sorted(set(range(train.start, train.stop, params.scan_stride)) - set(calib_idx))
        calib.extend(_collect(video, segments, finders, more, "calibrate (more frames)", progress))
        return fit(calib), calib, sorted([*calib_idx, *more])


def _choose_orientation(video: Path, segments: list[Segment], plates: list[Plate], train: range,
                        params: SceneParams, progress: bool) -> tuple:
    """(orientation, why, evidence for scene.json, upright fit or None, any-orientation calibration
    observations or None, calibration frames).

    "auto" keeps upright when the upright fit works and HOG backs it: in upright footage HOG confirms
    most candidates (vtest 98 %, thermal 78 %). Looking down, HOG confirms almost none, and the few
    candidates that pass are people who happen to lie along the image columns; people at any orientation
    then outnumber them (ANY_GAIN). Both must hold, so footage where HOG is merely weak (tiny or
    stylised people) stays upright. Too few upright people at all also falls back to "any".
    """
    mode = params.orientation
    if mode == "any":
        return "any", "set in the config", {}, None, None, spread_indices(train.start, train.stop, params.calib_frames)
    try:
        fit, _, calib_idx = _calibrate(video, segments, train, params, progress,
                                       [PersonFinder(p, params) for p in plates], lambda people: _fit(people, video))
    except CctvkitError:
        if mode == "upright":
            raise
        return ("any", f"fewer than {MIN_OBSERVATIONS} upright people in the calibration frames", {}, None, None,
                spread_indices(train.start, train.stop, params.calib_frames))
    if mode == "upright":
        return "upright", "set in the config", {}, fit, None, calib_idx
    usable = fit[2]
    hog_share = float(np.mean([p.source == "hog+fg" for p in usable]))
    evidence = {"upright_people": len(usable), "hog_confirmed_share": round(hog_share, 3)}
    if not params.hog or hog_share >= HOG_SHARE_MIN:
        return "upright", "upright people found, HOG confirms them", evidence, fit, None, calib_idx
    finders = [AnyPersonFinder(p, params) for p in plates]
    any_calib = _collect(video, segments, finders, calib_idx, "calibrate (any orientation)", progress)
    n_any = sum(not p.touches_border for p in any_calib)
    evidence["any_orientation_people"] = n_any
    if n_any < ANY_GAIN * len(usable):
        return "upright", "upright people found; HOG is weak but as many people at any orientation", evidence, \
            fit, None, calib_idx
    return ("any", f"HOG confirms {hog_share:.0%} of {len(usable)} upright candidates, {n_any} people at any "
            "orientation", evidence, None, any_calib, calib_idx)


def _collect(video: Path, segments: list[Segment], finders: list[PersonFinder], idx: list[int], label: str,
             progress: bool) -> list[PersonObservation]:
    out: list[PersonObservation] = []
    with task_progress(label, len(idx), progress) as advance:
        for i, frame in iter_frames(video, idx):
            out.extend(finders[segment_of(segments, i)].find(frame, i))
            advance()
    return out


def _width_ratio(people: list[PersonObservation], inliers: np.ndarray) -> float:
    chosen = [p for p, ok in zip(people, inliers, strict=True) if ok and p.source == "hog+fg"]
    chosen = chosen or [p for p, ok in zip(people, inliers, strict=True) if ok]
    if not chosen:
        return WIDTH_RATIO
    return float(np.clip(np.median([p.width / p.height for p in chosen]), 0.25, 0.6))


def _plates(video: Path, out_dir: Path, segments: list[Segment], params: SceneParams, fps: float,
            progress: bool) -> tuple[list[Plate], int, list[dict]]:
    """(plate per segment, index of the main = longest segment, segment records for scene.json)."""
    idx = [spread_indices(seg.start, seg.stop, params.plate_frames) for seg in segments]
    gap = max(1, int(round(params.plate_motion_gap_s * fps)))
    plates = build_plates(video, idx, progress, params.plate, gap)
    main = int(np.argmax([len(seg) for seg in segments]))
    records = []
    for k, (seg, used, plate) in enumerate(zip(segments, idx, plates, strict=True)):
        name = f"{SceneOut.plates.name}/plate_{k:02d}.png"
        _imwrite(out_dir / name, plate.image)
        records.append({"index": k, "frames": [seg.start, seg.stop - 1], "n_frames": len(seg),
                        "plate_frames": len(used), "plate": name, "main": k == main,
                        "plate_method": params.plate, "plate_unseen": round(plate.unseen, 4)})
    _imwrite(out_dir / SceneOut.plate.name, plates[main].image)
    return plates, main, records


def build_scene(video: Path, out_dir: Path, params: SceneParams, progress: bool = True,
                teacher: Teacher | None = None) -> dict:
    """teacher: label the real frames with it too (teacher mode, trainer/scene/teach.py)."""
    video, out_dir = Path(video), Path(out_dir)
    taught = TeacherScan(teacher, params.teacher) if teacher is not None else None
    timings: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(step: str, since: float) -> float:
        now = time.perf_counter()
        timings[step] = round(now - since, 3)
        return now

    info = open_video(video, params.fps)
    train, hold = split_video(info, params)
    if len(train) < 2:
        raise CctvkitError(f"video has only {info.frame_count} frames", video, "pass a longer video with --video")
    t = lap("probe", t0)

    segments = find_segments(video, train, params, progress)
    t = lap("segments", t)
    plates, main, seg_records = _plates(video, out_dir, segments, params, info.fps, progress)
    plate = plates[main]
    t = lap("plate", t)

    # Calibrate: no size prior yet, so the finder only uses shape and HOG. A frame is judged against
    # its own segment's plate. "auto" tries upright people first and falls back to any orientation when
    # they are too few or the evidence says the camera looks down (_choose_orientation).
    orientation, why, evidence, upright, any_calib, calib_idx = _choose_orientation(
        video, segments, plates, train, params, progress)
    size0 = None
    if upright is not None:
        persp0, inl0, usable0 = upright
    else:
        centre = (info.width / 2.0, info.height / 2.0)
        finders0 = [AnyPersonFinder(p, params) for p in plates]
        fit0 = lambda people: fit_any(people, video, centre)  # noqa: E731
        if any_calib is None:
            (size0, inl0, usable0), _, calib_idx = _calibrate(video, segments, train, params, progress,
                                                              finders0, fit0)
        else:
            size0, inl0, usable0 = fit0(any_calib)  # the comparison's observations: no second pass
        persp0 = row_model(usable0, inl0, video)
    if params.orientation == "auto":
        Console(stderr=True).print(f"scene: orientation auto -> {orientation} ({why})", highlight=False,
                                   soft_wrap=True)
    width_ratio = _width_ratio(usable0, inl0) if size0 is None else width_ratio_any(usable0, inl0)
    t = lap("calibrate", t)

    # Scan: the finder now knows how tall a person is at each row.
    # ("any": the finder knows how long a person is at each distance from the centre.)
    if size0 is None:
        finders = [PersonFinder(p, params, persp0, width_ratio) for p in plates]
    else:
        finders = [AnyPersonFinder(p, params, size0) for p in plates]
    typical_h = float(np.median([size_of(p) for p, ok in zip(usable0, inl0, strict=True) if ok]))
    cutouts = CutoutCollector(persp0 if size0 is None else None, size0,
                              min(float(params.min_cutout_px), 0.75 * typical_h))
    scan_idx = list(range(train.start, train.stop, params.scan_stride))
    label_idx = set(spread_indices(0, len(scan_idx), params.train_frames))
    label_idx = {scan_idx[k] for k in label_idx}
    scanned: list[PersonObservation] = []
    distractors = DistractorBank(params.max_distractors)
    n_train_boxes = 0
    with task_progress("scan training part", len(scan_idx), progress) as advance:
        for i, frame in iter_frames(video, scan_idx):
            finder = finders[segment_of(segments, i)]
            people, fg = finder.find_with_mask(frame, i)
            scanned.extend(people)
            if i in label_idx:
                _write_labelled(out_dir, SceneOut.frames.name, i, frame, _boxes(people), params.jpeg_quality)
                n_train_boxes += len(people)
            if taught is not None:
                taught.see(i, frame, _boxes(people), i in label_idx, fg)
            # a blob a found person (or the teacher's) touches is no hard negative
            distractors.see(i, frame, finder.rejected, _boxes(people) if taught is None else taught.also(people))
            cutouts.see(frame, people)
            advance()
    teacher_summary = None
    if taught is not None:  # the labelled frames' labels become the teacher's, fused with the finder's
        taught_labels, teacher_summary = taught.labels()
        for i, boxes in taught_labels.items():
            _write_labels(out_dir, SceneOut.frames.name, i, boxes, (info.height, info.width))
        n_train_boxes = teacher_summary["label_boxes"]
    # Refused here, before the evidence check and the held-out pass: without cutouts compose cannot run.
    records = cutouts.save(out_dir, params.max_cutouts, video)
    t = lap("scan", t)

    size = None
    try:
        if size0 is None:
            persp, inliers, usable = _fit(scanned, video)
        else:
            size, inliers, usable = fit_any(scanned, video, size0.centre)
            persp = row_model(usable, inliers, video)
    except CctvkitError:
        persp, inliers, usable, size = persp0, inl0, usable0, size0  # the calibration fit stands
    persp_doc = persp.to_json() if size is None else any_perspective_json(persp, size)
    (out_dir / SceneOut.perspective.name).write_text(json.dumps(persp_doc, indent=2) + "\n")
    feet = np.array([p.foot for p in usable], np.float64).reshape(-1, 2)
    walk = walkable_mask(feet[inliers], (info.height, info.width), persp, width_ratio)
    _imwrite(out_dir / SceneOut.walkable.name, walk)
    distractor_summary = distractors.save(out_dir)
    _imwrite(out_dir / SceneOut.overview.name, draw_overview(plate.image, walk, feet, inliers, persp, width_ratio,
                                                        "height" if size is None else "length"))
    t = lap("scene", t)

    sources: dict[str, int] = {}
    for p in scanned:
        sources[p.source] = sources.get(p.source, 0) + 1
    # Not `evidence`: that name holds the orientation choice's evidence, which scene.json also reports.
    scene_evidence = ev.judge_scene(video, train, params, plates, persp if size is None else None, sources,
                                     len(scan_idx), teacher)
    t = lap("evidence", t)

    step = max(1, math.ceil(len(hold) / params.holdout_frames))
    hold_idx = list(range(hold.start, hold.stop, step))
    n_hold_frames = n_hold_boxes = 0
    plate_thumbs = [thumbnail(p.image) for p in plates]
    hold_plates = [0] * len(plates)
    with task_progress("pseudo-label held-out part", len(hold_idx), progress) as advance:
        for i, frame in iter_frames(video, hold_idx):
            k = closest_plate(frame, plate_thumbs) if len(plates) > 1 else 0
            hold_plates[k] += 1
            people, fg = finders[k].find_with_mask(frame, i)
            boxes = _boxes(people)
            if taught is not None:
                boxes = taught.holdout_boxes(frame, boxes, fg)
            _write_labelled(out_dir, SceneOut.holdout.name, i, frame, boxes, params.jpeg_quality)
            n_hold_frames += 1
            n_hold_boxes += len(boxes)
            advance()
    if n_hold_frames == 0:
        raise CctvkitError(f"no frame of the held-out part (frames {hold.start}-{hold.stop - 1}) decodes; the "
                           f"header promises {info.frame_count} frames", video,
                           "re-encode the video (e.g. ffmpeg -i in -c:v libx264 out.mp4) and pass it with --video")
    t = lap("holdout", t)
    timings["total"] = round(time.perf_counter() - t0, 3)

    summary = {
        "video": info.to_json(),
        "labels": _labels_note(size0 is None, teacher, taught.mode if taught else ""),
        "orientation": orientation,
        "orientation_reason": why,
        "orientation_evidence": evidence,
        "labels_note": "frames/ and holdout/ boxes are PSEUDO labels from the same person finder, not ground "
                       "truth: accuracy measured against holdout/ is agreement with this finder",
        "split": {
            "train_frames": [train.start, train.stop - 1],
            "holdout_frames": [hold.start, hold.stop - 1] if len(hold) else None,
            "holdout_fraction": params.holdout_fraction,
        },
        "frames_used": {
            "plate": sum(r["plate_frames"] for r in seg_records),
            "calibrate": len(calib_idx),
            "scan": len(scan_idx),
            "scan_stride": params.scan_stride,
            "labelled_train": len(label_idx),
            "holdout_stride": step,
        },
        "segments": seg_records,
        "main_segment": main,
        "holdout_frames_per_plate": hold_plates,
        "n_train_frames": len(label_idx),
        "n_train_boxes": n_train_boxes,
        "n_holdout": n_hold_frames,
        "n_holdout_boxes": n_hold_boxes,
        "n_cutouts": len(records),
        "n_cutout_candidates": len(cutouts.candidates),
        "distractors": distractor_summary,
        "people_per_scanned_frame": round(len(scanned) / max(len(scan_idx), 1), 3),
        "detections_by_source": sources,
        "perspective": persp_doc,
        "perspective_calibration": persp0.to_json() if size0 is None else any_perspective_json(persp0, size0),
        "person_width_ratio": round(width_ratio, 4),
        "teacher": teacher_summary,
        "evidence": scene_evidence,
        "timings_s": timings,
        "params": params.model_dump(mode="json"),
    }
    (out_dir / SceneOut.scene_json.name).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
