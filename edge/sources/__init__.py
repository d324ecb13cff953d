"""Camera sources, one plug-in per file, registered by name in SOURCES.

cfg = parse_source_config({"type": "file", "path": "vtest.avi", "loop": True})  # or part of the daemon config
source = make_source(cfg, model_imgsz=(640, 640))   # CctvkitError on a bad or unavailable source
with Capture(source, on_event=log_event) as cap:    # its own thread, latest-frame semantics
    frame = cap.latest(timeout=1.0)                 # Frame | None; cap.finished when a file ended
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from edge.errors import CctvkitError
from edge.redact import shown_value
from edge.sources.base import (
    CaptureStats,
    CorruptFrame,
    EndOfStream,
    Frame,
    Source,
    SourceConfigBase,
    SourceError,
)
from edge.sources.capture import EVENTS, Capture, EventCallback
from edge.sources.file import FileConfig, FileSource
from edge.sources.images import ImagesConfig, ImagesSource
from edge.sources.picamera2 import Picamera2Config, Picamera2Source
from edge.sources.stream import StreamConfig, StreamSource
from edge.sources.v4l2 import V4L2Config, V4L2Source

SOURCES: dict[str, type[Source]] = {
    "picamera2": Picamera2Source,
    "v4l2": V4L2Source,
    "stream": StreamSource,
    "file": FileSource,
    "images": ImagesSource,
}

# The `source:` section of a config: the `type` key picks the plug-in (and its allowed keys).
SourceConfig = Annotated[
    Picamera2Config | V4L2Config | StreamConfig | FileConfig | ImagesConfig,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(SourceConfig)


def available_sources() -> dict[str, str | None]:
    """name -> None when the source can be used on this machine, else the reason it cannot."""
    return {name: cls.unavailable() for name, cls in SOURCES.items()}


def _choices() -> str:
    avail = available_sources()
    missing = "; ".join(f"{n}: {why}" for n, why in avail.items() if why)
    return f"choose one of: {', '.join(SOURCES)}" + (f" ({missing})" if missing else " (all available)")


def get_source(name: str) -> type[Source]:
    """The plug-in class for a source type; unknown or unavailable names raise CctvkitError."""
    cls = SOURCES.get(name)
    if cls is None:
        raise CctvkitError(f"unknown source type '{name}'", fix=_choices())
    why = cls.unavailable()
    if why is not None:
        raise CctvkitError(f"source '{name}' is unavailable here: {why}", fix=_choices())
    return cls


def parse_source_config(data: Mapping[str, Any], origin: str = "source") -> Any:
    """Validate a `source:` mapping into its plug-in's config; one-line CctvkitError otherwise."""
    kind = data.get("type") if isinstance(data, Mapping) else None
    if not isinstance(kind, str) or kind not in SOURCES:
        raise CctvkitError(f"unknown source type {kind!r}", origin, _choices())
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first.get("loc", ())[1:])
        valid = ", ".join(f for f in SOURCES[kind].Config.model_fields if f != "type")
        if first.get("type") == "extra_forbidden":
            raise CctvkitError(f"unknown key '{key}' for a {kind} source", origin, f"use one of: {valid}") from None
        what = f"'{key}' = {shown_value(first.get('input'), key)} of a {kind} source" if key else f"a {kind} source"
        raise CctvkitError(f"{what}: {first.get('msg', 'invalid')}", origin, "fix that value") from None


def make_source(cfg: SourceConfigBase | Mapping[str, Any], model_imgsz: tuple[int, int] | None = None) -> Source:
    """The configured source, checked (file exists, device present...) but not opened yet.

    model_imgsz (h, w) is the model's input size: the picamera2 source asks the ISP for frames of that
    size when the config gives none. Raises CctvkitError for an unknown or unavailable type or bad input."""
    config: SourceConfigBase = cfg if isinstance(cfg, SourceConfigBase) else parse_source_config(cfg)
    cls = get_source(config.type)
    if not isinstance(config, cls.Config):
        raise CctvkitError(f"a {type(config).__name__} cannot configure the '{config.type}' source", fix=_choices())
    if isinstance(config, Picamera2Config):
        source: Source = Picamera2Source(config, model_imgsz)
    else:
        source = cls(config)
    source.check()
    return source


__all__ = [
    "EVENTS",
    "SOURCES",
    "Capture",
    "CaptureStats",
    "CorruptFrame",
    "EndOfStream",
    "EventCallback",
    "FileConfig",
    "Frame",
    "ImagesConfig",
    "Picamera2Config",
    "Source",
    "SourceConfig",
    "SourceConfigBase",
    "SourceError",
    "StreamConfig",
    "V4L2Config",
    "available_sources",
    "get_source",
    "make_source",
    "parse_source_config",
]
