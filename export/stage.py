"""The export stage: the train stage's .pt files -> each requested format's device models (export/formats),
verified through the edge runtime (export/verify.py), as the record the pipeline writes into the manifest.

stage = ExportStage.prepare(manifest, params, verify=VerifyParams.of(params, conf, iou))  # fails fast
record = stage.run(out_dir)      # the stage's folder (a temp one renamed into place once recorded)
stage.finish(manifest)           # models into the manifest; ExportCheckFailed when an INT8 model lost too much

The verification runs inside run(), so its report and summary are part of the stage's record: the stage
is recorded once, complete, and never edited afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edge.errors import CctvkitError
from edge.eval import LabelledSet
from edge.manifest import Manifest
from edge.stages import DataSetOut, dataset_stage
from edge.types import ModelSpec
from export.formats import ExportedModel, ExportFormat, TrainedModel, formats_to_export
from export.params import ExportParams
from export.pt_trust import check_pt, recorded_pt
from export.verify import Candidate, VerifyParams, check_failed, frames_for, verify_export, verify_summary

STAGE = "export"  # the stage's folder in the run directory; the manifest's model paths start with it
# (tag, train stage output, task, train stage parameter with its input size, calibration images under the
# composed data set's folder of that task)
JOBS = (
    ("detector", "detector.pt", "detect", "detector_imgsz", (DataSetOut.detect.name, "images/train")),
    ("classifier", "classifier.pt", "classify", "classifier_imgsz", (DataSetOut.classify.name, "train")),
)


def trained_imgsz(manifest: Manifest, key: str) -> int:
    """The input size the train stage used, from the manifest: exporting at another size than the model
    learned at (e.g. the default 320 for a model trained at 384) would lose accuracy silently."""
    params = manifest.stage("train").get("params", {})
    if key not in params:
        raise CctvkitError(f"the train stage does not record {key}", manifest.path,
                           "re-run `trainer train --run` with this version of cctvkit")
    return int(params[key])


@dataclass
class ExportStage:
    params: ExportParams
    verify: VerifyParams
    run_name: str | None
    trained: list[TrainedModel]
    calibration_roots: dict[str, Path]  # tag -> folder the calibration images are picked from
    formats: list[type[ExportFormat]]
    verify_set: LabelledSet | None
    progress: bool = True
    models: dict[str, ModelSpec] = field(default_factory=dict)  # manifest name -> spec, paths run-relative
    report: dict[str, Any] | None = None

    @classmethod
    def prepare(cls, manifest: Manifest, params: ExportParams, verify: VerifyParams,
                progress: bool = True) -> ExportStage:
        """Everything that can fail in a second, before the long export: trained sizes recorded, every
        format exportable here, the verification frames readable (a bad --labels fails at once)."""
        from export.verify_data import load_verify_set

        trained = [TrainedModel(tag, *recorded_pt(manifest, pt), task, trained_imgsz(manifest, size_key))
                   for tag, pt, task, size_key, _ in JOBS]
        for model in trained:  # a crafted or swapped .pt is refused here, before any format is tried
            check_pt(model.weights, model.sha256)
        data_stage = dataset_stage(manifest.data["stages"])  # compose, or import for imported data sets
        roots = {tag: manifest.output(data_stage, folder) / sub for tag, _, _, _, (folder, sub) in JOBS}
        formats = formats_to_export(params.formats)
        vset = (load_verify_set(manifest, params.labels, params.negatives, max_frames=params.verify_frames)
                if params.verify else None)
        if vset is not None:
            for model in trained:
                frames_for(model.task, vset)
        return cls(params, verify, manifest.data.get("run"), trained, roots, formats, vset, progress)

    def run(self, out: Path) -> dict[str, Any]:
        """Export every format of every trained model into `out`, verify them there; returns the stage's
        record (params, inputs, outputs, summary) with paths inside `out`."""
        from export.calibration import select_calibration_images

        outputs: dict[str, Path] = {}
        summary: dict[str, Any] = {}
        candidates: list[Candidate] = []
        for model in self.trained:
            calib = select_calibration_images(self.calibration_roots[model.tag], n=self.params.calibration_images,
                                              seed=0)
            for fmt in self.formats:
                for made in fmt.export(model, calib, self.params, out, self.progress):
                    name = self._add(model, made)
                    outputs.update({path.name: path for path in made.files})
                    summary[name] = {"size_mb": round(sum(q.stat().st_size for q in made.files) / 1e6, 2)}
                    candidates.append(Candidate(name, made.spec, made.files[0]))
            summary[f"{model.tag}-calibration-images"] = len(calib)
        if self.verify_set is not None:
            outputs.update(self._verify(candidates, out, summary))
        return {"params": self.params.model_dump(),
                "inputs": {f"{m.tag}.pt": m.weights for m in self.trained},
                "outputs": outputs, "summary": summary}

    def _add(self, model: TrainedModel, made: ExportedModel) -> str:
        name = f"{model.tag}-{made.spec.format}-{made.variant}"
        if name in self.models:
            raise CctvkitError(f"two export formats both made the model '{name}'",
                               fix="give each format plug-in its own file names")
        # Paths in specs are relative to the run directory, where the stage folder will sit.
        self.models[name] = replace(made.spec, path=f"{STAGE}/{made.files[0].name}")
        return name

    def _verify(self, candidates: list[Candidate], out: Path, summary: dict[str, Any]) -> dict[str, Path]:
        from export.verify_report import write_verify_reports

        assert self.verify_set is not None
        t0 = time.perf_counter()
        weights = {m.task: (m.weights, m.sha256) for m in self.trained}
        self.report = verify_export(candidates, weights, self.verify_set, self.verify, run=self.run_name,
                                    progress=self.progress)
        files = write_verify_reports(self.report, out)
        summary["verify"] = verify_summary(self.report, time.perf_counter() - t0)
        return files

    def finish(self, manifest: Manifest) -> None:
        """After the stage is recorded (its folder in place): the models into the manifest, then the
        verification's verdict, raised (one line naming verify.md) when an INT8 model lost too much."""
        for name, spec in self.models.items():
            manifest.add_model(name, spec)
        manifest.save()
        if self.report is None:
            return
        from export.verify_report import print_summary

        md = manifest.run_dir / STAGE / "verify.md"
        print_summary(self.report, md)
        failed = check_failed(self.report, md)
        if failed is not None:
            raise failed
