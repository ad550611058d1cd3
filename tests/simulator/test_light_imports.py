"""Agent hosts install only what the agent needs: the agent command must not import the auditor's or
the report's libraries (hdrhistogram, matplotlib, aiokafka), which the simulator role leaves out."""

from __future__ import annotations

import subprocess
import sys

BLOCK = "import sys\nfor m in ('hdrh', 'matplotlib', 'aiokafka'):\n    sys.modules[m] = None\n"


def test_agent_command_needs_no_audit_or_plot_libraries() -> None:
    code = BLOCK + "from simulator.__main__ import main\nsys.exit(main(['agent', '--help']))\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--listen" in result.stdout
