"""Development harnesses: the whole stack on one machine (demo, soak, limit search, simulator capacity
and its acking sink, the gateway launcher and load generator the tests and the bench use). In a source
checkout only, never in the wheel: a deployed host has no use for a local broker."""
