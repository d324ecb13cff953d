"""`edge check-config edge.yaml [--env-file FILE] [--base-dir DIR]`: is this config one `edge run` will start
with? Run on the device before the file is put in place (Ansible's template `validate:`), so a typo fails the
deploy instead of the service.

It goes the daemon's own way as far as that needs no camera and no runtime: load_config (the same parsing,
${VAR} expansion and validation as `edge run`), then the model file found and its sha256 checked
(daemon_model.verified_model, the check the daemon makes before it loads the model), then the records'
folders. It opens no camera and loads no model runtime: a camera may be busy with the running daemon, and a
runtime session costs seconds and memory on a Pi. A bare model file (`model.file`) is therefore checked for
existence and its model.sha256 pin only; its ModelSpec is read from the file by the daemon.

Ansible validates a temp copy of the file (`edge check-config %s`), in a temp folder: relative paths in the
config would resolve there. --base-dir names the folder the file will be installed in, and relative paths
resolve against it as they will for `edge run`.

The variables: the process environment plus --env-file, read as systemd's EnvironmentFile= reads it (the
file wins, as it does for the service). Their values never reach the output: an error that would quote
one (a path built from ${DATA_DIR}, say) shows the ${NAME} instead, on top of the URL masking every
cctvkit error gets (edge/redact.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from edge.config import DaemonConfig, load_config
from edge.daemon_model import verified_model
from edge.errors import CctvkitError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Values shorter than this are not scrubbed from messages: replacing every "1" or "on" would garble the
# line, and a secret that short is no secret.
MIN_SCRUBBED = 4


def _unquote(value: str, path: Path, lineno: int) -> str:
    """A value as systemd reads it: 'single quotes' literal; "double quotes" with \\" \\\\ \\$ \\` escapes;
    unquoted, trailing blanks dropped."""
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r'\\(["\\$`])', r"\1", value[1:-1])
    if value[:1] in ("'", '"'):
        # The line itself is never quoted back: it holds the value, a secret most likely.
        raise CctvkitError(f"line {lineno}: unclosed quote", path,
                           "close the quote on the same line (multi-line values are not read here)")
    return value.rstrip()


def read_env_file(path: str | Path) -> dict[str, str]:
    """KEY=VALUE lines of a systemd EnvironmentFile: blank lines and lines starting with # or ; skipped,
    blanks around the key and before the value dropped, one pair of quotes around the value removed.
    A malformed line is a CctvkitError naming its number, never its text."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CctvkitError("env file not found", path, "pass an existing file of KEY=VALUE lines") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CctvkitError(f"cannot read the env file ({getattr(e, 'strerror', None) or e})", path,
                           "make it readable by this user (root-only files: run with sudo)") from None
    env: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        key, eq, value = stripped.partition("=")
        key = key.strip()
        if not eq or not _KEY.fullmatch(key):
            raise CctvkitError(f"line {lineno} is not KEY=VALUE (KEY: letters, digits, _)", path,
                               "fix that line or comment it out with #")
        env[key] = _unquote(value.lstrip(), path, lineno)
    return env


def _check_records_folder(key: str, file: Path) -> None:
    """The record file's folder exists or can be created: its nearest existing ancestor is a writable
    folder. Nothing is created here: a validation leaves no trace."""
    if file.is_dir():
        raise CctvkitError(f"{key} is a folder, not a file", file, f"point {key} at a file inside it")
    folder = file.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise CctvkitError(f"{key}: a file stands where a folder is needed", folder,
                           "move it, or point the records elsewhere")
    # The folder itself must be writable, not only the file: rotation renames files in it.
    writable = os.access(folder, os.W_OK | os.X_OK) and (not file.exists() or os.access(file, os.W_OK))
    if not writable:
        raise CctvkitError(f"{key}: {file} cannot be written by this user", folder,
                           "make the folder writable (systemd: StateDirectory=) or point the records elsewhere")


def check(config: Path, env: Mapping[str, str], env_file: Path | None,
          base_dir: Path | None) -> tuple[DaemonConfig, str]:
    """The validated config and its `ok: ...` line; CctvkitError on the first problem."""
    cfg = load_config(config, env=env, env_file=env_file, base_dir=base_dir)
    ref = verified_model(cfg.model)  # the manifest names it, the file is there, its sha256 matches
    if cfg.model.spec is not None and not cfg.model.spec.is_file():
        raise CctvkitError("model spec not found", cfg.model.spec, "check model.spec")
    for key in ("jsonl", "sqlite"):
        file = getattr(cfg.records, key)
        if file is not None:
            _check_records_folder(f"records.{key}", file)
    return cfg, f"ok: {config}: model {ref.name} ({ref.sha256[:12]}), source {cfg.source.type}"


def scrub(text: str, secrets: Mapping[str, str]) -> str:
    """`text` with each value of `secrets` (name -> value) replaced by ${name}, longest first (a value
    that holds another is replaced whole)."""
    for name, value in sorted(secrets.items(), key=lambda kv: -len(kv[1])):
        if len(value) >= MIN_SCRUBBED:
            text = text.replace(value, f"${{{name}}}")
    return text


def check_config(config: str | Path, env_file: str | Path | None = None,
                 base_dir: str | Path | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The `ok: ...` line for a config `edge run` would start with; CctvkitError (no variable's value in
    it) otherwise. `environ`: the process environment unless given."""
    config = Path(config)
    environ = os.environ if environ is None else environ
    from_file = read_env_file(env_file) if env_file is not None else {}
    env = {**environ, **from_file}
    try:
        referenced = set(_REFERENCE.findall(config.read_text(errors="replace")))
    except OSError:
        referenced = set()  # load_config says why the file cannot be read
    # The env file is all secrets as far as we know; of the process environment (PATH, HOME...) only what
    # the config uses can have reached a message.
    secrets = {**{k: v for k, v in environ.items() if k in referenced}, **from_file}
    try:
        # The ok line too: model.name may itself come from a ${VAR}.
        return scrub(check(config, env, Path(env_file) if env_file is not None else None,
                           Path(base_dir) if base_dir is not None else None)[1], secrets)
    except CctvkitError as e:
        text = str(e)
        clean = scrub(text, secrets)
        if clean == text:
            raise
        raise CctvkitError(clean) from None


__all__ = ["check", "check_config", "read_env_file", "scrub"]
