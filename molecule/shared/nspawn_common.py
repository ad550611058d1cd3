"""What every nspawn test-host module shares: the error type, progress logging, running a command.

One job: give the other modules (state, rootfs, network, machine, and the nspawn_hosts.py CLI) one
way to fail and one way to shell out, so a failed command anywhere ends as a HostError whose message
the CLI prints and exits 1 with, and progress always goes to stderr (stdout carries only the JSON).
Standard library only: it runs with whatever python3 starts Molecule.
"""

from __future__ import annotations

import subprocess
import sys


class HostError(RuntimeError):
    """A test host could not be built, booted or removed; the message says what to fix."""


def log(msg: str) -> None:
    print(f"[nspawn-hosts] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if check and proc.returncode != 0:
        raise HostError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc
