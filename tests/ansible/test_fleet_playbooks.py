"""The role and playbooks run for real against two sshd test hosts (fleet_hosts.py): converge, idempotence,
verify, a model rollout, a rollback when the new model's health gate fails, a bundle whose sha256 does not
match, a variable of the wrong type, and a fleet bench. The tests share the hosts and run in file order:
each starts from the state the one before left."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from fleet_hosts import ROOT, SshHost, run_molecule, run_playbook, write_inventory

sys.path.insert(0, str(ROOT / "tests" / "bench"))
from synthetic_video import write_video  # noqa: E402
from tinyrun import build_tiny_run  # noqa: E402

from edge.manifest import Manifest  # noqa: E402

SECRET = "s3cret-value-7d1f"  # cctvkit_edge_env value: must reach edge.env, never the playbook's output


@pytest.fixture(scope="module")
def fleet(test_hosts: tuple[list[SshHost], Path, Path]) -> dict[str, Any]:
    hosts, key, tmp = test_hosts
    run = build_tiny_run(tmp / "models", broken=True)
    video = write_video(tmp / "camera.mp4")
    group = {
        "cctvkit_edge_controller_cache": str(tmp / "controller-cache"),
        "cctvkit_edge_model_run": str(run),
        "cctvkit_edge_model_name": "det-onnx",
        "cctvkit_edge_model_options": {"threads": 1},
        # The video path reaches edge.yaml as ${CCTVKIT_VIDEO}, filled from edge.env as a camera password is.
        "cctvkit_edge_source": {"type": "file", "path": "${CCTVKIT_VIDEO}", "loop": True, "realtime": True,
                                "fps": 5},
        "cctvkit_edge_env": {"CCTVKIT_VIDEO": str(video), "CCTVKIT_TEST_SECRET": SECRET},
        "cctvkit_edge_apt_cache_valid_time": 0,
        "cctvkit_edge_health_timeout_s": 90,
        "cctvkit_edge_bench_out": str(tmp / "bench-out"),
    }
    inventory = write_inventory(tmp / "inventory.yml", hosts, key, group)
    return {"hosts": hosts, "tmp": tmp, "run": run, "inventory": inventory, "key": key, "group": group}


def play(fleet: dict[str, Any], playbook: str, *args: str) -> Any:
    result = run_playbook(playbook, fleet["inventory"], fleet["tmp"], *args)
    print(f"\n--- {playbook} {' '.join(args)}: rc {result.rc}\n{result.show()}")
    return result


def healthz(host: SshHost) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{host.http_port}/healthz", timeout=5) as r:
        return dict(json.loads(r.read()))


def model_sha(fleet: dict[str, Any], name: str) -> str:
    return str(Manifest.load(fleet["run"]).data["models"][name]["sha256"])


def current_version(host: SshHost) -> str:
    return os.readlink(host.path("install") / "models" / "current")


def test_molecule_converge_idempotence_verify(fleet: dict[str, Any]) -> None:
    """The role's molecule scenario: converge site.yml, the same again with changed=0, verify on the hosts."""
    results = {}
    for step in ("converge", "idempotence", "verify"):
        results[step] = run_molecule(step, fleet["inventory"], fleet["tmp"])
        print(f"\n--- molecule {step}: rc {results[step].rc}\n{results[step].show()}")
        assert results[step].rc == 0, results[step].out[-5000:]
    converge, again = results["converge"], results["idempotence"]
    assert set(converge.recap) == {"pi-a", "pi-b"}
    assert all(c["failed"] == 0 and c["changed"] > 0 for c in converge.recap.values()), converge.show()
    assert SECRET not in converge.out
    assert "python3-picamera2 skipped" in converge.out  # not Raspberry Pi OS: said, not silently skipped
    assert all(c["changed"] == 0 for c in again.recap.values()), again.show()  # molecule fails on a change too


def test_site_playbook_again_changes_nothing(fleet: dict[str, Any]) -> None:
    """site.yml run as a user runs it (ansible/ansible.cfg), after molecule's converge: changed=0."""
    result = play(fleet, "site.yml")
    assert result.rc == 0, result.out[-4000:]
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in result.recap.values()), result.show()


def test_verify_installed_hosts(fleet: dict[str, Any]) -> None:
    sha = model_sha(fleet, "det-onnx")
    for host in fleet["hosts"]:
        venv = host.path("install") / "venv"
        # The device half runs without the trainer's dependencies.
        probe = subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sys, edge.daemon; print('torch' in sys.modules, sys.prefix != sys.base_prefix)"],
                               capture_output=True, text=True, check=True)
        assert probe.stdout.split() == ["False", "True"]
        cfg, env_file = host.path("config") / "edge.yaml", host.path("config") / "edge.env"
        assert "${CCTVKIT_VIDEO}" in cfg.read_text() and SECRET not in cfg.read_text()
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and SECRET in env_file.read_text()
        check = subprocess.run([str(venv / "bin" / "edge"), "check-config", "--env-file", str(env_file), str(cfg)],
                               capture_output=True, text=True)
        assert check.returncode == 0 and check.stdout.startswith("ok:"), check.stderr
        unit = host.path("unit") / "cctvkit-edge.service"
        assert unit.read_bytes() == (ROOT / "systemd" / "cctvkit-edge.service").read_bytes()  # one source
        dropin = (unit.parent / "cctvkit-edge.service.d" / "override.conf").read_text()
        assert f"ExecStart={venv}/bin/edge run --config {cfg}" in dropin
        if subprocess.run(["sh", "-c", "command -v systemd-analyze"], capture_output=True).returncode == 0:
            verify = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no",
                                     "--recursive-errors=no", str(unit)], capture_output=True, text=True,
                                    env={**os.environ, "SYSTEMD_UNIT_PATH": f"{unit.parent}:"})
            assert verify.returncode == 0 and "cctvkit-edge" not in verify.stderr, verify.stderr
        version = host.path("install") / "models" / current_version(host)
        assert current_version(host) == f"versions/det-onnx-{sha[:12]}"
        assert hashlib.sha256((version / "det.onnx").read_bytes()).hexdigest() == sha
        assert sorted(p.name for p in version.iterdir()) == ["det.onnx", "manifest.json"]  # only this model
        health = healthz(host)
        assert health["status"] == "ok" and health["model"]["sha256"] == sha, health


def test_rollout_of_a_new_model(fleet: dict[str, Any]) -> None:
    result = play(fleet, "deploy-model.yml", "-e", "cctvkit_edge_model_name=det-ncnn")
    assert result.rc == 0, result.out[-4000:]
    sha = model_sha(fleet, "det-ncnn")
    for host in fleet["hosts"]:
        assert current_version(host) == f"versions/det-ncnn-{sha[:12]}"
        version = host.path("install") / "models" / current_version(host)
        assert sorted(p.name for p in version.iterdir()) == ["det-ncnn.bin", "det-ncnn.param", "manifest.json"]
        assert healthz(host)["model"]["sha256"] == sha


def test_unhealthy_model_is_rolled_back_and_stops_the_rollout(fleet: dict[str, Any]) -> None:
    good = model_sha(fleet, "det-ncnn")
    result = play(fleet, "deploy-model.yml", "-e", "cctvkit_edge_model_name=broken")
    assert result.rc != 0
    # serial [1, 25%] + max_fail_percentage 0: pi-a was the first batch, failed, and pi-b was never touched.
    assert result.recap["pi-a"]["failed"] == 1 and result.recap["pi-a"]["rescued"] == 1, result.show()
    assert "pi-b" not in result.recap or result.recap["pi-b"]["changed"] == 0, result.show()
    assert "rolled back to det-ncnn" in result.out
    print(next(line for line in result.out.splitlines() if "not deployed on" in line))
    for host in fleet["hosts"]:
        assert current_version(host) == f"versions/det-ncnn-{good[:12]}"
        assert healthz(host)["model"]["sha256"] == good


def test_a_bundle_whose_sha256_does_not_match_never_becomes_current(fleet: dict[str, Any]) -> None:
    tmp = fleet["tmp"]
    # A model no host has yet: a version already on the host would be re-hashed there instead of copied.
    made = subprocess.run([str(Path(sys.executable).parent / "edge"), "bundle", str(fleet["run"]), "--model",
                           "cls-onnx", "--out", str(tmp / "tampered")], capture_output=True, text=True, check=True)
    bundle = Path(json.loads(made.stdout)["dir"])
    with open(bundle / "cls.onnx", "ab") as f:  # changed after its manifest was written: in transit, say
        f.write(b"\0")
    before = {h.name: current_version(h) for h in fleet["hosts"]}
    result = play(fleet, "deploy-model.yml", "-e", f"cctvkit_edge_model_bundle={bundle}",
                  "-e", "cctvkit_edge_model_run=")
    assert result.rc != 0
    assert "does not match the manifest" in result.out and "was not made current" in result.out, result.out[-3000:]
    print(next(line for line in result.out.splitlines() if "not deployed on" in line))
    assert result.recap["pi-a"]["failed"] == 1 and "pi-b" not in result.recap, result.show()
    for host in fleet["hosts"]:
        assert current_version(host) == before[host.name]
        versions = [p.name for p in (host.path("install") / "models" / "versions").iterdir()]
        assert not [v for v in versions if v.startswith((".incoming", "cls-onnx"))], versions
        assert healthz(host)["model"]["sha256"] == model_sha(fleet, "det-ncnn")


def test_a_variable_of_the_wrong_type_is_named(fleet: dict[str, Any]) -> None:
    result = play(fleet, "site.yml", "-e", "cctvkit_edge_http_port=ninety")
    assert result.rc != 0
    assert "argument 'cctvkit_edge_http_port' is of type str and we were unable to convert to int" in result.out, \
        result.out[-3000:]
    assert all(c["changed"] == 0 for c in result.recap.values()), result.show()


def test_fleet_bench(fleet: dict[str, Any]) -> None:
    labels = fleet["run"] / "scene" / "holdout"
    result = play(fleet, "bench.yml", "-e", f"cctvkit_edge_bench_labels={labels}",
                  "-e", "cctvkit_edge_bench_frames=20", "-e", "cctvkit_edge_bench_threads=1")
    assert result.rc == 0, result.out[-4000:]
    out = Path(fleet["group"]["cctvkit_edge_bench_out"])
    for host in fleet["hosts"]:
        results = json.loads((out / host.name / "results.json").read_text())
        assert results["cells"], results
        assert healthz(host)["status"] == "ok"  # the service runs again after its bench
    for name in ("fleet.md", "fleet.csv", "fleet.json", "fleet.png"):
        assert (out / name).stat().st_size > 0
    report = (out / "fleet.md").read_text()
    assert "pi-a" in report and "pi-b" in report
    print(report)
