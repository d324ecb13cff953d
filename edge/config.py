"""The daemon's configuration: `edge run --config edge.yaml`.

Every section rejects unknown keys; a mistake is reported on one line naming the YAML key and the fix.
Relative paths are taken relative to the directory of the config file (systemd starts services in /).
A string value may take a secret from the environment: `url: rtsp://admin:${CAM_PASSWORD}@cam/stream`
(edge/envsubst.py; `$${` is a literal `${`); the systemd unit reads them from /etc/cctvkit/edge.env.

    model:                       # a model of a run (its sha256 is checked against the manifest) ...
      manifest: runs/site1       #   run directory or its manifest.json
      name: detector-onnx-int8
      # file: person.onnx        # ... or a bare model file (.onnx/.tflite read their own metadata;
      # spec: person.yaml        #   other formats need a ModelSpec YAML), optionally pinned by sha256:
      # sha256: 3f2a...
      backend: onnxruntime       # default: the runtime for the model's format
      threads: 4                 # runtime threads of each worker
      workers: 1                 # model instances inferring in parallel, each on its own thread taking
                                 #   the newest frame; keep workers x threads <= CPU cores (more is logged
                                 #   as a warning). With a runtime that releases the GIL while it runs
                                 #   (ONNX Runtime does), 2 workers x 1 thread got more frames/s than
                                 #   1 x 2 threads on a 2-core CPU, each frame taking longer: measure
                                 #   yours with benchmarks/loop_vs_ultralytics.py --workers 2
      conf: 0.25                 # detectors: score threshold, NMS IoU
      iou: 0.45
      threshold: 0.5             # classifiers: person probability threshold
    source:                      # one of the edge.sources plug-ins, chosen by `type`
      type: v4l2
      device: /dev/video0
    capture:                     # reconnect backoff after a camera fault
      backoff_initial_s: 0.5
      backoff_max_s: 10.0
      lossless: false            # true: every frame of a file goes through the model (benchmarks)
    motion:                      # skip inference while nothing moves
      enabled: true
      threshold: 25              # grey-level change of a thumbnail pixel that counts as change
      min_area: 0.002            # fraction of the thumbnail that must change
      every: 1                   # compare every N-th frame
      max_skip_s: 5.0            # re-check at least this often (a person standing still)
      width: 64                  # thumbnail width in pixels
    records:
      jsonl: /var/lib/cctvkit/events.jsonl
      sqlite: /var/lib/cctvkit/events.db
      rotate_mb: 10              # start a new file at this size
      max_total_mb: 100          # delete the oldest files beyond this total
      keep: 10                   # and beyond this many rotated files
      detection_interval_s: 0.0  # at most one detection event per interval (0: every frame with a person)
      leave_after_s: 2.0         # no person for this long -> a "left" presence event (camera lost or
                                 #   daemon stopping: "left" at once, with reason camera_lost/shutdown)
      flush_every_s: 1.0         # SQLite commits at most this often (JSONL lines are written at once)
    http:
      enabled: true
      host: 127.0.0.1            # loopback only unless you mean to expose it: any other address (0.0.0.0,
                                 #   a LAN IP) needs expose: true and basic_auth, as Prometheus' exporters
      port: 9108                 # 0: any free port (logged and sent to systemd as STATUS)
      healthz_max_age_s: 10      # /healthz is 503 when the loop or the camera has been idle this long
      expose: false              # true: you mean host to be reachable from the network
      # basic_auth:              # required with expose; /metrics and /healthz then ask for it (401)
      #   user: prometheus
      #   password_hash: "$2b$12$..."   # bcrypt: `edge hash-password` prints one (quote it: YAML and $)
      # tls:                     # optional HTTPS (PEM files; a plain http:// request then fails)
      #   cert_file: /etc/cctvkit/tls/cert.pem
      #   key_file: /etc/cctvkit/tls/key.pem
    watchdog:
      enabled: true              # send WATCHDOG=1 when systemd asks for it (WatchdogSec=)
    system:                      # where machine health is read (tests point these at a fake tree)
      thermal_zone: /sys/class/thermal/thermal_zone0/temp
      cpufreq: /sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq
      vcgencmd: vcgencmd
      sample_interval_s: 1.0     # read them at most this often (vcgencmd forks a process)
    log_level: info
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from edge.config_errors import describe_validation_error, read_yaml_mapping
from edge.envsubst import expand_env
from edge.sources import SourceConfig, parse_source_config
from edge.strict import Strict


class ModelConfig(Strict):
    manifest: Path | None = None
    name: str | None = None
    file: Path | None = None
    spec: Path | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    backend: str | None = None
    threads: int = Field(default=2, ge=1, le=64)  # per worker
    workers: int = Field(default=1, ge=1, le=16)
    conf: float = Field(default=0.25, ge=0.0, lt=1.0)
    iou: float = Field(default=0.45, gt=0.0, le=1.0)
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _one_way_to_name_the_model(self) -> Self:
        by_run = self.manifest is not None or self.name is not None
        if by_run and self.file is not None:
            raise ValueError("give either manifest + name or file, not both")
        if by_run and (self.manifest is None or self.name is None):
            raise ValueError("manifest and name go together: the run directory and the model in it")
        if not by_run and self.file is None:
            raise ValueError("name the model: manifest + name (a run) or file (a bare model file)")
        if by_run and (self.spec is not None or self.sha256 is not None):
            raise ValueError("spec and sha256 are for a bare file; a run's manifest carries both")
        return self

    def oversubscription(self, cores: int | None = None) -> str | None:
        """A warning when workers x threads asks for more threads than there are cores, else None. Not an
        error: it works, only slower than it could (threads preempt each other mid-inference)."""
        cores = usable_cores() if cores is None else cores
        wanted = self.workers * self.threads
        if wanted <= cores:
            return None
        return (f"model.workers x model.threads = {self.workers} x {self.threads} = {wanted} threads on"
                f" {cores} CPU core(s): they will preempt each other -- lower model.threads"
                f" (e.g. {max(1, cores // self.workers)}) or model.workers")


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a container or a systemd CPUAffinity=
    can give fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class MotionConfig(Strict):
    enabled: bool = False
    threshold: int = Field(default=25, ge=1, le=255)
    min_area: float = Field(default=0.002, ge=0.0, le=1.0)
    every: int = Field(default=1, ge=1)
    max_skip_s: float = Field(default=5.0, ge=0.0)
    width: int = Field(default=64, ge=8, le=1024)


class CaptureConfig(Strict):
    backoff_initial_s: float = Field(default=0.5, gt=0.0)
    backoff_max_s: float = Field(default=10.0, gt=0.0)
    lossless: bool = False  # process every frame of a file (tests, benchmarks); never for a live camera

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be at least backoff_initial_s")
        return self


class RecordsConfig(Strict):
    jsonl: Path | None = None
    sqlite: Path | None = None
    rotate_mb: float = Field(default=10.0, gt=0.0)
    max_total_mb: float = Field(default=100.0, gt=0.0)
    keep: int = Field(default=10, ge=0)
    detection_interval_s: float = Field(default=0.0, ge=0.0)
    leave_after_s: float = Field(default=2.0, ge=0.0)
    flush_every_s: float = Field(default=1.0, gt=0.0)

    @model_validator(mode="after")
    def _cap_holds_a_file(self) -> Self:
        if self.max_total_mb < self.rotate_mb:
            raise ValueError("max_total_mb must be at least rotate_mb, or every rotated file is deleted at once")
        return self


BCRYPT_PATTERN = r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$"  # $2b$<cost>$<22 chars salt + 31 chars hash>


class BasicAuthConfig(Strict):
    user: str = Field(min_length=1)
    password_hash: str

    @field_validator("password_hash")
    @classmethod
    def _bcrypt(cls, v: str) -> str:
        if not re.fullmatch(BCRYPT_PATTERN, v):
            raise ValueError("not a bcrypt hash ($2b$...): run `edge hash-password` and paste what it prints,"
                             " in quotes")
        return v


class TlsConfig(Strict):
    cert_file: Path
    key_file: Path


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost, or "" (every address)
        return False


class HttpConfig(Strict):
    # expose and basic_auth come first: the checks of host and basic_auth below read them (pydantic
    # validates fields in order), and a field's own error names that field's YAML key.
    enabled: bool = True
    expose: bool = False
    basic_auth: BasicAuthConfig | None = Field(default=None, validate_default=True)
    tls: TlsConfig | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    healthz_max_age_s: float = Field(default=10.0, gt=0.0)

    @field_validator("basic_auth")
    @classmethod
    def _auth_when_exposed(cls, v: BasicAuthConfig | None, info: ValidationInfo) -> BasicAuthConfig | None:
        if v is None and info.data.get("expose"):
            raise ValueError("http.expose: true needs http.basic_auth: {user: ..., password_hash: ...}"
                             " (`edge hash-password` makes the hash)")
        return v

    @field_validator("host")
    @classmethod
    def _loopback_unless_exposed(cls, v: str, info: ValidationInfo) -> str:
        if not is_loopback(v) and not info.data.get("expose"):
            raise ValueError(f"http.host {v!r} is not loopback: /metrics would be open to the network with no"
                             " password -- set http.host: 127.0.0.1, or http.expose: true with http.basic_auth"
                             " (and http.tls)")
        return v


class WatchdogConfig(Strict):
    enabled: bool = True


class SystemConfig(Strict):
    thermal_zone: Path = Path("/sys/class/thermal/thermal_zone0/temp")
    cpufreq: Path | None = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    vcgencmd: str = "vcgencmd"
    sample_interval_s: float = Field(default=1.0, ge=0.0)


class DaemonConfig(Strict):
    model: ModelConfig
    source: SourceConfig
    capture: CaptureConfig = CaptureConfig()
    motion: MotionConfig = MotionConfig()
    records: RecordsConfig = RecordsConfig()
    http: HttpConfig = HttpConfig()
    watchdog: WatchdogConfig = WatchdogConfig()
    system: SystemConfig = SystemConfig()
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def resolved(self, base: Path) -> DaemonConfig:
        """A copy with relative paths made relative to `base` (the config file's directory)."""

        def fix(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else base / p

        model = self.model.model_copy(update={k: fix(getattr(self.model, k)) for k in ("manifest", "file", "spec")})
        records = self.records.model_copy(update={"jsonl": fix(self.records.jsonl), "sqlite": fix(self.records.sqlite)})
        # Source plug-ins are another module's models: rebase whichever of their fields are paths.
        src_paths = {k: fix(v) for k, v in self.source if isinstance(v, Path)}
        source = self.source.model_copy(update=src_paths)
        http = self.http
        if http.tls is not None:
            tls = http.tls.model_copy(update={"cert_file": fix(http.tls.cert_file), "key_file": fix(http.tls.key_file)})
            http = http.model_copy(update={"tls": tls})
        return self.model_copy(update={"model": model, "records": records, "source": source, "http": http})


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None, env_file: str | Path | None = None,
                base_dir: str | Path | None = None) -> DaemonConfig:
    """Read edge.yaml, expand ${NAME} from `env` (default: the process environment; edge/envsubst.py) and
    validate it; CctvkitError naming the YAML key on any mistake. Relative paths resolve against
    `base_dir`, default the file's own directory; `edge check-config` passes the directory the file will
    be installed in, as it validates a temp copy (Ansible's `validate:`). `env_file` only names, in the
    error for a missing variable, the file the variables were read from."""
    path = Path(path)
    # Expanded on the parsed values, not the file's text: a secret holding ':' or '#' cannot change
    # the YAML's structure, and an error names the key the reference sits under.
    doc = expand_env(read_yaml_mapping(path), path, env, env_file=env_file)
    if isinstance(doc.get("source"), dict):
        # The sources' own parser names a bad key of the chosen plug-in ("unknown key 'pathh' for a file
        # source -- use one of: path, loop, ...") where pydantic's union error would only say "source".
        parse_source_config(doc["source"], origin=f"{path}: source")
    try:
        cfg = DaemonConfig.model_validate(doc)
    except ValidationError as e:
        raise describe_validation_error(e, DaemonConfig, path) from None
    return cfg.resolved(Path(base_dir).resolve() if base_dir is not None else path.resolve().parent)
