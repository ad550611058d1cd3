// A connected, non-blocking UDP socket to the gateway (the virtual device's "radio").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ibp {

class UdpLink {
 public:
  UdpLink() = default;
  ~UdpLink();
  UdpLink(const UdpLink&) = delete;
  UdpLink& operator=(const UdpLink&) = delete;

  // Resolves and connects; returns "" or what to fix.
  std::string open(const std::string& host, uint16_t port);
  // False when the kernel refused the datagram (e.g. ICMP port unreachable from an earlier send).
  bool send(const std::vector<uint8_t>& datagram);
  // Waits up to timeout_ms for one datagram; false on timeout.
  bool receive(std::vector<uint8_t>& out, int timeout_ms);

 private:
  int fd_ = -1;
};

}  // namespace ibp
