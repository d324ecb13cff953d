"""ansible-lint (production profile, offline) over the whole of ansible/, and --syntax-check of every
playbook with the example inventory."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml
from fleet_hosts import ANSIBLE_DIR, ansible_env, ansible_tool

PLAYBOOKS = sorted((ANSIBLE_DIR / "playbooks").glob("*.yml"))


def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    lint = subprocess.run([str(ansible_tool("ansible-lint")), "--offline", "--nocolor", "--profile", "production"],
                          cwd=ANSIBLE_DIR, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # The role and every playbook were read: a lint that finds no files passes too.
    processed = re.search(r"in (\d+) files processed", lint.stdout + lint.stderr)
    assert processed and int(processed.group(1)) >= 25, lint.stdout + lint.stderr


def test_every_playbook_passes_syntax_check(tmp_path: Path) -> None:
    assert {p.name for p in PLAYBOOKS} >= {"site.yml", "deploy-model.yml", "bench.yml", "monitoring.yml"}
    syntax = subprocess.run(
        [str(ansible_tool("ansible-playbook")), "--syntax-check", "-i", "inventory.example.yml",
         *(str(p) for p in PLAYBOOKS)],
        cwd=ANSIBLE_DIR, env=ansible_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr


def test_defaults_argument_specs_and_readme_agree() -> None:
    role = ANSIBLE_DIR / "roles" / "cctvkit_edge"
    defaults = set(yaml.safe_load((role / "defaults" / "main.yml").read_text()))
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert set(specs) == {"main", "deploy", "bench", "verify"}
    for entry in specs.values():
        assert set(entry["options"]) == defaults  # every default is type-checked, and nothing else
    readme = (ANSIBLE_DIR / "README.md").read_text()
    documented = set(re.findall(r"^\| `(cctvkit_edge_\w+)` \|", readme, re.M))
    assert documented == defaults
