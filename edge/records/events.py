"""What the daemon records: one Event type for detections and presence changes, and the presence logic."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["detection", "presence"]


@dataclass(frozen=True)
class Event:
    """kind "detection": a processed frame with persons in it (boxes in frame pixels xyxy);
    kind "presence": state "appeared" when the first person shows up, "left" when the last one has gone;
    a "left" because nothing can be seen any more has a reason ("camera_lost", "shutdown": edge/presence.py)."""

    kind: Kind
    ts: float  # wall-clock seconds since the epoch (time.time()), so records line up with camera footage
    frame: int  # index of the frame in the source
    count: int  # persons in the frame
    latency_ms: float = 0.0  # pre + inference + post of this frame
    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    state: str | None = None  # presence events only
    person_prob: float | None = None  # classifier models only
    reason: str | None = None  # presence "left" events that were not a person walking out of view

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # Keep JSONL lines short: presence events carry no boxes, detectors no person_prob.
        return {k: v for k, v in d.items() if v is not None and not (k in ("boxes", "scores") and not v)}


class PresenceTracker:
    """Turns per-frame person counts into "appeared"/"left" changes.

    A person appears on the first frame that has one; they have left only once no processed frame has
    shown anyone for `leave_after_s`, so one missed detection does not flap the state."""

    def __init__(self, leave_after_s: float = 2.0):
        self.leave_after_s = leave_after_s
        self.present = False
        self._last_seen = float("-inf")

    def update(self, count: int, now: float) -> str | None:
        """'appeared', 'left' or None; `now` is a monotonic time."""
        if count > 0:
            self._last_seen = now
            if not self.present:
                self.present = True
                return "appeared"
            return None
        if self.present and now - self._last_seen >= self.leave_after_s:
            self.present = False
            return "left"
        return None

    def reset(self) -> bool:
        """Forget everyone (nothing can be seen any more); True if someone was present."""
        was, self.present, self._last_seen = self.present, False, float("-inf")
        return was
