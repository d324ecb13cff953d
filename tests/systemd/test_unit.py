"""systemd/cctvkit-edge.service: systemd's own checker accepts it, rejects broken copies of it, and the unit
keeps the directives the daemon's contract with systemd depends on (notify, watchdog, sandbox, devices)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "cctvkit-edge.service"
EXEC_PATH = "/opt/cctvkit/venv/bin/edge"  # where the README installs the venv


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; repeated keys (DeviceAllow=, Environment=) all kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"directive outside a section: {line}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line}"
        current.append((key.strip(), value.strip()))
    return sections


def values(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


def one(sections: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    got = values(sections, section, key)
    assert len(got) == 1, f"[{section}] {key}= expected once, found {got}"
    return got[0]


# ---------------------------------------------------------------------------------------- systemd-analyze


@pytest.fixture(scope="module")
def analyze() -> str:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("needs systemd-analyze (Debian package systemd)")
    return exe


def verify(analyze: str, text: str, tmp_path: Path) -> tuple[bool, str]:
    """Run `systemd-analyze verify` on `text` as cctvkit-edge.service. The venv's `edge` does not exist on
    the test machine and verify refuses a missing ExecStart binary, so ExecStart points at a real
    executable in tmp_path instead; everything else is checked as written.

    verify exits 0 on some problems it only warns about (an unknown key is "ignoring."), so the unit
    passes only with exit 0 *and* no diagnostic naming the unit."""
    fake = tmp_path / "bin" / "edge"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert EXEC_PATH in text, f"ExecStart no longer uses {EXEC_PATH}; update the test and the README"
    unit = tmp_path / "cctvkit-edge.service"
    unit.write_text(text.replace(EXEC_PATH, str(fake)))
    proc = subprocess.run(
        [analyze, "verify", "--man=no", "--generators=no", "--recursive-errors=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = proc.stdout + proc.stderr
    about_unit = [ln for ln in out.splitlines() if unit.name in ln]
    return proc.returncode == 0 and not about_unit, out


def test_systemd_analyze_verify_accepts_the_unit(analyze: str, tmp_path: Path) -> None:
    ok, out = verify(analyze, UNIT.read_text(), tmp_path)
    assert ok, f"systemd-analyze verify rejects {UNIT}:\n{out}"


BROKEN = {
    "unknown key": ("WatchdogSec=30s", "WatchdogSecs=30s"),
    "bad Type": ("Type=notify", "Type=notifyy"),
    "bad Restart": ("Restart=always", "Restart=sometimes"),
    "bad time span": ("TimeoutStopSec=10s", "TimeoutStopSec=ten"),
    "bad device rights": ("DeviceAllow=char-media rw", "DeviceAllow=char-media rwx"),
    "misspelt section": ("[Service]", "[Servic]"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_systemd_analyze_verify_rejects_a_broken_copy(analyze: str, tmp_path: Path, name: str) -> None:
    old, new = BROKEN[name]
    text = UNIT.read_text()
    assert old in text, f"the unit no longer contains {old!r}: update BROKEN"
    ok, out = verify(analyze, text.replace(old, new, 1), tmp_path)
    assert not ok, f"verify passed a unit with a {name} ({new!r}); the check is blind:\n{out}"


def test_verify_rejects_a_missing_executable(analyze: str, tmp_path: Path) -> None:
    """The same verify without the ExecStart rewrite fails: what the test works around is real."""
    text = UNIT.read_text().replace(EXEC_PATH, str(tmp_path / "no-such-edge"))
    unit = tmp_path / "cctvkit-edge.service"
    unit.write_text(text)
    proc = subprocess.run(
        [analyze, "verify", "--man=no", "--generators=no", "--recursive-errors=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "no-such-edge" in proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------ static checks


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def test_runs_the_daemon_from_the_venv(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit, "Service", "ExecStart") == f"{EXEC_PATH} run --config /etc/cctvkit/edge.yaml"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_notify_and_watchdog(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    watchdog = one(unit, "Service", "WatchdogSec")
    m = re.fullmatch(r"(\d+)s?", watchdog)
    assert m and 5 <= int(m.group(1)) <= 120, f"WatchdogSec={watchdog}: expected 5..120 s"
    stop = re.fullmatch(r"(\d+)s?", one(unit, "Service", "TimeoutStopSec"))
    assert stop and int(stop.group(1)) >= 2, "the daemon needs up to 2 s to flush records on SIGTERM"


def test_restarts_with_a_start_limit(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit, "Service", "Restart") == "always"  # SIGHUP exits 0 and must come back
    assert int(one(unit, "Service", "TasksMax")) <= 128
    assert int(one(unit, "Service", "LimitNOFILE")) <= 4096
    assert one(unit, "Service", "IPAddressAllow") == "localhost"
    assert one(unit, "Service", "IPAddressDeny") == "any"
    assert one(unit, "Service", "RestartSec")
    # Start limits belong in [Unit] since systemd 229; in [Service] they are ignored.
    assert int(one(unit, "Unit", "StartLimitBurst")) >= 1
    assert one(unit, "Unit", "StartLimitIntervalSec")
    assert not values(unit, "Service", "StartLimitBurst")


def test_sandbox(unit: dict[str, list[tuple[str, str]]]) -> None:
    svc = dict(unit["Service"])  # single-valued keys only below
    assert svc.get("DynamicUser") == "yes" or svc.get("User") not in (None, "", "root", "0")
    assert one(unit, "Service", "SupplementaryGroups") == "video"
    assert one(unit, "Service", "ProtectSystem") == "strict"
    assert one(unit, "Service", "NoNewPrivileges") == "yes"
    assert one(unit, "Service", "ProtectHome") == "yes"
    assert one(unit, "Service", "PrivateTmp") == "yes"
    assert one(unit, "Service", "StateDirectory") == "cctvkit"
    assert one(unit, "Service", "DevicePolicy") == "closed"
    # /dev/video* etc. must stay reachable: PrivateDevices= would hide them whatever DeviceAllow= says.
    assert values(unit, "Service", "PrivateDevices") in ([], ["no"])
    families = one(unit, "Service", "RestrictAddressFamilies").split()
    assert "AF_UNIX" in families, "sd_notify needs AF_UNIX"
    assert {"AF_INET", "AF_INET6"} <= set(families), "/metrics and RTSP cameras need IP sockets"


def test_device_allows(unit: dict[str, list[tuple[str, str]]]) -> None:
    allows = dict(v.split() for v in values(unit, "Service", "DeviceAllow"))
    for spec in allows:
        # systemd accepts "/dev/video* rw" without a word and then matches nothing at run time.
        assert not (spec.startswith("/dev/") and any(c in spec for c in "*?[")), (
            f"DeviceAllow={spec}: globs only work on char-/block- group names"
        )
    # /proc/devices names: video4linux covers /dev/video* and /dev/v4l-subdev*; media /dev/media*;
    # dma_heap /dev/dma_heap/*; vcio (Pi 5) and vchiq (Pi 4) are what vcgencmd opens.
    for group in ("char-video4linux", "char-media", "char-dma_heap", "char-vcio"):
        assert allows.get(group) == "rw", f"DeviceAllow={group} rw missing"


# ------------------------------------------------------------------------------------- unit <-> daemon


def test_exec_start_is_a_valid_edge_command_line(unit: dict[str, list[tuple[str, str]]]) -> None:
    from edge.cli import build_parser

    argv = one(unit, "Service", "ExecStart").split()
    assert Path(argv[0]).name == "edge"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.config == "/etc/cctvkit/edge.yaml"


def test_readme_example_config_is_valid(tmp_path: Path) -> None:
    """The edge.yaml the README tells users to write is accepted by the daemon's config loader."""
    from edge.config import load_config

    readme = (ROOT / "systemd" / "README.md").read_text()
    m = re.search(r"tee /etc/cctvkit/edge\.yaml >/dev/null <<'EOF'\n(.*?)\nEOF\n", readme, re.S)
    assert m, "the README's edge.yaml example is gone"
    path = tmp_path / "edge.yaml"
    path.write_text(m.group(1) + "\n")
    cfg = load_config(path)
    assert str(cfg.records.jsonl).startswith("/var/lib/cctvkit/"), "records must go to the StateDirectory"
    assert cfg.http.host == "127.0.0.1"
