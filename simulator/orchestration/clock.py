"""The host clock's offset from true time, as chrony sees it (None when chrony is not running)."""

from __future__ import annotations

import shutil
import subprocess


def chrony_offset_ms() -> tuple[float | None, str]:
    """(offset in ms, source): the "System time" field of `chronyc -c tracking`, as chrony signs it."""
    exe = shutil.which("chronyc")
    if exe is None:
        return None, "no chronyc"
    try:
        out = subprocess.run([exe, "-c", "tracking"], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"chronyc failed: {exc}"
    fields = out.stdout.strip().split(",")
    if out.returncode != 0 or len(fields) < 5:
        return None, f"chronyc: {out.stderr.strip() or 'no tracking data'}"
    try:
        # field 5 ("System time") is how far the system clock is from NTP time, in seconds
        return round(float(fields[4]) * 1000, 3), "chrony"
    except ValueError:
        return None, "chronyc: unparsable tracking line"
