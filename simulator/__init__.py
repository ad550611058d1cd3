"""Device fleet simulator, agent, controller and auditor for the IoT Burst Resilience Pilot."""
