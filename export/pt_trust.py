"""The trust boundary for .pt files: what must hold before a checkpoint reaches Ultralytics.

An Ultralytics .pt is a pickle, and a pickle can run any code while it is read. A run folder may be shared
(a NAS, a colleague's copy, a download), so a file in it is not trusted because of where it lies:

1. sha256: a train stage output is loaded only if its bytes hash to what this run's train stage recorded in
   the manifest (`recorded_pt`). It is checked on the bytes that are loaded (the exporters hash their
   private temp copy), so a file swapped after the stage was checked is refused too.
2. weights-only: every .pt, recorded or not, must load with `torch.load(weights_only=True)` with only the
   classes an Ultralytics checkpoint is made of allowed (torch.nn / ultralytics.nn modules, the classifier's
   torchvision transforms). A pickle that names anything else (os.system, builtins.exec, ...) is refused
   before any of it runs. export/offline.py also turns on Ultralytics' own weights-only loading
   (ULTRALYTICS_SAFE_LOAD), so the load Ultralytics does after this check is restricted as well. That
   matters beyond the class list: a weights-only pickle may still call an allowed class (a model's
   constructor with a crafted config), and Ultralytics' restricted mode builds models without eval().

Check 1 stops a file changed behind the manifest's back; check 2 stops a crafted file even when the
manifest was rewritten to match it (whoever can write the run folder can write its manifest too).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edge.atomic import sha256_file
from edge.errors import CctvkitError
from edge.manifest import Manifest

# Modules whose nn.Module subclasses a checkpoint may rebuild: the layers of every Ultralytics model.
_MODULE_PREFIXES = ("torch.nn.modules.", "ultralytics.nn.")
# A classifier checkpoint also pickles its preprocessing (ClassificationModel.transforms).
_TRANSFORMS = {
    f"torchvision.transforms.transforms.{n}" for n in ("Compose", "Normalize", "Resize", "CenterCrop", "ToTensor")
} | {"torchvision.transforms.functional.InterpolationMode"}

FIX = "use the .pt this run's train stage wrote (re-run `trainer train --run RUN`), not a file from elsewhere"


def recorded_pt(manifest: Manifest, key: str, stage: str = "train") -> tuple[Path, str]:
    """(path, sha256) of the .pt `stage` recorded as its output `key`; the sha256 travels with the path
    so that the loader checks the bytes it loads, not only the file as it was at this moment."""
    path = manifest.output(stage, key)  # raises, naming the file, when it is missing or already differs
    return path, str(manifest.stage(stage)["outputs"][key]["sha256"])


def check_sha256(path: Path, expected: str, shown: Path | None = None) -> None:
    """Refuse `path` unless its bytes hash to `expected`; errors name `shown` (the user's file)."""
    if sha256_file(path) != expected:
        raise CctvkitError("sha256 is not the one the run's train stage recorded (changed since training): "
                           "refused to load it", shown or path, FIX)


def _allowed(name: str) -> Any | None:
    """The object a checkpoint global may resolve to, or None when it is not part of a model."""
    import torch

    if name in _TRANSFORMS:
        module, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(module), attr, None)
    module, _, attr = name.rpartition(".")
    if not module.startswith(_MODULE_PREFIXES):
        return None
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return None
    # Classes only: a function of these modules (torch_safe_load, ...) is not a layer.
    return obj if isinstance(obj, type) and issubclass(obj, torch.nn.Module) else None


def check_weights_only(path: Path, shown: Path | None = None) -> None:
    """Refuse `path` unless it loads with torch.load(weights_only=True) and the model classes only.

    The globals are read from the pickle without running it, so a refused file never executes a byte."""
    import torch

    from export.offline import configure

    configure()  # ultralytics.nn is imported below: offline first, as everywhere
    shown = shown or path
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as e:  # not a torch zip archive: an old torch.save format or not torch at all
        raise CctvkitError(f"cannot load the weights: not a PyTorch checkpoint archive ({type(e).__name__})",
                           shown, "re-train or re-copy the .pt file") from e
    entries: list[Any] = []  # (class, "module.Name"): the name as the pickle spells it
    for name in names:
        obj = _allowed(name)
        if obj is None:
            raise CctvkitError(f"the pickle calls '{name}', which no model checkpoint needs (it could run "
                               "code): refused to load it", shown, FIX)
        entries.append((obj, name))
    try:
        with torch.serialization.safe_globals(entries):
            torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch's restricted unpickler refused something, or the file is damaged
        detail = (str(e).splitlines() or [""])[0][:160]
        raise CctvkitError(f"does not load weights-only ({type(e).__name__}: {detail}): refused to load it",
                           shown, FIX) from e


def check_pt(path: Path, sha256: str | None = None, shown: Path | None = None) -> None:
    """Both checks: the recorded sha256 (when the file is a run's output) first, then weights-only."""
    if sha256 is not None:
        check_sha256(path, sha256, shown)
    check_weights_only(path, shown)
