"""Real test hosts for the Ansible role: sshd instances (Debian's openssh-server) on loopback ports, each
with its own host key and a throw-away client key, and a runner for ansible-playbook against them.

The hosts are this machine seen through ssh, so each one gets its own install, config, state and unit
folders (inventory variables) and its own HTTP port. systemd is not PID 1 here: the role's `direct`
service manager starts `edge run` from the installed venv with start-stop-daemon (the unit is still
installed and checked with systemd-analyze verify).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = ROOT / "ansible"
BIN = Path(sys.executable).parent
SSHD = Path("/usr/sbin/sshd")
RECAP = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", re.M)


def ansible_tool(name: str) -> Path:
    path = BIN / name
    if not path.is_file():
        pytest.skip(f"needs {name} (the dev extra: pip install -e '.[dev]')")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PlaybookResult:
    rc: int
    out: str
    recap: dict[str, dict[str, int]]  # host -> {ok, changed, failed, ...} from the PLAY RECAP

    def show(self) -> str:
        return "\n".join(f"{h}: {c}" for h, c in sorted(self.recap.items()))


def ansible_env(tmp: Path) -> dict[str, str]:
    """ansible's and ansible-lint's environment: our ansible.cfg, caches and temp folders under `tmp` (no
    writes to ~), no network (no schema or collection downloads), no host key prompts, no colour."""
    home = tmp / "ansible-home"
    return {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "tmp"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "ANSIBLE_LINT_SKIP_SCHEMA_UPDATE": "1",
        "ANSIBLE_LINT_NODEPS": "1",
        "NO_COLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=/dev/null"
                            " -o StrictHostKeyChecking=no -o LogLevel=ERROR",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }


def run_playbook(playbook: str, inventory: Path, tmp: Path, *args: str, timeout: float = 900) -> PlaybookResult:
    proc = subprocess.run(
        [str(ansible_tool("ansible-playbook")), "-i", str(inventory), f"playbooks/{playbook}", *args],
        cwd=ANSIBLE_DIR, env=ansible_env(tmp), capture_output=True, text=True, timeout=timeout)
    out = proc.stdout + proc.stderr
    return PlaybookResult(proc.returncode, out, parse_recap(out))


def run_molecule(command: str, inventory: Path, tmp: Path, timeout: float = 900) -> PlaybookResult:
    """`molecule COMMAND` of the role's default scenario against `inventory`; the recap is the last play's."""
    env = {**ansible_env(tmp), "CCTVKIT_MOLECULE_INVENTORY": str(inventory)}
    del env["ANSIBLE_CONFIG"]  # molecule writes its own, with the role's parent folder as roles_path
    proc = subprocess.run([str(ansible_tool("molecule")), command, "--scenario-name", "default"],
                          cwd=ANSIBLE_DIR / "roles" / "cctvkit_edge", env=env, capture_output=True, text=True,
                          timeout=timeout)
    out = proc.stdout + proc.stderr
    return PlaybookResult(proc.returncode, out, parse_recap(out))


def parse_recap(out: str) -> dict[str, dict[str, int]]:
    recap = {}
    for host, counts in RECAP.findall(out.rsplit("PLAY RECAP", 1)[-1]):
        fields = {k: int(v) for k, v in (kv.split("=") for kv in counts.split())}
        if "ok" in fields:  # not molecule's own "default: actions=..." summary line
            recap[host] = fields
    return recap


@dataclass
class SshHost:
    name: str
    port: int  # its sshd
    http_port: int  # its edge daemon's /metrics and /healthz
    root: Path  # its install/config/state/unit folders live under here

    def path(self, which: str) -> Path:
        return self.root / {"install": "opt/cctvkit", "config": "etc/cctvkit", "state": "var/lib/cctvkit",
                            "unit": "etc/systemd/system"}[which]

    def hostvars(self, key: Path) -> dict[str, object]:
        return {
            "ansible_host": "127.0.0.1", "ansible_port": self.port, "ansible_user": "root",
            "ansible_ssh_private_key_file": str(key), "ansible_become": False,
            "ansible_python_interpreter": "/usr/bin/python3",
            "cctvkit_edge_install_dir": str(self.path("install")),
            "cctvkit_edge_config_dir": str(self.path("config")),
            "cctvkit_edge_state_dir": str(self.path("state")),
            "cctvkit_edge_unit_dir": str(self.path("unit")),
            "cctvkit_edge_http_port": self.http_port,
            "cctvkit_edge_service_manager": "direct",
        }


def _start_sshd(folder: Path, port: int, authorized: Path) -> subprocess.Popen[bytes]:
    host_key = folder / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    cfg = folder / "sshd_config"
    cfg.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no", "Subsystem sftp internal-sftp",
        "LogLevel ERROR", "",
    ]))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(cfg)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"sshd on port {port} did not accept connections within 15 s")


@pytest.fixture(scope="module")
def test_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[SshHost], Path, Path]]:
    """Two sshd test hosts, pi-a and pi-b; yields (hosts, client key, temp folder). The edge daemons the
    role starts are stopped at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the test hosts are sshd instances logging in as root")
    if not SSHD.is_file() or shutil.which("ssh") is None:
        pytest.skip("needs /usr/sbin/sshd and ssh (Debian packages openssh-server, openssh-client)")
    tmp = tmp_path_factory.mktemp("fleet")
    key = tmp / "client_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    authorized = tmp / "authorized_keys"
    shutil.copy(key.with_suffix(".pub"), authorized)
    hosts, procs = [], []
    try:
        for name in ("pi-a", "pi-b"):
            folder = tmp / name
            (folder / "sshd").mkdir(parents=True)
            host = SshHost(name, free_port(), free_port(), folder / "root")
            procs.append(_start_sshd(folder / "sshd", host.port, authorized))
            hosts.append(host)
        yield hosts, key, tmp
    finally:
        for host in hosts:
            pid = host.path("state") / "cctvkit-edge.pid"
            if pid.exists():
                subprocess.run(["start-stop-daemon", "--stop", "--pidfile", str(pid), "--retry", "TERM/10/KILL/5"],
                               check=False)
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)


def write_inventory(path: Path, hosts: list[SshHost], key: Path, group_vars: dict[str, object],
                    host_vars: dict[str, dict[str, object]] | None = None) -> Path:
    """inventory.yml (JSON is YAML) with the hosts in group cctvkit_edge."""
    host_vars = host_vars or {}
    inventory = {"cctvkit_edge": {
        "vars": group_vars,
        "hosts": {h.name: {**h.hostvars(key), **host_vars.get(h.name, {})} for h in hosts},
    }}
    path.write_text(json.dumps(inventory, indent=2))
    return path
