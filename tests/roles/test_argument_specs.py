"""Every role documents its variables with the defaults it really uses, and installs through one path.

`ansible-doc --type role` shows an argument spec's `default:`, but Ansible takes the value from
defaults/main.yml: the two drift apart silently unless a test compares them. Read as plain YAML on
the control node (no Ansible run), so the check costs milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
MISSING = object()


def _specs(role: Path) -> dict[str, dict]:
    """Every option of every entry point: {variable: spec}."""
    doc = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
    options: dict[str, dict] = {}
    for entry in doc["argument_specs"].values():
        options.update(entry.get("options") or {})
    return options


def _defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def test_every_role_with_variables_has_argument_specs():
    with_defaults = {p.parent.parent.name for p in (ROOT / "roles").glob("*/defaults/main.yml")}
    assert with_defaults <= {r.name for r in ROLES}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_spec_defaults_equal_defaults_main(role):
    specs, defaults = _specs(role), _defaults(role)
    wrong = {
        name: (spec.get("default", MISSING), defaults.get(name, MISSING))
        for name, spec in specs.items()
        if not spec.get("required") and spec.get("default", MISSING) != defaults.get(name, MISSING)
    }
    assert not wrong, f"{role.name}: argument_specs default != defaults/main.yml (spec, defaults): {wrong}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_required_entries_have_no_default(role):
    specs, defaults = _specs(role), _defaults(role)
    both = [n for n, s in specs.items() if s.get("required") and (n in defaults or "default" in s)]
    assert not both, f"{role.name}: required entries must not have a default: {both}"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_every_default_is_documented(role):
    undocumented = sorted(set(_defaults(role)) - set(_specs(role)))
    assert not undocumented, (
        f"{role.name}: defaults/main.yml variables missing from argument_specs: {undocumented}"
    )


@pytest.mark.parametrize("role", ["gateway", "simulator"])
def test_app_roles_install_only_through_the_shared_role(role):
    """No copy of the install steps: the app roles hold no pip task and no dependency list."""
    tasks = "\n".join(p.read_text() for p in (ROOT / "roles" / role / "tasks").glob("*.yml"))
    assert "ansible.builtin.pip" not in tasks
    assert "name: python_app" in tasks
    assert f"{role}_python_packages" not in _defaults(ROOT / "roles" / role)
