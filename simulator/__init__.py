"""The device side of the pilot, one subpackage per job:

- ``simulator.devices``: the simulated fleet (readings, buffers, stop-and-wait sending, journal, keys);
- ``simulator.orchestration``: running a scenario, alone or across agents (runner, session, agent,
  controller, control API, TLS, limit search);
- ``simulator.audit``: reading a run back from Kafka and accounting for every reading;
- ``simulator.report``: the results bundle, the fault matrix, comparisons;
- ``simulator.faults``: fault plans and the network impairer.

``simulator.scenario`` (the scenario file format) is what they all share. The CLI is ``python -m simulator``.
"""
