from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from daemon_helpers import fill

from edge.records import (
    Event,
    PresenceTracker,
    RecordSink,
    RotationPolicy,
    open_records,
    rotated_files,
)
from edge.records.jsonl import JsonlRecorder
from edge.records.sqlite import SqliteRecorder


def det(i: int, n_boxes: int = 2) -> Event:
    return Event("detection", 1.7e9 + i, i, n_boxes, 12.5,
                 boxes=[[1.0 * i, 2.0, 3.0, 4.0]] * n_boxes, scores=[0.5] * n_boxes)


def jsonl_lines(paths: list[Path]) -> list[dict]:
    out = []
    for p in paths:
        for line in p.read_text().splitlines():
            out.append(json.loads(line))  # every line must be complete JSON
    return out


def test_jsonl_rotates_and_holds_count_and_size_caps(tmp_path):
    live = tmp_path / "ev.jsonl"
    policy = RotationPolicy(rotate_bytes=600, max_total_bytes=2500, keep=3)
    rec = JsonlRecorder(live, policy)
    for i in range(200):
        rec.write(det(i))
    rec.close()
    old = rotated_files(live)
    assert rec.rotations > 5
    assert 1 <= len(old) <= 3
    assert all(p.stat().st_size >= 600 for p in old)  # a file is only rotated once it is full
    total = live.stat().st_size + sum(p.stat().st_size for p in old)
    assert total <= 2500
    frames = [d["frame"] for d in jsonl_lines([*old, live])]
    assert frames == sorted(frames) and frames[-1] == 199  # oldest first, newest kept
    assert frames[0] > 0  # the oldest files were deleted


def test_caps_hold_at_start_up_for_files_of_a_previous_run(tmp_path):
    live = tmp_path / "ev.jsonl"
    for i in range(6):
        (tmp_path / f"ev.20260101T00000{i}.000000.jsonl").write_text("{}\n" * 10)
    (tmp_path / "unrelated.jsonl").write_text("keep me\n")
    JsonlRecorder(live, RotationPolicy(rotate_bytes=10_000, max_total_bytes=100_000, keep=2)).close()
    assert [p.name for p in rotated_files(live)] == ["ev.20260101T000004.000000.jsonl",
                                                     "ev.20260101T000005.000000.jsonl"]
    assert (tmp_path / "unrelated.jsonl").exists()


def test_sqlite_rows_rotation_and_cap(tmp_path):
    live = tmp_path / "ev.db"
    policy = RotationPolicy(rotate_bytes=40_000, max_total_bytes=130_000, keep=10)
    rec = SqliteRecorder(live, policy, commit_every_s=3600)
    for i in range(600):
        rec.write(det(i, n_boxes=5))
        if i % 25 == 24:
            rec.flush()  # what the daemon's timer does; a commit (and an fsync) per row would be slow
    rec.close()
    old = rotated_files(live)
    assert rec.rotations >= 2 and old
    total = live.stat().st_size + sum(p.stat().st_size for p in old)
    assert total <= 130_000
    frames = []
    for p in [*old, live]:
        with contextlib.closing(sqlite3.connect(p)) as db:
            frames += [r[0] for r in db.execute("SELECT frame FROM events ORDER BY id")]
            for (text,) in db.execute("SELECT boxes FROM events LIMIT 1"):
                assert len(json.loads(text)) == 5
    assert frames == sorted(frames) and frames[-1] == 599 and frames[0] > 0


def test_sqlite_batches_commits_and_flush_commits(tmp_path):
    live = tmp_path / "ev.db"
    rec = SqliteRecorder(live, commit_every_s=3600)
    rec.write(det(1))
    with contextlib.closing(sqlite3.connect(live)) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0  # not committed yet
    rec.flush()
    with contextlib.closing(sqlite3.connect(live)) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    rec.close()


def test_presence_tracker_needs_a_quiet_spell_before_left():
    p = PresenceTracker(leave_after_s=2.0)
    assert p.update(0, 0.0) is None
    assert p.update(1, 1.0) == "appeared"
    assert p.update(2, 1.5) is None
    assert p.update(0, 2.0) is None  # one empty frame: not gone yet
    assert p.update(1, 2.5) is None
    assert p.update(0, 4.0) is None
    assert p.update(0, 4.6) == "left"
    assert p.update(0, 9.0) is None


def test_open_records_rejects_unknown_format_and_unwritable_dir(tmp_path):
    from edge.errors import CctvkitError

    with pytest.raises(CctvkitError, match="unknown record format 'csv'.*jsonl, sqlite"):
        open_records({"csv": tmp_path / "x.csv"}, RotationPolicy())
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(CctvkitError, match="cannot open jsonl records"):
        open_records({"jsonl": blocker / "ev.jsonl"}, RotationPolicy())


# ---- disk full, on a real full file system ---------------------------------------------------------

def test_disk_full_is_counted_lines_stay_whole_and_writing_resumes(tiny_fs):
    live = tiny_fs / "ev.jsonl"
    sink = RecordSink([JsonlRecorder(live, RotationPolicy(rotate_bytes=1 << 20, max_total_bytes=2 << 20))])
    for i in range(5):
        sink.write(det(i))
    ballast = fill(tiny_fs)
    for i in range(5, 400):
        sink.write(det(i, n_boxes=20))  # must not raise
    assert sink.errors > 0
    lines = jsonl_lines([live])  # no half-written line even though writes failed mid-way
    assert [d["frame"] for d in lines[:5]] == [0, 1, 2, 3, 4]
    ballast.unlink()
    sink.write(det(1000))
    sink.close()
    assert jsonl_lines([live])[-1]["frame"] == 1000


def test_disk_full_sqlite_errors_are_counted_not_raised(tiny_fs):
    sink = RecordSink([SqliteRecorder(tiny_fs / "ev.db", commit_every_s=0.0)])
    sink.write(det(0))
    ballast = fill(tiny_fs)
    for i in range(1, 300):
        sink.write(det(i, n_boxes=30))
    sink.flush()
    assert sink.errors > 0
    ballast.unlink()
    sink.write(det(999))
    sink.close()
    with contextlib.closing(sqlite3.connect(tiny_fs / "ev.db")) as db:
        frames = [r[0] for r in db.execute("SELECT frame FROM events")]
    assert frames[0] == 0 and frames[-1] == 999


def test_a_torn_jsonl_tail_is_cut_back_to_the_last_whole_line_on_open(tmp_path):
    """Issue 14 row 7: power lost mid-line left a fragment, and the next start glued its event onto it."""
    live = tmp_path / "ev.jsonl"
    rec = JsonlRecorder(live, RotationPolicy(rotate_bytes=10**6, max_total_bytes=10**7, keep=3))
    rec.write(det(0))
    rec.write(det(1))
    rec.close()
    whole = live.read_bytes()
    live.write_bytes(whole + b'{"kind":"detection","t":17000')  # the torn tail
    rec = JsonlRecorder(live, RotationPolicy(rotate_bytes=10**6, max_total_bytes=10**7, keep=3))
    rec.write(det(2))
    rec.close()
    assert [d["frame"] for d in jsonl_lines([live])] == [0, 1, 2]
    assert rec.torn_bytes == len(b'{"kind":"detection","t":17000')


# The events table as the first release created it, before presence records had a `reason` column.
OLD_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, kind TEXT NOT NULL, frame INTEGER NOT NULL,
    count INTEGER NOT NULL, latency_ms REAL, state TEXT, person_prob REAL, boxes TEXT NOT NULL,
    scores TEXT NOT NULL
);
CREATE INDEX events_ts ON events (ts);
"""


def test_sqlite_of_the_old_schema_gains_the_reason_column_and_keeps_its_rows(tmp_path):
    """Issue 14 row 3: an upgraded daemon opens the records database of the previous release as it is
    (history kept, old rows' reason NULL) and writes presence ends with their reason into it."""
    path = tmp_path / "ev.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(OLD_SCHEMA)
        db.executemany("INSERT INTO events (ts, kind, frame, count, latency_ms, state, person_prob, boxes, scores)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [(1.7e9, "presence", 3, 1, None, "appeared", None, "[]", "[]"),
                        (1.7e9 + 1, "detection", 4, 1, 9.0, None, None, "[[1, 2, 3, 4]]", "[0.9]")])
        db.commit()
    rec = SqliteRecorder(path)
    rec.write(Event("presence", 1.7e9 + 2, 5, 0, state="left", reason="camera_lost"))
    rec.write(Event("presence", 1.7e9 + 3, 9, 1, state="appeared"))
    rec.flush()
    rec.close()
    rec = SqliteRecorder(path)  # a second open of the migrated file adds nothing twice
    rec.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(events)")]
        rows = db.execute("SELECT id, kind, frame, state, boxes, reason FROM events ORDER BY id").fetchall()
    assert columns.count("reason") == 1
    assert rows == [(1, "presence", 3, "appeared", "[]", None), (2, "detection", 4, None, "[[1, 2, 3, 4]]", None),
                    (3, "presence", 5, "left", "[]", "camera_lost"), (4, "presence", 9, "appeared", "[]", None)]
