"""The native extension for the tests that compare it with the pure-Python code: ``ibp_native`` (or None) and
``needs_native``, which skips where it is not built; ``IBP_NATIVE_REQUIRED=1`` turns that skip into a failure
(for a CI that must test the extension)."""

from __future__ import annotations

import os

import pytest

try:
    import ibp_native
except ImportError:
    ibp_native = None

needs_native = pytest.mark.skipif(
    ibp_native is None and os.environ.get("IBP_NATIVE_REQUIRED") != "1",
    reason="ibp_native not built (make setup builds it when cargo is installed)",
)
