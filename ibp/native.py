"""The compiled extension ``ibp_native`` (gateway/native/, Rust + PyO3, built by ``make setup`` when cargo is
installed): the per-datagram IBP/1 work of both ends, the gateway's (parse, verify, record values, answers,
``recvmmsg``) and the simulated devices' (DATA datagrams, answer parsing, ``sendmmsg``).

One loader for both, so a stale build or ``IBP_NATIVE=0`` means the same thing everywhere: each side then
runs its pure-Python reference (gateway/fastpath.py; the simulator's datagram.py and ibp/protocol.py),
slower, with the same bytes and decisions.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

API = 8  # must equal ibp_native.API (gateway/native/src/lib.rs): a stale build is not used
ENV = "IBP_NATIVE"


def load() -> tuple[Any | None, str]:
    """``(module, why)``: the extension when it is built, current and not switched off, else ``(None, why)``."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return None, f"{ENV}=0"
    try:
        native = importlib.import_module("ibp_native")
    except ImportError as exc:
        return None, f"ibp_native not built ({exc}); make setup builds it when cargo is installed"
    api = getattr(native, "API", None)
    if api != API:
        return None, f"ibp_native API {api} != {API}: rebuild with make setup"
    return native, "ibp_native imported"
