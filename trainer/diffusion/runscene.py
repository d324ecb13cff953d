"""A run's scene as the person generator reads it: through the manifest, upright people only.

The generator learns the people of this camera from the scene stage's own cutouts (scene/cutouts +
cutouts.json, read by compose's loader, which fills each cutout's transparent pixels with its own plate so
the crops carry the person's real surroundings), optionally plus an images/ + masks/ folder. Its crop size
follows the scene: the median person height, rounded to the U-Net's multiple and clamped to the preset's
range, at the cutouts' median aspect; a generator much larger than the people it makes spends its compute
on upscaled blur, a much smaller one loses what detail the camera has.

Cameras looking down (scene.json orientation "any") are refused, not uprighted: a top-down person is a
head and shoulders seen from above, and rotating that blob to its principal axis gives a lying ellipse,
not a standing person. The quality gate's detectors (COCO YOLO, HOG) only know upright pedestrians, so
they would reject every generated person of such a scene anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import CctvkitError
from edge.manifest import Manifest
from edge.stages import SCENE, SceneOut
from trainer.compose.scene import Scene, load_scene
from trainer.diffusion.data import PersonData, person_crop
from trainer.diffusion.defaults import DataParams, PersonsConfig

ASPECT_RANGE = (0.25, 0.75)  # person width / height: outside this a cutout is a fragment or a pair
MIN_HEIGHT_SHARE = 0.5  # the smallest crop height a preset trains at, as a share of its own height

# What the generator stages read of the scene folder (recorded as their inputs).
GENERATOR_READS = (SceneOut.cutouts, SceneOut.cutouts_json, SceneOut.scene_json, SceneOut.perspective,
                   SceneOut.plate, SceneOut.walkable)
PERSONS_READS = (*GENERATOR_READS, SceneOut.plates)


@dataclass(frozen=True)
class RunScene:
    scene: Scene
    inputs: dict[str, Path]  # manifest outputs of the scene stage that were read, by name
    orientation: str

    @property
    def root(self) -> Path:
        return self.scene.root


MONO_LEVELS = 2.0  # mean |channel - grey| of the persons' pixels below this: a monochrome (thermal, IR) camera


def is_monochrome(scene: Scene) -> bool:
    """Do the scene's own persons have no colour? A generator trained on them still makes coloured speckle
    (measured on thermal-harbour: pink and green persons on a grey camera), which no real frame has."""
    spread = []
    for c in scene.cutouts:
        px = c.rgba[..., :3][c.rgba[..., 3] > 0].astype(np.float32)  # the person only, not the plate behind it
        if len(px):
            spread.append(float(np.abs(px - px.mean(axis=1, keepdims=True)).mean()))
    return bool(spread) and float(np.median(spread)) < MONO_LEVELS


def orientation_of(scene_json: Path) -> str:
    try:
        doc = json.loads(scene_json.read_text())
    except (OSError, ValueError) as e:
        raise CctvkitError(f"cannot read JSON ({e})", scene_json, "re-run `trainer scene`") from None
    return str(doc.get("orientation", "upright")) if isinstance(doc, dict) else "upright"


def read_run_scene(manifest: Manifest, reads: tuple = GENERATOR_READS) -> RunScene:
    """The run's scene (checked against the manifest's sha256), refused for cameras looking down."""
    inputs = {o.name: manifest.output(SCENE.name, o.name) for o in reads}
    orientation = orientation_of(inputs[SceneOut.scene_json.name])
    if orientation == "any":
        raise CctvkitError(
            "the scene's people are not upright (scene.json orientation 'any': a camera looking down); the "
            "person generator and its gate know standing people only", inputs[SceneOut.scene_json.name],
            "compose this run from its real cutouts (`trainer compose`) without generated persons")
    scene = load_scene(inputs[SceneOut.plate.name].parent)
    return RunScene(scene, inputs, orientation)


def crop_size(scene: Scene, cfg: PersonsConfig) -> tuple[int, int, str]:
    """(width, height, why) of the generator's crops for this scene, within the preset's range."""
    step = 2 ** (len(cfg.model.channel_mult) - 1)
    heights = np.array([c.height_px for c in scene.cutouts], np.float64)
    aspects = np.array([(c.box[2] - c.box[0]) / max(c.box[3] - c.box[1], 1.0) for c in scene.cutouts])
    median_h = float(np.median(heights))
    aspect = float(np.clip(np.median(aspects), *ASPECT_RANGE))
    top = cfg.data.height  # the preset's own size is its largest: memory and time grow with it
    low = max(16, int(np.ceil(MIN_HEIGHT_SHARE * top / step)) * step)
    height = int(np.clip(round(median_h / step) * step, low, top))
    # The crop keeps a margin around the person (data.margin), so it is a little wider than the person.
    width = max(16, step, int(round(height * aspect * (1 + cfg.data.margin) / step)) * step)
    why = (f"median person height {median_h:.0f} px of {len(heights)} scene cutouts -> {height} px "
           f"(multiple of {step}, {low}..{top} for preset {cfg.preset}), aspect {aspect:.2f}")
    return width, height, why


def with_size(cfg: PersonsConfig, width: int, height: int) -> PersonsConfig:
    doc = cfg.model_dump()
    doc["data"] = {**doc["data"], "width": width, "height": height}
    return PersonsConfig.model_validate(doc)


def scene_person_data(scene: Scene, p: DataParams) -> PersonData:
    """The scene's cutouts as training crops (their transparent pixels hold their own plate)."""
    imgs, masks, names, skipped = [], [], [], []
    for c in scene.cutouts:
        rgb = cv2.cvtColor(np.ascontiguousarray(c.rgba[..., :3]), cv2.COLOR_BGR2RGB)
        crop = person_crop(rgb, np.where(c.rgba[..., 3] > 127, 255, 0).astype(np.uint8), p)
        if crop is None:
            skipped.append(c.file)
            continue
        imgs.append(crop[0])
        masks.append(crop[1])
        names.append(f"scene:{c.file}")
    if not names:
        raise CctvkitError("no scene cutout has a nonempty alpha", scene.root / SceneOut.cutouts.name,
                           "re-run `trainer scene` on footage with people walking")
    return PersonData(np.stack(imgs), np.stack(masks), names, skipped + scene.skipped_cutouts,
                      str(scene.root / SceneOut.cutouts.name))


def config_fixes_size(config: str | None) -> bool:
    """Whether the user's YAML sets data.width or data.height (then the scene does not choose the size)."""
    if not config:
        return False
    from edge.config_errors import read_yaml_mapping

    doc: dict[str, Any] = read_yaml_mapping(config, "e.g. `preset: base` and `train: {...}`")
    data = doc.get("data")
    return isinstance(data, dict) and ("width" in data or "height" in data)
