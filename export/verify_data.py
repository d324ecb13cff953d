"""Which labelled frames the export verification scores every model on (loaded by edge/eval's rules).

In order: the folder passed with --labels (all its frames when it is other footage; only the held-out ones
when it labels frames of the run's own input, and a mix of both is an error); the real labels
recorded with the run (`trainer demo/scene --labels`: only its held-out frames); the test split of an
imported run (import output "holdout"); else the scene's pseudo-labelled holdout, with the persons
painted over by the background plate as person-free frames. --negatives adds real person-free frames.
Everything is loaded and checked before the export spends minutes on models, so a bad folder fails
fast with one line naming the file.
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import CctvkitError
from edge.eval import LabelledSet, load_yolo_folder, with_negatives
from edge.eval.holdout import real_holdout, run_labels, scene_holdout, sort_labelled
from edge.manifest import Manifest
from edge.stages import DATASET_STAGES, ImportOut, SceneOut


def _frames_of_input(manifest: Manifest, labels: str | Path) -> bool:
    """Whether --labels labels frames of the run's own input (then only its held-out ones may be scored)."""
    if SceneOut.frame_keys.name not in manifest.stage("scene").get("outputs", {}):
        return False  # a run from before frame keys were recorded: nothing to match against
    parts = sort_labelled(manifest, labels)
    return bool(parts["held_out"] or parts["training"])


def load_verify_set(manifest: Manifest, labels: str | Path | None = None, negatives: str | Path | None = None,
                    max_frames: int = 200) -> LabelledSet:
    stages = manifest.data.get("stages", {})
    if labels is not None and "scene" in stages and _frames_of_input(manifest, labels):
        data = real_holdout(manifest, labels, max_frames)  # never the frames the run was built from
    elif labels is not None:
        data = load_yolo_folder(labels, max_frames=max_frames)
    elif run_labels(manifest) is not None:
        data = real_holdout(manifest, run_labels(manifest), max_frames)  # type: ignore[arg-type]
    elif imported := [s for s in DATASET_STAGES if ImportOut.holdout.name in stages.get(s, {}).get("outputs", {})]:
        # `trainer import`: the user's test split (recorded as a "compose" stage by older versions)
        data = load_yolo_folder(manifest.output(imported[0], ImportOut.holdout.name), max_frames=max_frames)
        data.info["description"] = f"real labels of the imported run's held-out test split ({data.info['path']})"
    elif "scene" in stages:
        data = scene_holdout(manifest, max_frames)
        if negatives is not None:  # the user's real person-free frames replace the painted-over ones
            data.negatives, data.info["negatives"] = [], {}
    else:
        raise CctvkitError("the run has no held-out frames to verify the export on", manifest.path,
                           "pass --labels DIR (a YOLO images/ + labels/ folder)")
    data = with_negatives(data, negatives, max_frames)
    if not data.negatives and "negatives" not in data.info:
        data.info["negatives"] = {"source": "none", "frames": 0, "description": "none given (--negatives DIR): "
                                  "the classifier is scored on the labelled frames only"}
    return data
