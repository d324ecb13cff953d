"""Who is in view, as the daemon books it: the persons_in_view gauge and the presence records.

Presence follows the newest processed frame ("appeared" on the first person, "left" once nobody has been
seen for records.leave_after_s). It also ends when nothing can be seen any more: the camera is lost (its
stream cut, the device gone) or the daemon stops. Without that the gauge kept its last value through a
90 s camera outage and no record ever said the people had gone, so a dashboard showed a person standing
there all along. Such an end is a "left" record with a `reason` ("camera_lost", "shutdown"); a normal
leave has no reason, as before. The gauge then reads 0 and cctvkit_camera_connected says why.

Main thread only (the daemon's loop), like the rest of its bookkeeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from prometheus_client import Gauge

from edge.records import Event, PresenceTracker

log = logging.getLogger("edge.daemon")

EndReason = Literal["camera_lost", "shutdown"]


class Presence:
    def __init__(self, leave_after_s: float, write: Callable[[Event], None], gauge: Gauge | None = None):
        self.tracker = PresenceTracker(leave_after_s)
        self.write = write
        self.gauge = gauge
        self.persons = 0  # in the newest processed frame
        self._disconnects = 0  # camera failures seen so far

    def seen(self, count: int, index: int, now: float) -> None:
        """The newest processed frame had `count` persons (index: its frame number; now: monotonic)."""
        self.persons = count
        if self.gauge is not None:
            self.gauge.set(count)
        self._update(count, index, now)

    def still(self, index: int, now: float) -> None:
        """A frame the motion gate skipped: the scene has not changed, so the last count still holds (and
        a person who was present can still time out)."""
        self._update(self.persons, index, now)

    def camera_failed(self, disconnects: int) -> bool:
        """True once for each new camera failure; `disconnects` is the capture's running count of them."""
        failed, self._disconnects = disconnects > self._disconnects, disconnects
        return failed

    def end(self, reason: EndReason, index: int) -> None:
        """Nothing can be seen any more: the gauge goes to 0 and, if someone was present, a "left" record
        with the reason is written. `index` is the last frame the camera delivered."""
        self.persons = 0
        if self.gauge is not None:
            self.gauge.set(0)
        if self.tracker.reset():
            log.info("person left: %s (after frame %d)", reason.replace("_", " "), index)
            self.write(Event("presence", time.time(), index, 0, state="left", reason=reason))

    def _update(self, count: int, index: int, now: float) -> None:
        change = self.tracker.update(count, now)
        if change is not None:
            log.info("person %s (frame %d, %d in view)", change, index, count)
            self.write(Event("presence", time.time(), index, count, state=change))


__all__ = ["EndReason", "Presence"]
