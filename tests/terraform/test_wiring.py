"""Offline wiring check of every module directory under terraform/.

The AWS provider is not obtainable on these machines (docs/terraform.md), so `tofu validate` cannot
run on the root and the AWS modules. This test checks what validate would check without schemas:
every module call passes only declared variables and all required ones, every `var.`, `local.`,
`module.X.Y` reference resolves, and `resource.name` / `data.type.name` references exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

VAR = re.compile(r"\bvar\.([A-Za-z_][\w-]*)")
LOCAL = re.compile(r"\blocal\.([A-Za-z_][\w-]*)")
MODULE = re.compile(r"\bmodule\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)")
RESOURCE = re.compile(r"(?<![\w.])(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)\b")
DATA = re.compile(r"\bdata\.(aws_[a-z0-9_]+)\.([A-Za-z_][\w-]*)")


def _dump(checkov_bin: Path, terraform_dir: Path) -> dict:
    python = checkov_bin.parent / "python"
    proc = subprocess.run(
        [str(python), str(HERE / "hcl_dump.py"), str(terraform_dir)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def modules(checkov_bin: Path, terraform_dir: Path) -> dict:
    return _dump(checkov_bin, terraform_dir)


def _code(directory: Path) -> str:
    """The .tf text of one directory without comment lines (checkov skips mention resource types)."""
    lines = []
    for tf in sorted(directory.glob("*.tf")):
        for line in tf.read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith(("#", "//")):
                lines.append(line)
    return "\n".join(lines)


def _target(terraform_dir: Path, where: str, source: str) -> str:
    return str((terraform_dir / where / source).resolve().relative_to(terraform_dir.resolve()))


def call_problems(modules: dict, terraform_dir: Path) -> list[str]:
    problems = []
    for where, info in modules.items():
        for call, spec in info["modules"].items():
            target = _target(terraform_dir, where, spec["source"])
            if target not in modules:
                problems.append(f"{where}: module {call} source {spec['source']} has no .tf files")
                continue
            declared = modules[target]["variables"]
            unknown = sorted(set(spec["args"]) - set(declared))
            missing = sorted(
                n for n, has_default in declared.items() if not has_default and n not in spec["args"]
            )
            if unknown:
                problems.append(f"{where}: module {call} passes undeclared {unknown}")
            if missing:
                problems.append(f"{where}: module {call} lacks required {missing}")
    return problems


def reference_problems(modules: dict, terraform_dir: Path) -> list[str]:
    problems = []
    for where, info in modules.items():
        code = _code(terraform_dir / where)
        for name in sorted(set(VAR.findall(code)) - set(info["variables"])):
            problems.append(f"{where}: var.{name} is not declared")
        for name in sorted(set(LOCAL.findall(code)) - set(info["locals"])):
            problems.append(f"{where}: local.{name} is not defined")
        for call, output in sorted(set(MODULE.findall(code))):
            if call not in info["modules"]:
                problems.append(f"{where}: module.{call} is not called here")
                continue
            target = _target(terraform_dir, where, info["modules"][call]["source"])
            if output not in modules[target]["outputs"]:
                problems.append(f"{where}: module.{call}.{output} is not an output of {target}")
        data = {tuple(d.split(".")) for d in info["data"]}
        for ref in sorted(set(DATA.findall(code)) - data):
            problems.append(f"{where}: data.{ref[0]}.{ref[1]} is not declared")
        resources = {tuple(r.split(".")) for r in info["resources"]}
        for ref in sorted(set(RESOURCE.findall(code)) - resources):
            problems.append(f"{where}: {ref[0]}.{ref[1]} is not declared")
    return problems


def test_every_module_directory_was_parsed(modules: dict) -> None:
    expected = {".", *(f"modules/{m}" for m in ("network", "security", "security_rules", "storage"))}
    expected |= {f"modules/{m}" for m in ("policies", "iam", "fleet", "fleet_layout", "inventory")}
    assert expected <= set(modules), sorted(modules)
    assert len(modules["."]["modules"]) == 6
    assert "aws_instance.this" in modules["modules/fleet"]["resources"]


def test_module_calls_match_variables(modules: dict, terraform_dir: Path) -> None:
    assert call_problems(modules, terraform_dir) == []


def test_references_resolve(modules: dict, terraform_dir: Path) -> None:
    assert reference_problems(modules, terraform_dir) == []


def test_wiring_check_catches_mistakes(checkov_bin: Path, terraform_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(terraform_dir, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    main = copy / "main.tf"
    text = main.read_text(encoding="utf-8")
    text = text.replace("  admin_cidrs  = var.admin_cidrs\n", "  admin_cidr   = var.admin_cidrs\n", 1)
    text = text.replace("module.fleet.hosts.brokers", "module.fleet.host.brokers", 1)
    main.write_text(text, encoding="utf-8")
    outputs = copy / "modules" / "storage" / "outputs.tf"
    outputs.write_text(
        outputs.read_text(encoding="utf-8").replace("aws_s3_bucket.data.id", "aws_s3_bucket.dat.id")
    )

    mutated = _dump(checkov_bin, copy)
    calls = call_problems(mutated, copy)
    refs = reference_problems(mutated, copy)
    assert ".: module security passes undeclared ['admin_cidr']" in calls
    assert ".: module security lacks required ['admin_cidrs']" in calls
    assert ".: module.fleet.host is not an output of modules/fleet" in refs
    assert "modules/storage: aws_s3_bucket.dat is not declared" in refs
