#include "device_config.h"

#include <Preferences.h>

namespace {

bool get_string(Preferences& p, const char* key, std::string& out, bool required, std::string& error) {
  if (!p.isKey(key)) {
    if (required) error = std::string("NVS key ibp/") + key + " is missing: reprovision the board";
    return !required;
  }
  out = p.getString(key, "").c_str();
  if (required && out.empty()) {
    error = std::string("NVS key ibp/") + key + " is empty: reprovision the board";
    return false;
  }
  return true;
}

}  // namespace

bool load_device_config(DeviceConfig& cfg, std::string& error) {
  Preferences p;
  if (!p.begin("ibp", true)) {
    error = "NVS namespace 'ibp' not found: flash the board's provisioning image (ansible/flash.yml)";
    return false;
  }
  bool ok = get_string(p, "device_id", cfg.identity.device_id, true, error) &&
            get_string(p, "wifi_ssid", cfg.wifi_ssid, true, error) &&
            get_string(p, "wifi_pass", cfg.wifi_password, false, error) &&
            get_string(p, "gw_host", cfg.gateway_host, true, error) &&
            get_string(p, "ntp_server", cfg.ntp_server, false, error);
  if (ok && !ibp::valid_device_id(cfg.identity.device_id)) {
    error = "NVS key ibp/device_id is not a valid device id (1..64 UTF-8 bytes)";
    ok = false;
  }
  if (ok) {
    cfg.identity.key.assign(ibp::kKeyLen, 0);
    if (p.getBytesLength("hmac_key") != ibp::kKeyLen ||
        p.getBytes("hmac_key", cfg.identity.key.data(), ibp::kKeyLen) != ibp::kKeyLen) {
      error = "NVS key ibp/hmac_key must be a 32-byte blob";
      ok = false;
    }
  }
  if (ok) {
    cfg.gateway_port = p.getUShort("gw_port", 0);
    if (cfg.gateway_port == 0) {
      error = "NVS key ibp/gw_port is missing or 0";
      ok = false;
    }
  }
  if (ok && p.isKey("interval_ms")) cfg.reading_interval_ms = p.getUInt("interval_ms", 10000);
  p.end();
  return ok;
}
