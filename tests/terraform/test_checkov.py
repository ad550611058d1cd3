"""checkov over terraform/: no failed check, every suppression states its reason, and the gate
does fail when a protection is removed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(900)

SKIP = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


def _scan(checkov_bin: Path, directory: Path) -> dict:
    proc = subprocess.run(
        [str(checkov_bin), "-d", str(directory), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1 = findings; anything else is a crash
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def _failed_ids(report: dict) -> set[str]:
    return {c["check_id"] for c in report["results"]["failed_checks"]}


def test_no_failed_checks(checkov_bin: Path, terraform_dir: Path) -> None:
    report = _scan(checkov_bin, terraform_dir)
    failed = [
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == [], "fix these or suppress with #checkov:skip=ID:reason\n" + "\n".join(failed)
    assert report["summary"]["passed"] >= 60


def test_every_suppression_states_a_reason(terraform_dir: Path) -> None:
    skips = []
    for tf in sorted(terraform_dir.rglob("*.tf")):
        for lineno, line in enumerate(tf.read_text(encoding="utf-8").splitlines(), start=1):
            if m := SKIP.search(line):
                skips.append(
                    (f"{tf.relative_to(terraform_dir)}:{lineno}", m.group(1), (m.group(2) or "").strip())
                )
    assert skips, "expected the documented suppressions"
    unexplained = [f"{where} {check}" for where, check, reason in skips if len(reason) < 20]
    assert unexplained == [], "suppressions need a reason: #checkov:skip=ID:why"


def test_gate_fails_when_protections_are_removed(
    checkov_bin: Path, terraform_dir: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(terraform_dir, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    fleet = copy / "modules" / "fleet" / "main.tf"
    text = fleet.read_text(encoding="utf-8")
    assert 'http_tokens                 = "required"' in text and "encrypted             = true" in text
    text = text.replace(
        'http_tokens                 = "required"', 'http_tokens                 = "optional"'
    )
    text = text.replace("encrypted             = true", "encrypted             = false")
    fleet.write_text(text, encoding="utf-8")

    failed = _failed_ids(_scan(checkov_bin, copy))
    assert {"CKV_AWS_79", "CKV_AWS_8"} <= failed, failed
