"""Helpers shared by the gateway tests: a UDP client socket with a timeout."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def udp_client() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(10.0)
    try:
        yield s
    finally:
        s.close()
