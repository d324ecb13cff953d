"""`edge`: the device-side tools. `edge run --config edge.yaml` is the inference daemon (systemd
Type=notify); `edge detect` runs a model on images or a video file; `edge backends` lists the runtimes
and why any is unavailable; `edge hash-password` prints the bcrypt hash for http.basic_auth; `edge check-config`
validates an edge.yaml before it is installed; `edge bundle` copies one model of a run out for deployment."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from edge.backends import available_backends
from edge.detector import Classifier, Detector, load_from_manifest
from edge.errors import CctvkitError, run_command
from edge.formats.yolo import IMAGE_SUFFIXES, list_images
from edge.manifest import Manifest


class Unreadable(str):
    """What iter_source yields for an image of a folder that cannot be read: "path: why", to warn and skip."""


def iter_source(source: Path) -> Iterator[tuple[str, np.ndarray | Unreadable]]:
    """(name, BGR frame) from an image, a folder of images or a video file. In a folder, an image that cannot be
    read gives (its path, Unreadable(why)) instead of stopping the whole folder, as the daemon's image source
    skips it; a single image given on its own that cannot be read is an error."""
    if source.is_dir():
        for p in list_images(source):
            image = _decode(p)
            yield (p.name, image) if isinstance(image, np.ndarray) else (str(p), Unreadable(f"{p}: {image}"))
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        yield source.name, _read_image(source)
    else:
        cap = cv2.VideoCapture(str(source))
        if not cap.isOpened():
            raise CctvkitError("cannot open as image, folder or video", source, "pass a readable file")
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"{source.name}#{i}", frame
            i += 1
        cap.release()


def _decode(path: Path) -> np.ndarray | str:
    """The image, or why it cannot be read. imdecode on the bytes, as edge/sources/images.py does: no OpenCV
    warning lines on a bad file, only ours."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        return f"cannot read image ({e.strerror or e})"
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return "cannot decode image" if img is None else img


def _read_image(path: Path) -> np.ndarray:
    image = _decode(path)
    if not isinstance(image, np.ndarray):
        raise CctvkitError(image, path, "pass a JPEG/PNG/BMP file")
    return image


def cmd_detect(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.manifest)
    model = load_from_manifest(manifest, args.model, backend=args.backend, threads=args.threads)
    source = Path(args.source)
    if not source.exists():
        raise CctvkitError("source not found", source, "pass an image, a folder of images or a video file")
    n = skipped = 0
    t0 = time.perf_counter()
    for name, frame in iter_source(source):
        if isinstance(frame, Unreadable):
            print(f"warning: {frame}, skipped", file=sys.stderr)
            skipped += 1
            continue
        record: dict[str, object] = {"frame": name}
        if isinstance(model, Detector):
            d = model.detect(frame)
            # float64 before rounding: a rounded float32 prints as 25.700000762939453 in JSON
            record |= {"count": len(d), "boxes": np.round(d.xyxy.astype(np.float64), 1).tolist(),
                       "scores": np.round(d.scores.astype(np.float64), 3).tolist()}
        elif isinstance(model, Classifier):
            c = model.classify(frame)
            record |= {"person": c.is_person, "person_prob": round(c.person_prob, 4)}
        record["ms"] = round(model.timing.total_ms, 2)
        print(json.dumps(record))
        n += 1
    if n == 0 and skipped:
        raise CctvkitError(f"none of the {skipped} images could be read", source,
                           "pass a folder with readable JPEG/PNG/BMP images")
    if n == 0:
        raise CctvkitError("no frames in source", source, "pass a non-empty source")
    fps = n / (time.perf_counter() - t0)
    print(f"{n} frames{f', {skipped} unreadable images skipped' if skipped else ''}, {fps:.1f} FPS "
          "(decode + inference + output)", file=sys.stderr)
    return 0


def cmd_backends(args: argparse.Namespace) -> int:
    for name, why in available_backends().items():
        print(f"{name:12s} {'ok' if why is None else 'unavailable: ' + why}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    # Imported here: `edge detect`/`edge backends` need neither prometheus_client nor psutil.
    from edge.config import load_config
    from edge.daemon import run_daemon, setup_logging

    cfg = load_config(args.config)
    setup_logging(args.log_level or cfg.log_level)
    return run_daemon(cfg)


def cmd_check_config(args: argparse.Namespace) -> int:
    from edge.check_config import check_config  # the daemon's config code: pydantic, not needed by detect

    print(check_config(args.config, env_file=args.env_file, base_dir=args.base_dir))
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from edge.bundle import make_bundle, report

    summary, written = make_bundle(args.run, args.model, args.out)
    report(summary, written)
    print(json.dumps(summary))
    return 0


def read_password(stream: TextIO, prompt: Callable[[str], str]) -> str:
    """The password from a pipe (its first line, newline removed) or, on a terminal, typed twice unseen."""
    if not stream.isatty():
        password = stream.readline().rstrip("\r\n")
    else:
        password = prompt("password: ")
        if prompt("again: ") != password:
            raise CctvkitError("the two passwords differ", fix="run edge hash-password again")
    if not password:
        raise CctvkitError("empty password", fix="type one, or pipe it in: printf %s \"$PW\" | edge hash-password")
    return password


def cmd_hash_password(args: argparse.Namespace) -> int:
    from edge.httpauth import hash_password  # bcrypt only for this command

    print(hash_password(read_password(sys.stdin, getpass.getpass), rounds=args.rounds))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    det = sub.add_parser("detect", help="run one model of a run on an image, a folder or a video; JSON lines out")
    det.add_argument("source")
    det.add_argument("--manifest", required=True, help="runs/<name>/manifest.json (or the run directory)")
    det.add_argument("--model", required=True, help="model name in the manifest, e.g. detector-onnx-int8")
    det.add_argument("--backend", help="runtime (default: the one for the model's format)")
    det.add_argument("--threads", type=int, default=2)
    det.set_defaults(func=cmd_detect)
    run = sub.add_parser("run", help="the inference daemon: camera -> model -> records, /metrics, systemd notify")
    run.add_argument("--config", required=True, help="edge.yaml (see edge/config.py for every key)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                     help="override log_level of the config")
    run.set_defaults(func=cmd_run)
    cc = sub.add_parser("check-config", help="validate an edge.yaml as `edge run` would (model file and sha256,"
                                             " records folders), without opening the camera or the model")
    cc.add_argument("config", help="the edge.yaml to check (may be a temp copy: see --base-dir)")
    cc.add_argument("--env-file", help="KEY=VALUE lines for ${VARS}, as systemd's EnvironmentFile= reads them"
                                       " (default: the process environment only)")
    cc.add_argument("--base-dir", help="resolve relative paths as if the config were in this folder (where it"
                                       " will be installed; Ansible's validate: checks a temp copy)")
    cc.set_defaults(func=cmd_check_config)
    bu = sub.add_parser("bundle", help="copy one model of a run into OUT/<model>-<sha12>/ with its own"
                                       " manifest.json; prints a JSON summary")
    bu.add_argument("run", help="the run directory (or its manifest.json)")
    bu.add_argument("--model", required=True, help="model name in the run's manifest")
    bu.add_argument("--out", required=True, help="folder to create the bundle folder in")
    bu.set_defaults(func=cmd_bundle)
    sub.add_parser("backends", help="list the runtimes and why any is unavailable").set_defaults(func=cmd_backends)
    hp = sub.add_parser("hash-password", help="read a password (stdin or a prompt), print its bcrypt hash for"
                                              " http.basic_auth.password_hash")
    hp.add_argument("--rounds", type=int, default=12, choices=range(4, 17), metavar="4..16",
                    help="bcrypt cost (default 12: ~0.25 s a check on a Pi 5, paid once per scraper: cached)")
    hp.set_defaults(func=cmd_hash_password)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
