// ESP32 board layer: Wi-Fi, UDP, LittleFS, NVS and the sensor. Everything that decides what is kept,
// sent, retransmitted or deleted is the portable core (lib/ibpcore), tested on the host.
//
// Serial boot banner (the flash playbook verifies it):
//   IBP-FW version=<v> device=<id> head=<seq> next=<seq> stored=<n>
//   IBP-FW version=<v> device=- error=<what to fix>            (unprovisioned or broken board)
#include <Arduino.h>
#include <WiFi.h>
#include <WiFiUdp.h>
#include <esp_random.h>
#include <esp_timer.h>
#include <time.h>

#include "device_config.h"
#include "ibp/random.h"
#include "ibp/ring_store.h"
#include "ibp/sender.h"
#include "littlefs_fs.h"

#ifndef IBP_FIRMWARE_VERSION
#define IBP_FIRMWARE_VERSION "dev"
#endif

namespace {

DeviceConfig g_cfg;
LittleFsFileSystem g_fs;
ibp::RingStore* g_store = nullptr;
ibp::Sender* g_sender = nullptr;
ibp::Random* g_rng = nullptr;
WiFiUDP g_udp;
uint32_t g_next_reading_ms = 0;
uint32_t g_next_status_ms = 0;

// Milliseconds since boot, 64-bit (millis() wraps after 49 days; the sender compares absolute times).
uint64_t mono_ms() { return uint64_t(esp_timer_get_time() / 1000); }

[[noreturn]] void halt(const std::string& error) {
  for (;;) {
    Serial.printf("IBP-FW version=%s device=- error=\"%s\"\n", IBP_FIRMWARE_VERSION, error.c_str());
    delay(5000);
  }
}

uint64_t wall_ms() {
  time_t now = time(nullptr);
  if (now < 1600000000) return 0;  // clock not set (no NTP yet): 0 means unknown on the wire
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  return uint64_t(tv.tv_sec) * 1000 + uint64_t(tv.tv_usec) / 1000;
}

void take_reading() {
  char payload[64];
  // The chip's internal sensor stands in for a real one; the payload is a JSON object either way.
  snprintf(payload, sizeof payload, "{\"t\":%.2f,\"up_s\":%lu}", temperatureRead(), (unsigned long)(millis() / 1000));
  uint32_t seq = 0;
  ibp::Result r = g_store->append(wall_ms(), reinterpret_cast<const uint8_t*>(payload), strlen(payload), &seq);
  if (!r.ok) Serial.printf("event=store_failed reason=%s\n", r.reason.c_str());
}

void pump_network(uint64_t now) {
  if (WiFi.status() != WL_CONNECTED) return;
  ibp::Bytes datagram;
  while (g_sender->poll(now, datagram)) {
    g_udp.beginPacket(g_cfg.gateway_host.c_str(), g_cfg.gateway_port);
    g_udp.write(datagram.data(), datagram.size());
    g_udp.endPacket();
  }
  int size;
  while ((size = g_udp.parsePacket()) > 0) {
    uint8_t buf[256];
    int n = g_udp.read(buf, sizeof buf);
    if (n > 0) g_sender->on_datagram(buf, size_t(n), mono_ms());
  }
}

}  // namespace

void setup() {
  Serial.begin(115200);
  delay(200);
  std::string error;
  if (!load_device_config(g_cfg, error)) halt(error);
  if (!g_fs.begin()) halt("LittleFS partition 'spiffs' missing: flash with partitions.csv");

  ibp::StoreConfig store_cfg;
  store_cfg.capacity = 4096;   // ~40 minutes of outage at one reading every 10 s ... and then some
  store_cfg.max_payload = 96;  // 4096 x 116-byte slots = 464 KiB of the 1.4 MiB LittleFS partition
  store_cfg.overflow = ibp::Overflow::kDropOldest;
  g_store = new ibp::RingStore(g_fs, store_cfg);
  ibp::Result opened = g_store->open();
  if (!opened.ok) halt("ring store: " + opened.reason);

  ibp::SenderConfig sender_cfg;  // defaults: 1 s ack timeout, 250 ms..30 s backoff, 32/batch, 50 datagrams/s
  std::string bad = ibp::Sender::check_config(sender_cfg, g_cfg.identity, store_cfg.max_payload);
  if (!bad.empty()) halt(bad);
  g_rng = new ibp::Random((uint64_t(esp_random()) << 32) | esp_random());
  g_sender = new ibp::Sender(*g_store, g_cfg.identity, sender_cfg, *g_rng);

  Serial.printf("IBP-FW version=%s device=%s head=%llu next=%llu stored=%llu\n", IBP_FIRMWARE_VERSION,
                g_cfg.identity.device_id.c_str(), (unsigned long long)g_store->head(),
                (unsigned long long)g_store->next_seq(), (unsigned long long)g_store->count());

  WiFi.mode(WIFI_STA);
  WiFi.setAutoReconnect(true);
  WiFi.begin(g_cfg.wifi_ssid.c_str(), g_cfg.wifi_password.c_str());
  if (!g_cfg.ntp_server.empty()) configTime(0, 0, g_cfg.ntp_server.c_str());
  g_udp.begin(0);  // any local port; answers come back to it
  g_next_reading_ms = millis();
}

void loop() {
  uint32_t now = millis();  // 32-bit, compared by difference: wraps safely
  if (int32_t(now - g_next_reading_ms) >= 0) {
    take_reading();
    g_next_reading_ms += g_cfg.reading_interval_ms;
  }
  pump_network(mono_ms());
  if (int32_t(now - g_next_status_ms) >= 0) {
    const auto& s = g_sender->stats();
    Serial.printf("event=status wifi=%d head=%llu next=%llu stored=%llu acked=%llu sent=%llu retransmits=%llu busy=%llu "
                  "auth_fail=%llu\n",
                  WiFi.status() == WL_CONNECTED, (unsigned long long)g_store->head(),
                  (unsigned long long)g_store->next_seq(), (unsigned long long)g_store->count(),
                  (unsigned long long)s.readings_acked, (unsigned long long)s.datagrams_sent,
                  (unsigned long long)s.retransmits, (unsigned long long)s.busy, (unsigned long long)s.auth_fail);
    g_next_status_ms = now + 10000;
  }
  delay(10);
}
