"""A fleet socket that got an ICMP error (the gateway restarting) is read again once the gateway is back.

uvloop stops watching a descriptor after it reports POLLERR; the batched link must register it again, or
its devices send forever without seeing an answer (molecule/site's gateway-SIGKILL burst, 2026-12-06:
4,860 readings missing). Real UDP sockets on loopback, on both event loops the simulator can run.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop

from simulator.devices.sockets import BatchLink, connected_socket
from tests.gateway.native_ext import ibp_native, needs_native


async def _answers_after_port_unreachable() -> tuple[int, list[bytes]]:
    loop = asyncio.get_running_loop()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nobody listens there now: every datagram comes back as ICMP port unreachable
    answers: list[bytes] = []
    errors: list[int] = []
    link = BatchLink(
        loop, connected_socket(("127.0.0.1", port)), ibp_native, answers.append, lambda: errors.append(1)
    )
    for i in range(4):
        link.send(b"lost-%d" % i)
        await asyncio.sleep(0.03)
    gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the gateway is back on the same port
    gateway.bind(("127.0.0.1", port))
    gateway.setblocking(False)

    def answer() -> None:
        while True:
            try:
                data, addr = gateway.recvfrom(64)
            except BlockingIOError:
                return
            gateway.sendto(b"ack-" + data, addr)

    loop.add_reader(gateway.fileno(), answer)
    try:
        for i in range(4):
            link.send(b"seq-%d" % i)
            await asyncio.sleep(0.03)
    finally:
        loop.remove_reader(gateway.fileno())
        gateway.close()
        link.close()
    return len(errors), answers


@needs_native
@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_batch_link_reads_again_after_icmp_errors(run):
    errors, answers = run(_answers_after_port_unreachable())
    assert errors >= 1, "no ICMP error was seen: the test did not exercise the error path"
    assert answers == [b"ack-seq-%d" % i for i in range(4)]
