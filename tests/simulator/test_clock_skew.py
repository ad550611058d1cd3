"""The controller measures every agent's clock against its own before arming, and refuses, naming the
agent, when the offset exceeds the scenario's slos.max_clock_skew_ms. The skewed clock is real: the agent
process runs under libfaketime (Debian's faketime), 2 s ahead of the controller."""

from __future__ import annotations

import asyncio
import secrets
import shutil
from pathlib import Path

import pytest

from simulator.orchestration import controller
from simulator.orchestration.errors import ControllerError
from simulator.orchestration.runner import new_run_id
from simulator.scenario import parse

FAKETIME = shutil.which("faketime") or "faketime (missing: `make setup` installs it)"


def test_controller_measures_the_offset_of_a_skewed_agent(agent_factory) -> None:
    (agent,) = agent_factory.start(1, secrets.token_bytes(32), wrapper=[FAKETIME, "-f", "+2s"])
    clock = asyncio.run(controller.measure_clock(agent.address, agent_factory.token))
    assert 1900 < clock["offset_ms"] < 2100, clock
    assert 0 <= clock["uncertainty_ms"] < 100, clock


def test_controller_refuses_to_arm_an_agent_beyond_the_limit(
    agent_factory, small_burst: str, tmp_path: Path
) -> None:
    master = secrets.token_bytes(32)
    (good,) = agent_factory.start(1, master)
    (skewed,) = agent_factory.start(1, master, wrapper=[FAKETIME, "-f", "+2s"])
    text = small_burst.replace("slos: {", "slos: {max_clock_skew_ms: 500, ")
    assert "max_clock_skew_ms: 500" in text
    scn = parse(text)
    with pytest.raises(ControllerError) as err:
        asyncio.run(
            controller.run(
                [good.address, skewed.address],
                agent_factory.token,
                scn,
                text,
                "127.0.0.1:9",  # never reached: the run stops before arming
                new_run_id("skew"),
                tmp_path,
                progress=lambda _: None,
            )
        )
    message = str(err.value)
    assert skewed.address in message and "max_clock_skew_ms" in message
    assert good.address not in message
