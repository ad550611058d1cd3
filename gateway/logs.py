"""Structured one-line logs on stdout: ``ts=... level=INFO proc=worker-0 event=listening key=value ...``.

One line per event, ``key=value`` pairs (values with spaces or quotes are quoted), so journald, grep and a
launcher reading ``event=listening`` all work. ``log_event`` is the only entry point.
"""

from __future__ import annotations

import logging
import sys
import time

_LOG = logging.getLogger("gateway")
_PROC = {"name": "gateway"}


def _fmt(value: object) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class _KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        fields = getattr(record, "fields", {})
        parts = [
            f"ts={ts}",
            f"level={record.levelname}",
            f"proc={_PROC['name']}",
            f"event={record.getMessage()}",
        ]
        parts.extend(f"{k}={_fmt(v)}" for k, v in fields.items())
        if record.exc_info:
            parts.append("exc=" + _fmt(self.formatException(record.exc_info)))
        return " ".join(parts)


def setup(level: str, proc: str) -> None:
    _PROC["name"] = proc
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)  # libraries (aiokafka) only warn and worse
    _LOG.setLevel(level)


def log_event(event: str, level: int = logging.INFO, exc_info: bool = False, **fields: object) -> None:
    if _LOG.isEnabledFor(level):
        _LOG.log(level, event, extra={"fields": fields}, exc_info=exc_info)
