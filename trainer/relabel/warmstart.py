"""Start the student from the teacher's own weights when the teacher is a YOLO of the student's architecture.

No pretrained .pt can be downloaded here, so a student trained from yolo11n.yaml starts from random
weights, and on 2 CPU cores a few epochs cannot learn what COCO taught the teacher. But a COCO YOLO11n
.tflite export *is* a YOLO11n: its convolutions hold the weights (batch norm folded in, int8 per channel
in an int8w export). So the student is built from the same yaml with nc=1 and every convolution is
filled from the teacher's, the person row of its class head kept; training then only specialises it to
the camera (and to the student's smaller input).

Which TFLite convolution is which PyTorch module is found by the numbers, not by names (an onnx2tf
export numbers its layers in its own order): the PyTorch model runs once on a probe image and, before
each convolution, the teacher's convolutions of the same shape are tried on the actual input; the one
reproducing its own output tensor in the TFLite run is taken. Two convolutions that read the same input
with the same shape (C3k's cv1 / cv2) both reproduce; the first is taken and, if a later convolution then
finds no match, the search backtracks to the latest such tie. Every weight is then checked end to end:
the student's person scores must follow the teacher's on the probe (the result records the correlation).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import CctvkitError

MATCH_ERROR = 0.15  # relative RMS error of a convolution's output vs the TFLite tensor (int8w noise ~0.01-0.05)
MIN_CORRELATION = 0.98  # student vs teacher person logits on the probe image, after the transfer
MAX_TRIES = 64  # forward passes of the search (YOLO11n: a few ties, each settled within a layer)


class NoMatch(Exception):
    def __init__(self, module: str):
        super().__init__(module)
        self.module = module


@dataclass
class _TfConv:
    weight: np.ndarray  # torch layout (O, I/groups, kh, kw), dequantised
    bias: np.ndarray
    output: np.ndarray  # NCHW, what the TFLite run produced (conv + bias, before the activation)


def _dequantised(interp: Any, detail: dict[str, Any]) -> np.ndarray:
    a = interp.get_tensor(detail["index"])
    q = detail["quantization_parameters"]
    if a.dtype == np.int8 and len(q["scales"]):
        shape = [1] * a.ndim
        shape[q["quantized_dimension"]] = -1
        return ((a.astype(np.float32) - q["zero_points"].reshape(shape)) * q["scales"].reshape(shape)).astype(np.float32)
    return a.astype(np.float32)


def _tflite_convs(path: Path, probe: np.ndarray) -> tuple[list[_TfConv], np.ndarray]:
    """Every convolution of the TFLite model with its weights and its output on the probe (NHWC 0..1),
    and the model's own output."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(str(path), experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    details = {t["index"]: t for t in interp.get_tensor_details()}
    interp.set_tensor(interp.get_input_details()[0]["index"], probe[None].astype(np.float32))
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"])
    convs = []
    for op in interp._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        w = _dequantised(interp, details[op["inputs"][1]])
        w = w.transpose(3, 0, 1, 2) if op["op_name"] == "DEPTHWISE_CONV_2D" else w.transpose(0, 3, 1, 2)
        has_bias = len(op["inputs"]) > 2 and op["inputs"][2] >= 0
        b = _dequantised(interp, details[op["inputs"][2]]) if has_bias else np.zeros(w.shape[0], np.float32)
        y = interp.get_tensor(op["outputs"][0]).astype(np.float32).transpose(0, 3, 1, 2)
        convs.append(_TfConv(np.ascontiguousarray(w, np.float32), b.astype(np.float32), y))
    return convs, out


def _conv_layer_names(model: Any) -> list[str]:
    import torch

    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, name=n: order.append(name))
             for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    return order


def _rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)) / (np.std(b) + 1e-6))


def _assign(model: Any, convs: list[_TfConv], probe: np.ndarray, choices: dict[str, int],
            ties: list[tuple[str, int]]) -> dict[str, int]:
    """One forward pass on the probe assigning a TFLite convolution to every PyTorch one (see the module
    doc); `choices` picks among ties, `ties` collects (module, n tied candidates) up to where it got.
    Returns {module: conv index}; raises NoMatch at the first module nothing reproduces."""
    import torch
    import torch.nn.functional as F

    free = set(range(len(convs)))
    chosen: dict[str, int] = {}
    mods = dict(model.named_modules())

    def pre_hook(name: str):
        def hook(conv: Any, inputs: tuple) -> None:
            x = inputs[0]
            shape = tuple(conv.weight.shape)
            fits = []
            for j in sorted(free):
                c = convs[j]
                if c.weight.shape != shape or c.output.shape[1:] != (shape[0], *_out_hw(conv, x)):
                    continue
                y = F.conv2d(x, torch.from_numpy(c.weight), torch.from_numpy(c.bias), conv.stride, conv.padding,
                             conv.dilation, conv.groups).numpy()
                if _rel_error(y, c.output) < MATCH_ERROR:
                    fits.append(j)
            if not fits:
                raise NoMatch(name)
            if len(fits) > 1:
                ties.append((name, len(fits)))
            j = fits[min(choices.get(name, 0), len(fits) - 1)]
            free.discard(j)
            chosen[name] = j
            _load(conv, mods, name, convs[j])
        return hook

    hooks = [mods[n].register_forward_pre_hook(pre_hook(n)) for n in _conv_layer_names(model)]
    try:
        with torch.no_grad():
            model(torch.from_numpy(probe.transpose(2, 0, 1).copy())[None].float())
    finally:
        for h in hooks:
            h.remove()
    return chosen


def _backtrack(choices: dict[str, int], ties: list[tuple[str, int]]) -> bool:
    """Move the latest tie that has another candidate on to it; the ties after it start over."""
    for k in range(len(ties) - 1, -1, -1):
        name, n = ties[k]
        if choices.get(name, 0) + 1 < n:
            choices[name] = choices.get(name, 0) + 1
            for later, _ in ties[k + 1:]:
                choices.pop(later, None)
            return True
    return False


def _out_hw(conv: Any, x: Any) -> tuple[int, int]:
    h, w = x.shape[2:]
    k, s, p = conv.kernel_size, conv.stride, conv.padding
    return ((h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1)


def _load(conv: Any, mods: dict[str, Any], name: str, c: _TfConv) -> None:
    """The folded weights into conv; its batch norm (if any) becomes identity + the folded bias."""
    import torch

    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(c.weight))
        parent = mods.get(name.rsplit(".", 1)[0]) if "." in name else None
        bn = getattr(parent, "bn", None) if name.endswith(".conv") else None
        if bn is not None:
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(c.bias))
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0 - bn.eps)  # (x - 0) / sqrt(1 - eps + eps) = x
        elif conv.bias is not None:
            conv.bias.copy_(torch.from_numpy(c.bias))


def _probe_image(size: tuple[int, int]) -> np.ndarray:
    """Smooth random structure: every channel of every layer responds (a flat image would tie everything)."""
    import cv2

    rng = np.random.default_rng(0)
    small = rng.random((size[0] // 16, size[1] // 16, 3)).astype(np.float32)
    big = cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(big + 0.05 * rng.standard_normal(big.shape).astype(np.float32), 0, 1)


def transfer_from_tflite(path: Path, arch_yaml: str, nc_teacher: int, imgsz: tuple[int, int]) -> tuple[Any, dict]:
    """(the teacher as a PyTorch DetectionModel of arch_yaml, what the transfer measured)."""
    from ultralytics.nn.tasks import DetectionModel

    probe = _probe_image(imgsz)
    convs, out = _tflite_convs(path, probe)
    model = DetectionModel(arch_yaml, nc=nc_teacher, verbose=False).eval()
    n_torch = len(_conv_layer_names(model))
    if n_torch != len(convs):
        raise CctvkitError(f"the teacher has {len(convs)} convolutions, {arch_yaml} has {n_torch}: not the same "
                           "architecture", path, f"set train.init: scratch, or pass a {Path(arch_yaml).stem} teacher")
    choices: dict[str, int] = {}
    for _ in range(MAX_TRIES):
        ties: list[tuple[str, int]] = []
        try:
            chosen = _assign(model, convs, probe, choices, ties)
            break
        except NoMatch as e:
            if not _backtrack(choices, ties):
                raise CctvkitError(f"no convolution of the teacher reproduces {e.module}", path,
                                   "set train.init: scratch (the teacher is another architecture)") from None
    else:
        raise CctvkitError(f"the teacher's convolutions did not match in {MAX_TRIES} tries", path,
                           "set train.init: scratch")
    corr = _check(model, probe, out)
    if corr < MIN_CORRELATION:
        raise CctvkitError(f"the transferred weights reproduce the teacher's scores only to r = {corr:.3f}", path,
                           "set train.init: scratch")
    return model, {"convolutions": len(chosen), "ties_resolved": len(ties), "probe_correlation": round(corr, 4)}


def restore_batch_norm(model: Any, images: list[np.ndarray]) -> int:
    """Give every folded batch norm statistics again, so that TRAINING behaves like the teacher.

    After the transfer a batch norm is identity + bias in eval mode (running mean 0, var 1), but in train
    mode it normalises each channel by the batch's own statistics, which the folded weights are far from:
    the first training step would throw the teacher away (a 1-epoch student scored 0.000). So the conv
    outputs' per-channel mean and variance are measured on `images` (NHWC 0..1, eval mode, where the net
    is the teacher) and set as running statistics, with weight = their std and bias = folded bias + mean:
    eval mode is unchanged, (x - mean) / std * std + bias + mean = x + bias, and train mode starts where
    eval is. Returns the number of batch norms set."""
    import torch

    stats: dict[str, tuple[Any, Any]] = {}
    hooks = []
    for name, m in model.named_modules():
        bn = getattr(m, "bn", None)
        if isinstance(bn, torch.nn.BatchNorm2d) and isinstance(getattr(m, "conv", None), torch.nn.Conv2d):
            def hook(mod: Any, i: tuple, out: Any, name: str = name) -> None:
                y = out.detach().double()
                s = stats.get(name)
                mean, sq = y.mean(dim=(0, 2, 3)), (y * y).mean(dim=(0, 2, 3))
                stats[name] = (mean, sq) if s is None else (s[0] + mean, s[1] + sq)
            hooks.append(m.conv.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        for img in images:
            model(torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None].float())
    for h in hooks:
        h.remove()
    mods = dict(model.named_modules())
    with torch.no_grad():
        for name, (ssum, sqsum) in stats.items():
            bn = mods[name].bn
            mean, sq = ssum / len(images), sqsum / len(images)
            var = (sq - mean * mean).clamp(min=1e-6)
            bias = bn.bias.double().clone()  # the folded conv bias (running mean 0, var 1 - eps, weight 1)
            bn.running_mean.copy_(mean.float())
            bn.running_var.copy_(var.float())
            bn.weight.copy_(torch.sqrt(var + bn.eps).float())
            bn.bias.copy_((bias + mean).float())
    return len(stats)


def calibration_images(paths: list[Path], imgsz: tuple[int, int], n: int = 16) -> list[np.ndarray]:
    """Letterboxed RGB 0..1 frames of the scene for restore_batch_norm (the probe image when none)."""
    from edge.detect.preprocess import letterbox
    from edge.eval.labelled import read_image

    step = max(1, len(paths) // n)
    out = [letterbox(read_image(p), imgsz)[0][:, :, ::-1].astype(np.float32) / 255.0 for p in paths[::step][:n]]
    return out or [_probe_image(imgsz)]


def _person_scores(model: Any, image: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    model.model[-1].export = False
    with torch.no_grad():
        y = model(torch.from_numpy(image.transpose(2, 0, 1).copy())[None].float())
    return (y[0] if isinstance(y, tuple | list) else y).numpy()[0, 4]


def _check(model: Any, probe: np.ndarray, tflite_out: np.ndarray) -> float:
    """Correlation of the person-class scores (class 0 of COCO) over all anchors, student vs teacher."""
    return float(np.corrcoef(_person_scores(model, probe), tflite_out[0, 4])[0, 1])


def student_from_teacher(teacher: Path, person_class: int, nc_teacher: int, imgsz: tuple[int, int], out: Path,
                         arch_yaml: str = "yolo11n.yaml", frames: list[Path] | None = None) -> dict[str, Any]:
    """Write out (an Ultralytics checkpoint): a detector of arch_yaml holding the teacher's weights, with
    the teacher's class head (nc_teacher classes; the hidden width of a YOLO11 class head grows with the
    class count, so cutting it to one class would throw most of it away). Returns what was measured."""
    import io

    import torch

    from edge.atomic import atomic_write_bytes
    from export.offline import configure

    configure()
    if Path(teacher).suffix.lower() != ".tflite":
        raise CctvkitError("the student starts from a teacher's weights only for .tflite teachers", teacher,
                           "set train.init: scratch, or pass the teacher's .tflite export")
    model, info = transfer_from_tflite(Path(teacher), arch_yaml, nc_teacher, imgsz)
    probe = _probe_image(imgsz)
    before = _person_scores(model, probe)
    info["batch_norms_restored"] = restore_batch_norm(model, calibration_images(frames or [], imgsz))
    after = _person_scores(model, probe)
    info["eval_unchanged_max_abs"] = round(float(np.abs(after - before).max()), 6)
    model.model[-1].export = False
    model.names = {i: f"class{i}" for i in range(nc_teacher)} | {person_class: "person"}
    buf = io.BytesIO()
    torch.save({"model": model, "train_args": {}, "cctvkit": {"from_teacher": str(teacher), **info}}, buf)
    atomic_write_bytes(out, buf.getvalue())
    return {**info, "arch": arch_yaml}
