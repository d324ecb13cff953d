"""The one place Ultralytics is configured, in export (the lowest layer that loads a .pt, so trainer and
export both reach it without importing upward). Every other module gets Ultralytics through this module:
`ultralytics_yolo()` (the YOLO class), `load_model(task, weights)` and `verbosity(on)`.

Ultralytics reaches for the network in many places (a DNS "online" probe at import, fonts for plots,
weights for the AMP check, pip auto-install, PyPI update checks, Google Analytics events, Sentry,
the Ultralytics Platform callbacks) and writes settings to ~/.config/Ultralytics. Most of that is
decided at *import* time from environment variables and the settings file, so `configure()` must
run before the first `import ultralytics`:

- YOLO_OFFLINE=1      `is_online()` returns False without any DNS lookup; ONLINE gates events,
                      Sentry, pip-update checks and auto-install.
- YOLO_AUTOINSTALL=0  `check_requirements` never runs pip.
- ULTRALYTICS_SAFE_LOAD=1  every checkpoint Ultralytics reads is loaded weights-only (known model classes,
                      no eval of model yaml strings); export/pt_trust.py checks each .pt before that.
- YOLO_CONFIG_DIR     settings.json and fonts live in our cache (<cache>/ultralytics/Ultralytics/),
                      never in ~/.config/Ultralytics.
- settings.json       written before import: sync=False (no events, no Sentry), no integrations
                      (clearml/comet/dvc/mlflow/raytune/tensorboard/wandb), api_key "" and
                      ULTRALYTICS_API_KEY removed from this process (no Platform streaming), and
                      datasets/weights/runs dirs inside our cache (never ./runs of the cwd).
- Arial.ttf / Arial.Unicode.ttf  copies of matplotlib's DejaVuSans so `check_font` finds a font
                      locally instead of downloading Arial.

Callers must still pass amp=False (the AMP check downloads yolo26n.pt on CUDA), an absolute
`project` and models built from local yaml/.pt files; train.py and the exporter do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.atomic import atomic_write_bytes, atomic_write_text
from edge.errors import CctvkitError

# Architecture files shipped inside ultralytics/cfg: models start from these unless given local weights.
ARCH_YAML = {"detect": "yolo11n.yaml", "classify": "yolo11n-cls.yaml"}
# Detector architectures `train.detector_arch` may name: Ultralytics yamls, random init, no download. Each
# exports to a raw YOLOv8-style head (1, 4+nc, anchors) that export/ and the edge decoder read (RAW_HEAD).
DETECTOR_ARCHS = ("yolo11n", "yolov8n", "yolo26n")
# The `nms` export argument that gives that raw head from every architecture. Ultralytics (8.4) reads
# nms=False on YOLO26 as "export the NMS-free one-to-one head": (1, 300, 6) boxes after a TopK. None exports
# YOLO26's one-to-many head (trained beside it; DFL-free, reg_max 1) in the YOLOv8 layout instead, which
# every format here (ONNX, INT8 QDQ, ncnn via pnnx, LiteRT) and the one decoder and NMS read alike, as
# Ultralytics itself does for ncnn and LiteRT INT8; YOLO11/YOLOv8 export the same head either way.
RAW_HEAD_NMS: None = None

# Settings that keep Ultralytics offline; keys and types follow ultralytics.utils.SettingsManager.
_OFFLINE_SETTINGS: dict[str, Any] = {
    "sync": False,
    "api_key": "",
    "openai_api_key": "",
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}
_SETTINGS_VERSION = "0.0.8"  # Ultralytics 8.3/8.4 schema; a newer schema keeps our values (it migrates them)

# Ultralytics warnings about choices cctvkit makes on purpose (train.py caches images in RAM for speed).
_KNOWN_NOISE = ("cache='ram' may produce non-deterministic",)

_configured = False


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(s in str(record.msg) for s in _KNOWN_NOISE)


def cache_dir() -> Path:
    """cctvkit's cache root: $CCTVKIT_CACHE, else $XDG_CACHE_HOME/cctvkit, else ~/.cache/cctvkit."""
    env = os.environ.get("CCTVKIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec ignores a relative XDG_CACHE_HOME: it would put the cache wherever the command runs.
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache") / "cctvkit"


def config_dir() -> Path:
    """What YOLO_CONFIG_DIR is set to; Ultralytics appends 'Ultralytics' for its own files."""
    return cache_dir() / "ultralytics"


def user_config_dir() -> Path:
    """Ultralytics' USER_CONFIG_DIR under our config dir: settings.json and the fonts live here."""
    return config_dir() / "Ultralytics"


def _dejavu_font() -> Path:
    import matplotlib  # a dependency of ultralytics; its bundled font is our offline "Arial"

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not font.is_file():
        raise CctvkitError(
            "matplotlib's bundled DejaVuSans.ttf is missing",
            font,
            "reinstall matplotlib (pip install -U matplotlib)",
        )
    return font


def _prepare_user_dir(user_dir: Path, settings: bool = True) -> None:
    """Fonts (and, for our own config dir, settings.json) in Ultralytics' USER_CONFIG_DIR."""
    try:
        user_dir.mkdir(parents=True, exist_ok=True)
        font = _dejavu_font()
        for name in ("Arial.ttf", "Arial.Unicode.ttf"):
            dst = user_dir / name
            if not dst.is_file() or dst.stat().st_size != font.stat().st_size:
                atomic_write_bytes(dst, font.read_bytes())
        if not settings:
            return
        settings_file = user_dir / "settings.json"
        current: dict[str, Any] = {}
        if settings_file.is_file():
            with contextlib.suppress(OSError, ValueError):
                current = json.loads(settings_file.read_text())
        if not isinstance(current, dict):
            current = {}
        runs = cache_dir() / "ultralytics-runs"  # only used if someone forgets `project`; never the cwd
        wanted = {
            "settings_version": current.get("settings_version", _SETTINGS_VERSION),
            "datasets_dir": str(cache_dir() / "datasets"),
            "weights_dir": str(cache_dir() / "weights"),
            "runs_dir": str(runs),
            "uuid": current.get("uuid", "cctvkit-offline"),
            **_OFFLINE_SETTINGS,
        }
        if any(current.get(k) != v for k, v in wanted.items()):
            atomic_write_text(settings_file, json.dumps({**current, **wanted}, indent=2))
    except OSError as e:
        raise CctvkitError(
            f"cannot prepare the Ultralytics config dir ({e})",
            user_dir,
            "make it writable or set CCTVKIT_CACHE to a writable folder",
        ) from e


def configure() -> Any:
    """Set the environment, prepare the config dir, import ultralytics and lock its settings down.

    Idempotent; returns the ultralytics module.
    """
    global _configured
    if _configured:
        return sys.modules["ultralytics"]
    late = "ultralytics" in sys.modules
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"  # a .pt is a pickle: never unpickle one in full (pt_trust.py)
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir())
    os.environ.pop("ULTRALYTICS_API_KEY", None)  # would stream training to the Ultralytics Platform
    _prepare_user_dir(user_config_dir())

    import ultralytics
    import ultralytics.utils as uu
    import ultralytics.utils.checks as uchecks

    if late:
        # Someone imported ultralytics before us: import-time decisions used another config dir and a real
        # DNS probe. Undo what can be undone so nothing goes out from here on.
        _prepare_user_dir(
            Path(uu.USER_CONFIG_DIR), settings=False
        )  # the user's own settings stay as they are
        uu.ONLINE = uchecks.ONLINE = False
        uu.AUTOINSTALL = uchecks.AUTOINSTALL = False
        import ultralytics.nn.tasks as utasks

        uu.SAFE_LOAD = utasks.SAFE_LOAD = True  # read at import like the rest; a version without it ignores it
        logging.getLogger(__name__).warning(
            "ultralytics was imported before export.offline.configure(); patched it to stay offline"
        )
    # In memory only: our settings.json already holds these; a late import's file is the user's own.
    dict.update(uu.SETTINGS, _OFFLINE_SETTINGS)
    with contextlib.suppress(ImportError, AttributeError):
        import ultralytics.utils.events as uevents

        uevents.events.enabled = False  # analytics queue: belt and braces on top of sync=False/offline
    logging.getLogger("ultralytics").addFilter(_DropKnownNoise())
    _bars_follow_logger()
    set_verbose(False)
    _configured = True
    return ultralytics


def ultralytics_yolo() -> type:
    """The YOLO class, from a configured (offline) Ultralytics."""
    configure()
    from ultralytics import YOLO

    return YOLO


def _bars_follow_logger() -> None:
    """Ultralytics' progress bars (utils.tqdm.TQDM) hide themselves when its logger is quieter than INFO,
    except those it builds with an explicit `disable=` (image caching, label scanning: disable=LOCAL_RANK > 0),
    which printed under --no-progress. Every bar now follows the logger level; the class is patched, not the
    modules, because each imported TQDM by name."""
    from ultralytics.utils.tqdm import TQDM

    init = TQDM.__init__
    if getattr(init, "follows_logger", False):
        return

    def __init__(self: Any, *args: Any, disable: bool | None = None, **kwargs: Any) -> None:
        if logging.getLogger("ultralytics").getEffectiveLevel() > logging.INFO:
            disable = True
        init(self, *args, disable=disable, **kwargs)

    __init__.follows_logger = True  # type: ignore[attr-defined]
    TQDM.__init__ = __init__  # type: ignore[method-assign]


def set_verbose(verbose: bool) -> None:
    """INFO (Ultralytics' own progress bars and tables) or WARNING (quiet)."""
    logger = logging.getLogger("ultralytics")
    level = logging.INFO if verbose else logging.WARNING
    logger.setLevel(level)
    for handler in logger.handlers:
        handler.setLevel(level)


@contextlib.contextmanager
def verbosity(verbose: bool) -> Iterator[None]:
    """Ultralytics' logging at INFO/WARNING for the duration; quiet again afterwards."""
    configure()
    set_verbose(verbose)
    try:
        yield
    finally:
        set_verbose(False)


def load_model(task: str, weights: Path | None = None, arch: str | None = None, *, sha256: str | None = None,
               shown: Path | None = None) -> Any:
    """A YOLO model for `task`: from local weights, else a fresh architecture from its yaml (no download):
    `arch` (a detector: one of DETECTOR_ARCHS) or the task's default (yolo11n).

    A missing or unreadable .pt is a CctvkitError; a name like 'yolo11n.pt' is never looked up online.
    Every .pt passes export/pt_trust.py first: weights-only, and `sha256` (what the run's train stage
    recorded) when given. `shown`: the file errors name (the user's, when `weights` is a private copy).
    """
    if task not in ARCH_YAML:
        raise CctvkitError(f"unknown task '{task}'", fix=f"choose one of: {', '.join(ARCH_YAML)}")
    YOLO = ultralytics_yolo()
    if weights is None:
        return YOLO(f"{arch}.yaml" if arch and task == "detect" else ARCH_YAML[task], task=task)
    from export.pt_trust import check_pt

    weights = Path(weights)
    shown = shown or weights
    if not weights.is_file():
        raise CctvkitError("weights file not found", shown, "pass an existing local .pt file")
    if weights.suffix != ".pt":
        raise CctvkitError("weights must be an Ultralytics .pt file", shown, "pass a .pt file")
    check_pt(weights, sha256, shown)
    try:
        model = YOLO(str(weights.resolve()))
    except Exception as e:  # torch/pickle raise many types for a corrupt file
        detail = (str(e).splitlines() or [""])[0].replace(str(weights.resolve()), "<file>")
        raise CctvkitError(
            f"cannot load the weights ({type(e).__name__}: {detail.replace('ERROR ❌️', '').strip()[:200]})",
            shown,
            "re-train or re-copy the .pt file",
        ) from e
    if model.task != task:
        raise CctvkitError(
            f"weights are a '{model.task}' model, expected '{task}'", shown, f"pass a {task} .pt file"
        )
    return model
