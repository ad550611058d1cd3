"""The wire protocol, and nothing else: IBP/1 (batched, authenticated, acked) and the original pilot's
legacy formats, as pure functions on bytes (docs/protocol.md). The gateway and the simulator both import
it; the firmware implements the same spec in C++ and reads the same test vectors (tests/vectors/)."""
