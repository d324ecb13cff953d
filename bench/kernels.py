"""Which kernels each runtime can take on this CPU, as far as the CPU and the runtime tell.

The same model file takes other int8 and fp16 paths on a Pi 5 (Cortex-A76: NEON, fp16 arithmetic, int8 dot
product) than on an x86 workstation (AVX2, AVX-512 VNNI), and its scores move in the third decimal between
them (`make pi-check`). `bench run` records this beside its figures so a result names what it ran on.
Only what is known is said: ONNX Runtime's MLAS picks its GEMM by these CPU features and does not report
the choice, ncnn reports some of its CPU probes, LiteRT's interpreter applies XNNPACK by default.
"""

from __future__ import annotations

import platform
import struct
from importlib import metadata
from pathlib import Path
from typing import Any

# AT_HWCAP bits of arm64 (Linux arch/arm64/include/uapi/asm/hwcap.h) that decide the kernels: asimddp =
# int8 dot product (SDOT/UDOT), asimdhp/fphp = fp16 arithmetic (ncnn's fp16 paths), sve; AT_HWCAP2 i8mm/bf16.
HWCAP = {1: "asimd", 9: "fphp", 10: "asimdhp", 20: "asimddp", 22: "sve"}
HWCAP2 = {13: "i8mm", 14: "bf16", 1: "sve2"}
# x86 flags that decide int8 and fp32 GEMMs in ONNX Runtime and XNNPACK.
X86_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
# What each feature buys, for the report's one line.
MEANING = {"asimddp": "int8 dot product", "i8mm": "int8 matrix multiply", "asimdhp": "fp16 arithmetic",
           "avx512_vnni": "int8 VNNI", "avx_vnni": "int8 VNNI", "amx_int8": "int8 AMX"}
NCNN_PROBES = ("cpu_support_arm_neon", "cpu_support_arm_vfpv4", "cpu_support_arm_asimdhp",
               "cpu_support_arm_asimddp", "cpu_support_arm_i8mm", "cpu_support_arm_sve",
               "cpu_support_x86_avx2", "cpu_support_x86_avx_vnni")


def cpu_features() -> dict[str, Any]:
    """The arm64 HWCAP flags this process sees (under qemu-user: those of its -cpu model), or the x86 flags
    that matter to ONNX Runtime / XNNPACK int8 from /proc/cpuinfo."""
    if platform.machine() in ("aarch64", "arm64"):
        try:
            raw = Path("/proc/self/auxv").read_bytes()
        except OSError as e:
            return {"error": str(e)}
        aux = dict(struct.iter_unpack("<QQ", raw[: len(raw) // 16 * 16]))
        hw, hw2 = aux.get(16, 0), aux.get(26, 0)  # AT_HWCAP, AT_HWCAP2
        flags = [n for b, n in HWCAP.items() if hw >> b & 1] + [n for b, n in HWCAP2.items() if hw2 >> b & 1]
        return {"hwcap": sorted(flags)}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError as e:
        return {"error": str(e)}
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return {"flags": [f for f in X86_FLAGS if f in line.split()]}


def dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def runtime_kernels() -> dict[str, Any]:
    """Per installed runtime: what it says about the kernels it can take here (only what its Python API
    tells); a runtime that fails to import is reported, never raised."""
    out: dict[str, Any] = {}
    if dist_version("onnxruntime"):
        try:
            import onnxruntime as ort

            out["onnxruntime"] = {"providers": ort.get_available_providers(), "device": ort.get_device(),
                                  "gemm": "MLAS, dispatched on the CPU features; the kernel taken is not reported"}
        except Exception as e:  # noqa: BLE001 - a report, never a failure
            out["onnxruntime"] = {"error": str(e)}
    if dist_version("ncnn"):
        try:
            import ncnn

            probes = {p.removeprefix("cpu_support_"): bool(getattr(ncnn, p)()) for p in NCNN_PROBES
                      if hasattr(ncnn, p)}
            opt = ncnn.Option()
            default = {k: bool(getattr(opt, k)) for k in ("use_fp16_storage", "use_fp16_arithmetic")
                       if hasattr(opt, k)}
            out["ncnn"] = {"cpu": probes, "default_option": default,
                           "note": "cctvkit sets fp16 storage/arithmetic per model (ModelSpec notes ncnn_fp16)"}
        except Exception as e:  # noqa: BLE001
            out["ncnn"] = {"error": str(e)}
    for dist in ("ai-edge-litert", "tflite-runtime"):
        if dist_version(dist):
            out["litert"] = {"runtime": dist, "delegate": "XNNPACK (the interpreter's default CPU delegate)"}
            break
    return out


def kernels_line(cpu: dict[str, Any], kernels: dict[str, Any]) -> str:
    """One line for the report: the CPU features that pick kernels and what each runtime says."""
    flags = cpu.get("hwcap") or cpu.get("flags") or []
    feats = ", ".join(f"{f} ({MEANING[f]})" if f in MEANING else f for f in flags) or cpu.get("error", "-")
    parts = [f"CPU {feats}"]
    for name, k in kernels.items():
        if "error" in k:
            parts.append(f"{name}: {k['error']}")
        elif name == "onnxruntime":
            parts.append(f"onnxruntime: {k['gemm']}")
        elif name == "ncnn":
            on = [p for p, v in k["cpu"].items() if v]
            parts.append(f"ncnn probes {' '.join(on) or 'none'}; fp16 per model")
        elif name == "litert":
            parts.append(f"litert: {k['delegate']}")
    return "; ".join(parts)
