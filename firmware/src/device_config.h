// Per-board identity and secrets, read from the NVS partition written at provisioning time
// (firmware/provision: namespace "ibp"). Nothing here is compiled in.
#pragma once

#include <cstdint>
#include <string>

#include "ibp/protocol.h"

struct DeviceConfig {
  ibp::Identity identity;       // "device_id" (string), "hmac_key" (32-byte blob)
  std::string wifi_ssid;        // "wifi_ssid"
  std::string wifi_password;    // "wifi_pass"
  std::string gateway_host;     // "gw_host" (name or address)
  uint16_t gateway_port = 0;    // "gw_port" (u16)
  uint32_t reading_interval_ms = 10000;  // "interval_ms" (u32, optional)
  std::string ntp_server;       // "ntp_server" (optional; without it timestamps are 0 = unknown)
};

// Loads the configuration; on failure returns false and names the missing or bad key in `error`.
bool load_device_config(DeviceConfig& cfg, std::string& error);
