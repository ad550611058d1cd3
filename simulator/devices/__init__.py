"""The simulated devices: the fleet engine (readings, buffers, stop-and-wait IBP/1 sending), what they
put on the wire, the journal that survives a reboot, the fleet master key, the pilot's interactive console."""
