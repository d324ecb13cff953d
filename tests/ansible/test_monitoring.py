"""ansible/playbooks/monitoring.yml and the Grafana dashboard (test_lint.py lints it with the rest): a
real run writing the Prometheus file_sd targets of a small inventory, and every metric the dashboard queries
found in a real `edge run`'s /metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from fleet_hosts import ansible_env as fleet_env
from fleet_hosts import ansible_tool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "edge" / "daemon"))
from daemon_helpers import (  # noqa: E402
    NotifyListener,
    base_config,
    bright_then_dark,
    fake_pi,
    http_get,
    make_run,
    metric,
    start_ready,
    wait_for,
    write_config,
    write_video,
)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

PLAYBOOK = ROOT / "ansible" / "playbooks" / "monitoring.yml"
DASHBOARD = ROOT / "ansible" / "monitoring" / "grafana" / "cctvkit-edge.json"
INVENTORY = """\
cctvkit_edge:
  hosts:
    pi-a: {ansible_host: 10.0.0.11, cctvkit_monitoring_labels: {site: lobby}}
    pi-b: {ansible_host: "fd00::12", cctvkit_edge_http_port: 9200}
    pi-c: {cctvkit_edge_http_port: 9300}
other:
  hosts:
    not-an-edge: {ansible_host: 10.0.0.99}
"""
EXPECTED_TARGETS = [
    {"targets": ["10.0.0.11:9108"], "labels": {"host": "pi-a", "site": "lobby"}},
    {"targets": ["[fd00::12]:9200"], "labels": {"host": "pi-b"}},
    {"targets": ["pi-c:9300"], "labels": {"host": "pi-c"}},
]


def ansible_env(tmp_path: Path) -> dict[str, str]:
    """fleet_hosts' environment without our ansible.cfg: the playbook must not depend on it."""
    return {**fleet_env(tmp_path), "ANSIBLE_CONFIG": str(tmp_path / "no-ansible.cfg")}


def run(cmd: list[str], tmp_path: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300)


def _inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inventory.yml"
    inv.write_text(INVENTORY)
    return inv


def test_playbook_writes_file_sd_targets_and_copies_the_dashboard(tmp_path):
    sd, graf = tmp_path / "prom" / "file_sd" / "edge.yml", tmp_path / "grafana" / "dashboards"
    r = run([str(ansible_tool("ansible-playbook")), "-i", str(_inventory(tmp_path)), str(PLAYBOOK),
             "-e", f"cctvkit_monitoring_file_sd={sd}", "-e", f"cctvkit_monitoring_grafana_dir={graf}"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert yaml.safe_load(sd.read_text()) == EXPECTED_TARGETS
    assert sd.stat().st_mode & 0o777 == 0o644
    assert (graf / "cctvkit-edge.json").read_bytes() == DASHBOARD.read_bytes()
    # a second run changes nothing (idempotent)
    again = run([str(ansible_tool("ansible-playbook")), "-i", str(_inventory(tmp_path)), str(PLAYBOOK),
                 "-e", f"cctvkit_monitoring_file_sd={sd}", "-e", f"cctvkit_monitoring_grafana_dir={graf}"], tmp_path)
    assert again.returncode == 0 and re.search(r"localhost\s*:.*changed=0", again.stdout), again.stdout


def test_playbook_defaults_next_to_the_playbooks_and_no_grafana_dir(tmp_path):
    """The default target file is ansible/out/file_sd/cctvkit-edge.yml; without cctvkit_monitoring_grafana_dir
    no dashboard is copied. Run on a copy of ansible/ so the checkout stays clean."""
    tree = tmp_path / "ansible"
    shutil.copytree(ROOT / "ansible" / "monitoring", tree / "monitoring")
    (tree / "playbooks").mkdir()
    shutil.copy(PLAYBOOK, tree / "playbooks")
    r = run([str(ansible_tool("ansible-playbook")), "-i", str(_inventory(tmp_path)), str(tree / "playbooks" / "monitoring.yml")],
            tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert yaml.safe_load((tree / "out" / "file_sd" / "cctvkit-edge.yml").read_text()) == EXPECTED_TARGETS
    assert re.search(r"localhost\s*:.*skipped=2", r.stdout), r.stdout  # the two Grafana tasks
    assert [p for p in tmp_path.rglob("cctvkit-edge.json") if p != tree / "monitoring/grafana/cctvkit-edge.json"] == []
    # an inventory without the group: an empty target list, not a failure
    (tmp_path / "empty.yml").write_text("other:\n  hosts:\n    x: {}\n")
    r = run([str(ansible_tool("ansible-playbook")), "-i", str(tmp_path / "empty.yml"), str(tree / "playbooks" / "monitoring.yml")],
            tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert yaml.safe_load((tree / "out" / "file_sd" / "cctvkit-edge.yml").read_text()) == []


# PromQL words that are not metric names: aggregations and functions (followed by "(") are dropped by the
# pattern; these are the keywords.
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                   "unless", "offset", "inf", "nan"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: strings, label matchers {...}, ranges [...] and the
    label lists of by/without/on/ignoring (...) removed, then every identifier not called as a function."""
    s = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    names = {m.group(1) for m in re.finditer(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", s)}
    return {n for n in names if n.lower() not in PROMQL_KEYWORDS}


def dashboard_queries(dash: dict) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q)
            assert m, q
            exprs.append(m.group(1))
    return exprs


def test_promql_metrics_extraction():
    assert promql_metrics('histogram_quantile(0.95, sum by (host, le) (rate(a_bucket{host=~"$host"}'
                          "[$__rate_interval])))") == {"a_bucket"}
    assert promql_metrics('max by (host, flag) (t{when="now"}) / 2^20 + on(host) b offset 5m') == {"t", "b"}


def test_dashboard_shape():
    dash = json.loads(DASHBOARD.read_text())
    assert 36 <= dash["schemaVersion"] <= 41 and dash["uid"] == "cctvkit-edge"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert variables["host"]["query"]["query"].startswith("label_values(")
    for panel in dash["panels"]:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert 'host=~"$host"' in t["expr"], (panel["title"], t["expr"])
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(dashboard_queries(dash))
    assert "histogram_quantile(" in exprs and "cctvkit_inference_latency_seconds_bucket" in exprs


def test_every_dashboard_metric_is_in_a_real_edge_scrape(tmp_path):
    """A real `edge run` on a looping video with the brightness detector and a fake Pi (thermal zone and
    vcgencmd), so the Pi-only metrics are there too; every metric the dashboard queries is in its /metrics."""
    dash = json.loads(DASHBOARD.read_text())
    used = set().union(*(promql_metrics(e) for e in dashboard_queries(dash)))
    assert {"cctvkit_fps", "cctvkit_inference_latency_seconds_bucket", "cctvkit_persons_in_view",
            "cctvkit_cpu_temperature_celsius", "cctvkit_throttle", "cctvkit_camera_connected",
            "cctvkit_ready"} <= used

    run_dir = make_run(tmp_path / "run")
    video = write_video(tmp_path / "v.avi", bright_then_dark(8, 8))
    zone, bindir = fake_pi(tmp_path)
    doc = base_config(run_dir, video, source={"loop": True, "realtime": True, "fps": 40},
                      system={"thermal_zone": str(zone), "vcgencmd": "vcgencmd"})
    cfg = write_config(tmp_path / "edge.yaml", doc)
    notify = NotifyListener(tmp_path / "notify.sock")
    try:
        d, port = start_ready(cfg, notify, env={"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
        try:
            assert wait_for(lambda: (metric(port, "cctvkit_frames_processed") or 0) >= 5, 20), d.log
            code, text = http_get(f"http://127.0.0.1:{port}/metrics")
        finally:
            d.kill()
    finally:
        notify.close()
    assert code == 200
    exported = {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}
    missing = sorted(used - exported)
    assert not missing, f"the dashboard queries metrics the daemon does not export: {missing}\n{sorted(exported)}"
