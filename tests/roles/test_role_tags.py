"""Every role's tasks carry a stage tag (install, configure, run) or `always`, so `--tags` selects a stage.

Two views of the same promise. Read as plain YAML (no Ansible run): every task reachable from a role's
tasks/main.yml, through import_tasks, include_tasks and blocks, ends up with a stage tag or `always`,
and each role has the stages it should (kernel_tuning installs and runs nothing: configure only). A
dynamic include_tasks passes on only its `apply:` tags, so its own tags must let it be read whenever
one of its tasks is selected (`always`, or every stage its tasks carry). Then ansible-playbook itself:
`ansible/site.yml --list-tasks --tags <stage>` on the lab inventory lists each role's tasks of that
stage and none of another stage's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
STAGES = {"install", "configure", "run"}
EXPECTED_STAGES = {
    "automq": STAGES,
    "common": STAGES,
    "firmware": STAGES,
    "gateway": STAGES,
    "kernel_tuning": {"configure"},
    "monitoring": STAGES,
    "simulator": STAGES,
}
INCLUDES = ("ansible.builtin.import_tasks", "import_tasks", "ansible.builtin.include_tasks", "include_tasks")


def _tags(task: dict) -> set[str]:
    tags = task.get("tags") or []
    return {tags} if isinstance(tags, str) else set(tags)


def _leaf_tasks(tasks_dir: Path, file: str, inherited: set[str]) -> list[tuple[str, str, set[str]]]:
    """(file, task name, effective tags) of every task a file runs, following imports, includes, blocks."""
    found: list[tuple[str, str, set[str]]] = []

    def walk(tasks: list[dict], inherited: set[str]) -> None:
        for task in tasks or []:
            own = inherited | _tags(task)
            if "block" in task:
                for section in ("block", "rescue", "always"):
                    walk(task.get(section) or [], own)
                continue
            action = next((key for key in INCLUDES if key in task), None)
            if action is None:
                found.append((file, task.get("name", "?"), own))
                continue
            spec = task[action]
            target = spec if isinstance(spec, str) else spec["file"]
            if action.endswith("import_tasks"):
                found.extend(_leaf_tasks(tasks_dir, target, own))
                continue
            applied = inherited | _tags((spec.get("apply") or {}) if isinstance(spec, dict) else {})
            inner = _leaf_tasks(tasks_dir, target, applied)
            inner_stages = set().union(*(tags & STAGES for _, _, tags in inner))
            assert "always" in own or inner_stages <= own, (
                f"{file}: include_tasks '{task.get('name')}' is tagged {sorted(own)}, so --tags "
                f"{sorted(inner_stages - own)} would never read {target}: tag it `always` or with its stages"
            )
            found.extend(inner)

    walk(yaml.safe_load((tasks_dir / file).read_text()), inherited)
    return found


@pytest.mark.parametrize("role", sorted(EXPECTED_STAGES))
def test_every_task_has_a_stage_tag(role):
    tasks = _leaf_tasks(ROOT / "roles" / role / "tasks", "main.yml", set())
    untagged = [f"{file}: {name}" for file, name, tags in tasks if not tags & (STAGES | {"always"})]
    assert not untagged, f"{role}: tasks without install/configure/run/always: {untagged}"
    several = [f"{file}: {name} {sorted(tags)}" for file, name, tags in tasks if len(tags & STAGES) > 1]
    assert not several, f"{role}: tasks in more than one stage: {several}"
    stages = set().union(*(tags & STAGES for _, _, tags in tasks))
    assert stages == EXPECTED_STAGES[role], f"{role}: stages {sorted(stages)}"


def _list_tasks(stage: str) -> str:
    proc = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(ROOT / "ansible/inventories/lab/hosts.yml"),
            str(ROOT / "ansible/site.yml"),
            "--list-tasks",
            "--tags",
            stage,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible/ansible.cfg")},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


# Tasks ansible-playbook lists statically for the three roles tagged last (monitoring's component
# files are dynamic includes: their tasks are covered by test_every_task_has_a_stage_tag).
LISTED = {
    "install": ["common : Install the base packages", "monitoring : Update the apt cache"],
    "configure": [
        "common : Set the time zone",
        "common : Write the time sources",
        "common : Create or remove admin users",
        "kernel_tuning : Apply the settings live (udp_mem converted to pages); record what this host cannot take",
        "kernel_tuning : Persist the sysctl settings in {{ kernel_tuning_sysctl_file }}",
    ],
    "run": ["common : Enable and start chrony"],
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_site_lists_each_stage_alone(stage):
    out = _list_tasks(stage)
    for wanted in LISTED[stage]:
        assert f"{wanted}\tTAGS:" in out, f"--tags {stage} does not list {wanted!r}:\n{out}"
    for other in STAGES - {stage}:
        for unwanted in LISTED[other]:
            assert unwanted not in out, f"--tags {stage} lists {other} task {unwanted!r}"
    listed_tags = [
        line.rsplit("TAGS: ", 1)[1] for line in out.splitlines() if " : " in line and "TAGS: [" in line
    ]
    assert all(stage in tags or "always" in tags for tags in listed_tags), out
