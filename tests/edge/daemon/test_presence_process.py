"""Issue 14 row 3 through the real `edge run` process: a presence ends when nothing can be seen any more.

The camera is a real MJPEG-over-HTTP server on 127.0.0.1 sending white frames, in which the brightness
detector (daemon_helpers.py) finds a person in every frame. Killing the server cuts the stream for real;
before the fix cctvkit_persons_in_view kept reading 1 through the outage and no record ever said the
person had gone. leave_after_s is far longer than the test, so only the camera loss or the shutdown can
write the "left" records checked here."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from daemon_helpers import metric, start_ready, stream_config, wait_for
from sources_media import MjpegServer

WHITE = 255  # numbered_frame's shade: a "person" in every frame, whatever its number blocks


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def presence(path: Path) -> list[tuple[str, str | None]]:
    return [(e["state"], e.get("reason")) for e in records(path) if e["kind"] == "presence"]


def test_camera_loss_and_shutdown_end_the_presence(tmp_path, notify):
    jsonl, db = tmp_path / "rec/ev.jsonl", tmp_path / "rec/ev.db"
    server = MjpegServer(fps=20, shade=WHITE).start()
    cfg = stream_config(tmp_path, server.url, model={"conf": 0.1},
                        records={"jsonl": str(jsonl), "sqlite": str(db), "leave_after_s": 600,
                                 "flush_every_s": 0.1})
    d, port = start_ready(cfg, notify)
    revived: MjpegServer | None = None
    try:
        assert wait_for(lambda: metric(port, "cctvkit_persons_in_view") == 1, 10), d.log
        assert wait_for(lambda: presence(jsonl) == [("appeared", None)], 5), presence(jsonl)

        server.kill()  # the camera goes away with the person in view
        assert wait_for(lambda: metric(port, "cctvkit_persons_in_view") == 0, 5), d.log
        assert wait_for(lambda: presence(jsonl)[-1:] == [("left", "camera_lost")], 5), presence(jsonl)
        assert metric(port, "cctvkit_camera_connected") == 0
        assert presence(jsonl) == [("appeared", None), ("left", "camera_lost")]  # once, not per retry

        revived = MjpegServer(port=server.port, fps=20, shade=WHITE).start()  # back, the person still there
        assert wait_for(lambda: len(presence(jsonl)) == 3, 10), d.log
        assert presence(jsonl)[-1] == ("appeared", None)
        assert wait_for(lambda: metric(port, "cctvkit_persons_in_view") == 1, 5)

        code, _ = d.terminate(timeout=5)  # SIGTERM with the person in view
        assert code == 0, d.log
    finally:
        d.kill()
        server.kill()
        if revived is not None:
            revived.kill()
    lines = records(jsonl)
    assert presence(jsonl) == [("appeared", None), ("left", "camera_lost"), ("appeared", None),
                               ("left", "shutdown")]
    assert lines[-1]["kind"] == "presence" and lines[-1]["count"] == 0  # the very last record says so
    # SQLite holds the same rows, the reason in its own column.
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT kind, frame, state, reason FROM events ORDER BY id").fetchall()
    assert rows == [(e["kind"], e["frame"], e.get("state"), e.get("reason")) for e in lines]
    assert "person left: camera lost" in d.log and "person left: shutdown" in d.log, d.log
