"""The .pt trust boundary (export/pt_trust.py): a run folder may be shared, so `trainer export` loads a .pt
only when its bytes are the ones the train stage recorded and its pickle names model classes only."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from edge.atomic import sha256_file
from edge.errors import CctvkitError
from edge.manifest import Manifest
from trainer.cli import main

CONFIG = "export:\n  verify: false\n  calibration_images: 32\n"  # the quickest export that still loads the .pt


class _Payload:
    """What an attacker pickles beside the weights: unpickling it calls builtins.exec on `code`."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self) -> tuple:
        return builtins.exec, (self.code,)


def _export(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    cfg = tmp_path / "export.yaml"
    cfg.write_text(CONFIG)
    capsys.readouterr()
    rc = main(["export", "--run", str(run), "--config", str(cfg)])
    return rc, capsys.readouterr().err.strip()


def _rerecord(run: Path, key: str) -> None:
    """Rewrite the manifest to match the file now there, as whoever can write a shared run folder can."""
    m = Manifest.load(run)
    entry = m.stage("train")["outputs"][key]
    entry["sha256"] = sha256_file(run / "train" / key)
    m.save()


def test_a_crafted_pt_with_a_matching_manifest_is_refused_before_its_pickle_runs(
    run_with_train_stage, toy_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    run = tmp_path / "run"
    run_with_train_stage(run, {"detector_imgsz": 64, "classifier_imgsz": 32})
    marker = tmp_path / "payload-ran"
    # The genuine checkpoint (our own file: full unpickling is safe here) with a payload added to it: the
    # model inside still loads, so only the trust check can stop it.
    ckpt = torch.load(toy_models["detector"], map_location="cpu", weights_only=False)
    ckpt["note"] = _Payload(f"open({str(marker)!r}, 'w').write('ran')")
    pt = run / "train" / "detector.pt"
    torch.save(ckpt, pt)
    _rerecord(run, "detector.pt")

    rc, err = _export(run, tmp_path, capsys)
    assert rc == 2
    assert not marker.exists(), "the pickle's payload ran"
    assert "\n" not in err and err.startswith(f"error: {pt}: ")
    assert "builtins.exec" in err and "refused to load it" in err
    assert not (run / "export").exists()


def test_a_pt_changed_after_training_is_refused(
    run_with_train_stage, toy_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    run_with_train_stage(run, {"detector_imgsz": 64, "classifier_imgsz": 32})
    pt = run / "train" / "classifier.pt"
    pt.write_bytes(toy_models["detector"].read_bytes())  # a real checkpoint, but not the one trained here
    rc, err = _export(run, tmp_path, capsys)
    assert rc == 2
    assert "\n" not in err and err.startswith(f"error: {pt}: ") and "sha256" in err


def test_an_exporter_loads_only_the_recorded_bytes(toy_models: dict[str, Path], tmp_path: Path) -> None:
    """The sha256 travels with the path down to the load: a file swapped after the manifest was checked
    (between prepare and the export) is refused too, naming the user's file, not the exporter's copy."""
    from export.onnx_export import export_onnx

    pt = tmp_path / "detector.pt"
    pt.write_bytes(toy_models["detector"].read_bytes())
    recorded = sha256_file(toy_models["classifier"])  # what a run recorded; the file is another one
    with pytest.raises(CctvkitError, match=rf"^{pt}: sha256 is not the one the run's train stage recorded"):
        export_onnx(pt, tmp_path / "o" / "d.onnx", task="detect", imgsz=64, sha256=recorded)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_genuine_ultralytics_checkpoints_pass(toy_models: dict[str, Path]) -> None:
    """Both kinds the train stage writes: the detector, and the classifier with its pickled transforms."""
    from export.offline import load_model
    from export.pt_trust import check_pt

    for key, task in (("detector", "detect"), ("classifier", "classify")):
        check_pt(toy_models[key], sha256_file(toy_models[key]))
        model = load_model(task, toy_models[key], sha256=sha256_file(toy_models[key]))
        assert model.task == task and "person" in model.names.values()


def test_a_pickle_of_anything_but_model_classes_is_refused(tmp_path: Path) -> None:
    import torch

    from export.pt_trust import check_weights_only

    marker = tmp_path / "payload-ran"
    pt = tmp_path / "evil.pt"
    torch.save({"model": None, "x": _Payload(f"open({str(marker)!r}, 'w').write('ran')")}, pt)
    with pytest.raises(CctvkitError, match=rf"^{pt}: the pickle calls 'builtins.exec'"):
        check_weights_only(pt)
    assert not marker.exists()
