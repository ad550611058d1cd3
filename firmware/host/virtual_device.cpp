// ibp-virtual-device: the firmware's core on a host. Same RingStore and Sender as the ESP32 build,
// on POSIX files (--state-dir) and a POSIX UDP socket. Generates readings at --rate, keeps them across
// restarts (SIGKILL included) and flushes them to the gateway. One key=value line per event on stdout.
#include <getopt.h>
#include <signal.h>
#include <time.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ibp/protocol.h"
#include "ibp/random.h"
#include "ibp/ring_store.h"
#include "ibp/sender.h"
#include "posix_fs.h"
#include "udp_link.h"

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

uint64_t mono_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

uint64_t wall_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000 + uint64_t(ts.tv_nsec) / 1000000;
}

struct Options {
  std::string host = "127.0.0.1";
  long port = 0;
  std::string device_id;
  std::string key_hex;
  std::string master_key_hex;
  std::string state_dir;
  double rate = 10.0;
  long readings = 0;
  std::string run_id;
  long capacity = 4096;
  long max_payload = 128;
  std::string overflow = "drop-oldest";
  long max_batch = 32;
  long max_datagram = 1472;
  long rate_cap = 50;
  long ack_timeout_ms = 1000;
  long backoff_base_ms = 200;
  long backoff_cap_ms = 5000;
  long status_interval_ms = 1000;
  double duration_s = 0;
  bool exit_when_drained = false;
  long seed = -1;
};

[[noreturn]] void usage(const char* msg) {
  if (msg != nullptr) std::fprintf(stderr, "ibp-virtual-device: %s\n", msg);
  std::fprintf(stderr,
               "usage: ibp-virtual-device --port N --device-id ID (--key-hex HEX | --master-key-hex HEX)\n"
               "         --state-dir DIR [--host H] [--rate R/s] [--readings N] [--run-id ID]\n"
               "         [--capacity N] [--max-payload BYTES] [--overflow drop-oldest|reject-new]\n"
               "         [--max-batch N] [--max-datagram BYTES] [--rate-cap DATAGRAMS/s]\n"
               "         [--ack-timeout-ms MS] [--backoff-base-ms MS] [--backoff-cap-ms MS]\n"
               "         [--duration-s S] [--exit-when-drained] [--seed N] [--status-interval-ms MS]\n"
               "The key may also come from the environment: IBP_DEVICE_KEY or IBP_MASTER_KEY (hex).\n");
  std::exit(2);
}

long to_long(const char* name, const char* text, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) {
    std::string m = std::string("--") + name + " must be an integer in " + std::to_string(lo) + ".." +
                    std::to_string(hi) + ", got '" + text + "'";
    usage(m.c_str());
  }
  return v;
}

Options parse(int argc, char** argv) {
  static const option kLong[] = {
      {"host", required_argument, nullptr, 'h'},        {"port", required_argument, nullptr, 'p'},
      {"device-id", required_argument, nullptr, 'd'},   {"key-hex", required_argument, nullptr, 'k'},
      {"master-key-hex", required_argument, nullptr, 'm'}, {"state-dir", required_argument, nullptr, 's'},
      {"rate", required_argument, nullptr, 'r'},        {"readings", required_argument, nullptr, 'n'},
      {"run-id", required_argument, nullptr, 'R'},      {"capacity", required_argument, nullptr, 'c'},
      {"max-payload", required_argument, nullptr, 'P'}, {"overflow", required_argument, nullptr, 'o'},
      {"max-batch", required_argument, nullptr, 'b'},   {"max-datagram", required_argument, nullptr, 'D'},
      {"rate-cap", required_argument, nullptr, 'C'},    {"ack-timeout-ms", required_argument, nullptr, 'a'},
      {"backoff-base-ms", required_argument, nullptr, 'B'}, {"backoff-cap-ms", required_argument, nullptr, 'X'},
      {"status-interval-ms", required_argument, nullptr, 'S'}, {"duration-s", required_argument, nullptr, 't'},
      {"exit-when-drained", no_argument, nullptr, 'e'}, {"seed", required_argument, nullptr, 'z'},
      {"help", no_argument, nullptr, '?'},              {nullptr, 0, nullptr, 0}};
  Options o;
  if (const char* k = std::getenv("IBP_DEVICE_KEY")) o.key_hex = k;
  if (const char* k = std::getenv("IBP_MASTER_KEY")) o.master_key_hex = k;
  int c;
  while ((c = getopt_long(argc, argv, "", kLong, nullptr)) != -1) {
    switch (c) {
      case 'h': o.host = optarg; break;
      case 'p': o.port = to_long("port", optarg, 1, 65535); break;
      case 'd': o.device_id = optarg; break;
      case 'k': o.key_hex = optarg; break;
      case 'm': o.master_key_hex = optarg; break;
      case 's': o.state_dir = optarg; break;
      case 'r': {
        char* end = nullptr;
        o.rate = std::strtod(optarg, &end);
        if (end == optarg || *end != '\0' || !(o.rate > 0) || o.rate > 100000) {
          usage("--rate must be a number of readings per second in (0, 100000]");
        }
        break;
      }
      case 'n': o.readings = to_long("readings", optarg, 0, 0xFFFFFFFFL); break;
      case 'R': o.run_id = optarg; break;
      case 'c': o.capacity = to_long("capacity", optarg, 1, 10000000); break;
      case 'P': o.max_payload = to_long("max-payload", optarg, 16, 1400); break;
      case 'o': o.overflow = optarg; break;
      case 'b': o.max_batch = to_long("max-batch", optarg, 1, 255); break;
      case 'D': o.max_datagram = to_long("max-datagram", optarg, 64, 65507); break;
      case 'C': o.rate_cap = to_long("rate-cap", optarg, 0, 1000000); break;
      case 'a': o.ack_timeout_ms = to_long("ack-timeout-ms", optarg, 1, 600000); break;
      case 'B': o.backoff_base_ms = to_long("backoff-base-ms", optarg, 1, 600000); break;
      case 'X': o.backoff_cap_ms = to_long("backoff-cap-ms", optarg, 1, 3600000); break;
      case 'S': o.status_interval_ms = to_long("status-interval-ms", optarg, 10, 3600000); break;
      case 't': o.duration_s = std::strtod(optarg, nullptr); break;
      case 'e': o.exit_when_drained = true; break;
      case 'z': o.seed = to_long("seed", optarg, 0, 0x7FFFFFFFL); break;
      default: usage(nullptr);
    }
  }
  if (optind != argc) usage("unexpected positional argument");
  if (o.port == 0) usage("--port (the gateway's UDP port) is required");
  if (o.state_dir.empty()) usage("--state-dir is required (the device's flash)");
  if (!ibp::valid_device_id(o.device_id)) usage("--device-id must be 1..64 UTF-8 bytes without control characters");
  if (o.key_hex.empty() == o.master_key_hex.empty()) {
    usage("give exactly one of --key-hex / IBP_DEVICE_KEY or --master-key-hex / IBP_MASTER_KEY");
  }
  if (o.overflow != "drop-oldest" && o.overflow != "reject-new") usage("--overflow must be drop-oldest or reject-new");
  for (char ch : o.run_id) {
    if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) {
      usage("--run-id may hold only letters, digits, '-', '_' and '.'");
    }
  }
  if (o.backoff_cap_ms < o.backoff_base_ms) usage("--backoff-cap-ms must be >= --backoff-base-ms");
  return o;
}

std::string make_payload(const Options& o, uint64_t now_wall, ibp::Random& rng) {
  // A plausible sensor: 20 degrees plus a daily swing plus noise.
  double t = 20.0 + 3.0 * std::sin(double(now_wall % 86400000ULL) / 86400000.0 * 6.2831853) +
             double(rng.upto(1000)) / 1000.0;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", t);
  std::string p = "{";
  if (!o.run_id.empty()) p += "\"run\":\"" + o.run_id + "\",";
  p += "\"t\":" + std::string(buf) + "}";
  return p;
}

void status(const char* event, const Options& o, const ibp::RingStore& store, const ibp::Sender& sender,
            uint64_t generated) {
  const auto& ss = sender.stats();
  const auto& st = store.stats();
  std::printf(
      "event=%s device=%s head=%llu next=%llu stored=%llu generated=%llu acked=%llu sent=%llu retransmits=%llu "
      "timeouts=%llu busy=%llu auth_fail=%llu bad_answers=%llu dropped_overflow=%llu rejected_full=%llu "
      "dropped_corrupt=%llu rolled_forward=%llu\n",
      event, o.device_id.c_str(), (unsigned long long)store.head(), (unsigned long long)store.next_seq(),
      (unsigned long long)store.count(), (unsigned long long)generated, (unsigned long long)ss.readings_acked,
      (unsigned long long)ss.datagrams_sent, (unsigned long long)ss.retransmits, (unsigned long long)ss.timeouts,
      (unsigned long long)ss.busy, (unsigned long long)ss.auth_fail, (unsigned long long)ss.bad_answers,
      (unsigned long long)st.dropped_overflow, (unsigned long long)st.rejected_full,
      (unsigned long long)st.dropped_corrupt, (unsigned long long)st.rolled_forward);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  ibp::Identity id;
  id.device_id = o.device_id;
  ibp::Bytes key;
  if (!o.key_hex.empty()) {
    if (!ibp::from_hex(o.key_hex, key) || key.size() != ibp::kKeyLen) usage("the device key must be 64 hex digits");
    id.key = key;
  } else {
    if (!ibp::from_hex(o.master_key_hex, key) || key.size() != ibp::kKeyLen) {
      usage("the master key must be 64 hex digits");
    }
    id.key.resize(ibp::kKeyLen);
    ibp::derive_device_key(key.data(), key.size(), id.device_id, id.key.data());
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  ibp::PosixFileSystem fs(o.state_dir);
  std::string err = fs.prepare();
  if (!err.empty()) usage(err.c_str());
  ibp::StoreConfig scfg;
  scfg.capacity = uint32_t(o.capacity);
  scfg.max_payload = uint16_t(o.max_payload);
  scfg.overflow = o.overflow == "reject-new" ? ibp::Overflow::kRejectNew : ibp::Overflow::kDropOldest;
  ibp::RingStore store(fs, scfg);
  ibp::Result opened = store.open();
  if (!opened.ok) {
    std::fprintf(stderr, "ibp-virtual-device: cannot open the ring in %s: %s\n", o.state_dir.c_str(),
                 opened.reason.c_str());
    return 1;
  }

  ibp::SenderConfig cfg;
  cfg.ack_timeout_ms = uint32_t(o.ack_timeout_ms);
  cfg.backoff = {uint32_t(o.backoff_base_ms), uint32_t(o.backoff_cap_ms)};
  cfg.max_batch_readings = uint32_t(o.max_batch);
  cfg.max_datagram_bytes = uint32_t(o.max_datagram);
  cfg.rate_cap_per_s = uint32_t(o.rate_cap);
  err = ibp::Sender::check_config(cfg, id, store.max_payload());
  if (!err.empty()) usage(err.c_str());

  uint64_t seed = o.seed >= 0 ? uint64_t(o.seed) : (wall_ms() ^ (uint64_t(getpid()) << 32));
  ibp::Random rng(seed);
  ibp::Sender sender(store, id, cfg, rng);
  ibp::UdpLink link;
  err = link.open(o.host, uint16_t(o.port));
  if (!err.empty()) usage(err.c_str());

  uint64_t start = mono_ms();
  uint64_t generated = 0;
  double interval_ms = 1000.0 / o.rate;
  double next_reading = double(start);
  uint64_t next_status = start;
  uint64_t send_errors = 0;
  status("boot", o, store, sender, generated);
  ibp::Bytes out, in;
  while (!g_stop) {
    uint64_t now = mono_ms();
    bool producing = o.readings == 0 || store.next_seq() < uint64_t(o.readings);
    while (producing && double(now) >= next_reading) {
      std::string p = make_payload(o, wall_ms(), rng);
      ibp::Result r = store.append(wall_ms(), reinterpret_cast<const uint8_t*>(p.data()), p.size(), nullptr);
      if (!r.ok && r.reason != "full") {
        std::fprintf(stderr, "ibp-virtual-device: cannot store a reading: %s\n", r.reason.c_str());
        return 1;
      }
      ++generated;
      next_reading += interval_ms;
      producing = o.readings == 0 || store.next_seq() < uint64_t(o.readings);
    }
    if (!producing) next_reading = double(now) + 1000.0;
    while (sender.poll(now, out)) {
      if (!link.send(out)) ++send_errors;
    }
    if (now >= next_status) {
      status("status", o, store, sender, generated);
      next_status = now + uint64_t(o.status_interval_ms);
    }
    if (o.exit_when_drained && !producing && store.count() == 0 && !sender.in_flight()) {
      status("drained", o, store, sender, generated);
      return 0;
    }
    if (o.duration_s > 0 && double(now - start) >= o.duration_s * 1000.0) break;
    uint64_t wake = sender.next_due_ms(now);
    if (producing && uint64_t(next_reading) < wake) wake = uint64_t(next_reading);
    if (next_status < wake) wake = next_status;
    int timeout = wake > now ? int(wake - now < 100 ? wake - now : 100) : 0;
    if (link.receive(in, timeout)) sender.on_datagram(in.data(), in.size(), mono_ms());
  }
  status("exit", o, store, sender, generated);
  return 0;
}
