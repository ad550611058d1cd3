"""Fault injection for distributed runs: where and when each scenario fault fires and what happened
(plan; ``python -m simulator.faults plan|collect``), and the network impairer (impair)."""
