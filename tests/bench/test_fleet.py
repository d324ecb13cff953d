"""`bench fleet DIR`: real results.json files from a real short `bench run`, copied into host folders (one
host's figures altered), one folder without results, and the bad-input paths."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from tinyrun import build_tiny_run

from bench.cli import main
from bench.fleet import FLEET_SCHEMA, NO_RESULTS

PNG = b"\x89PNG\r\n\x1a\n"
DET = "det-onnx/onnxruntime/t1"


@pytest.fixture(scope="module")
def results_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real `bench run` (onnxruntime only: the ncnn detector's cell fails, so a failed cell is in it)."""
    root = tmp_path_factory.mktemp("benchrun")
    run = build_tiny_run(root)
    out = root / "out"
    rc = main(["run", "--no-progress", "--no-plots", "--models", str(run), "--threads", "1", "--frames", "5",
               "--backends", "onnxruntime", "--out", str(out)])
    assert rc == 0
    return out / "results.json"


def _copy(src: Path, folder: Path, hostname: str, **det: object) -> dict:
    doc = json.loads(src.read_text())
    doc["host"]["hostname"] = hostname
    doc["host"]["board"] = f"Raspberry Pi 5 ({hostname})"
    for cell in doc["cells"]:
        if cell["id"] == DET:
            cell.update(det)
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(doc))
    return doc


@pytest.fixture
def fleet_dir(results_json: Path, tmp_path: Path) -> tuple[Path, dict[str, dict]]:
    d = tmp_path / "fleet"
    docs = {
        "pi-a": _copy(results_json, d / "pi-a", "pi-a", temp_start_c=45.0, temp_end_c=61.5, throttled_hex="0x0"),
        "pi-b": _copy(results_json, d / "pi-b", "pi-b", fps_sustained=12.5, latency_p50_ms=70.0,
                      latency_p95_ms=91.0, temp_start_c=50.0, temp_end_c=82.3, throttled_hex="0x50005"),
    }
    (d / "pi-c").mkdir()  # bench never ran there (or its copy was forgotten)
    return d, docs


def test_fleet_reports_match_the_hosts_results(fleet_dir, tmp_path, capsys):
    d, docs = fleet_dir
    out = tmp_path / "report"
    assert main(["fleet", str(d), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"fleet.md", "fleet.csv", "fleet.json", "fleet.png"}

    fleet = json.loads((out / "fleet.json").read_text())
    assert fleet["schema"] == FLEET_SCHEMA and [h["host"] for h in fleet["hosts"]] == ["pi-a", "pi-b", "pi-c"]
    hosts = {h["host"]: h for h in fleet["hosts"]}
    assert hosts["pi-c"]["status"] == NO_RESULTS and hosts["pi-c"]["results"] is None
    assert hosts["pi-b"]["throttled_cells"] == [DET] and hosts["pi-a"]["throttled_cells"] == []
    assert hosts["pi-b"]["temp_end_max_c"] == 82.3 and hosts["pi-a"]["hostname"] == "pi-a"
    rows = fleet["rows"]
    for host, doc in docs.items():  # every cell of every host, each figure as that host's results.json has it
        got = {r["id"]: r for r in rows if r["host"] == host}
        assert list(got) == [c["id"] for c in doc["cells"]]
        for cell in doc["cells"]:
            for key in ("status", "fps_sustained", "latency_p50_ms", "latency_p95_ms", "temp_start_c",
                        "temp_end_c", "throttled_hex", "map50", "backend", "precision"):
                assert got[cell["id"]][key] == cell.get(key), (host, cell["id"], key)
    assert {r["status"] for r in rows} == {"ok", "failed", NO_RESULTS}
    b_det = next(r for r in rows if r["host"] == "pi-b" and r["id"] == DET)
    assert b_det["throttle"] == "0x50005 under_voltage, throttled now; under_voltage, throttled since boot"
    assert b_det["labels"] == "PSEUDO (run holdout)" and b_det["map50"] == pytest.approx(1.0)

    table = list(csv.DictReader((out / "fleet.csv").open()))
    assert len(table) == sum(len(doc["cells"]) for doc in docs.values()) + 1
    csv_b = next(r for r in table if r["host"] == "pi-b" and r["id"] == DET)
    assert float(csv_b["fps_sustained"]) == 12.5 and float(csv_b["temp_end_c"]) == 82.3
    assert csv_b["hostname"] == "pi-b" and csv_b["throttled_hex"] == "0x50005"
    csv_a = next(r for r in table if r["host"] == "pi-a" and r["id"] == DET)
    assert float(csv_a["fps_sustained"]) == docs["pi-a"]["cells"][0]["fps_sustained"]
    assert next(r for r in table if r["host"] == "pi-c")["status"] == NO_RESULTS

    md = (out / "fleet.md").read_text()
    assert "| pi-c | no results |" in md and "pi-c: no results" in md
    md_b = next(line for line in md.splitlines() if line.startswith(f"| pi-b | {DET} |"))
    cols = [c.strip() for c in md_b.strip("|").split("|")]
    # host, cell, FPS, p50, p95, temp start, temp end, mAP50, throttle, labels
    assert cols == ["pi-b", DET, "12.5", "70.0", "91.0", "50.0", "82.3", "1.000",
                    "0x50005 under_voltage, throttled now; under_voltage, throttled since boot",
                    "PSEUDO (run holdout)"]
    assert "| pi-a | det-ncnn/-/t1 | FAILED |" in md and "![fleet.png](fleet.png)" in md
    png = (out / "fleet.png").read_bytes()
    assert png[:8] == PNG and len(png) > 10000
    printed = capsys.readouterr()
    assert "pi-c: no results" in printed.out and "fleet.png" in printed.err


def test_fleet_default_out_is_dir_and_a_rerun_reads_only_host_folders(fleet_dir):
    d, _ = fleet_dir
    assert main(["fleet", str(d), "--no-plots"]) == 0
    first = json.loads((d / "fleet.json").read_text())
    assert main(["fleet", str(d), "--no-plots"]) == 0  # its own fleet.* files in DIR are not hosts
    again = json.loads((d / "fleet.json").read_text())
    assert [h["host"] for h in again["hosts"]] == [h["host"] for h in first["hosts"]] == ["pi-a", "pi-b", "pi-c"]
    assert not (d / "fleet.png").exists() and "![fleet.png]" not in (d / "fleet.md").read_text()
    # an --out folder inside DIR is the report, not a host
    assert main(["fleet", str(d), "--no-plots", "--out", str(d / "report")]) == 0
    assert "report" not in {h["host"] for h in json.loads((d / "report" / "fleet.json").read_text())["hosts"]}


@pytest.mark.parametrize("content, why", [("{not json", "not valid JSON"),
                                          ('{"schema": "something else"}', "not a `bench run` results file"),
                                          ("", "not valid JSON")])
def test_malformed_results_json_is_one_line_naming_the_file(fleet_dir, tmp_path, capsys, content, why):
    d, _ = fleet_dir
    bad = d / "pi-d" / "results.json"
    bad.parent.mkdir()
    bad.write_text(content)
    assert main(["fleet", str(d), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and why in err, err
    assert not (tmp_path / "report" / "fleet.json").exists()


def test_fleet_without_any_results_or_folder_exits_2(tmp_path, capsys):
    (tmp_path / "fleet" / "pi-a").mkdir(parents=True)
    assert main(["fleet", str(tmp_path / "fleet")]) == 2
    assert "no host folder with a results.json" in capsys.readouterr().err
    assert main(["fleet", str(tmp_path / "nowhere")]) == 2
    assert "fleet folder not found" in capsys.readouterr().err


def test_fleet_of_one_host_is_the_same_report_code_as_bench_run(results_json, tmp_path):
    """The fleet's figures go through bench/report.py's cell_text: the same text as the host's results.md."""
    d = tmp_path / "fleet"
    (d / "pi-a").mkdir(parents=True)
    shutil.copy(results_json, d / "pi-a" / "results.json")
    assert main(["fleet", str(d), "--no-plots"]) == 0
    from bench.report import cell_text
    from bench.schema import load_results

    doc = load_results(results_json)
    md = (d / "fleet.md").read_text()
    for cell in doc["cells"]:
        fps = cell_text(cell, "fps_sustained")
        assert f"| pi-a | {cell['id']} | {fps} |" in md
