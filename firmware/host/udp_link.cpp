#include "udp_link.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ibp {

UdpLink::~UdpLink() {
  if (fd_ >= 0) close(fd_);
}

std::string UdpLink::open(const std::string& host, uint16_t port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  std::string service = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) return "cannot resolve gateway host '" + host + "': " + gai_strerror(rc);
  std::string err = "no usable address for gateway " + host;
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
      fd_ = fd;
      err.clear();
      break;
    }
    err = std::string("cannot connect UDP socket: ") + std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  return err;
}

bool UdpLink::send(const std::vector<uint8_t>& datagram) {
  ssize_t n = ::send(fd_, datagram.data(), datagram.size(), 0);
  return n == ssize_t(datagram.size());
}

bool UdpLink::receive(std::vector<uint8_t>& out, int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return false;
  out.resize(2048);
  ssize_t n = recv(fd_, out.data(), out.size(), 0);
  if (n < 0) {
    out.clear();
    return false;  // e.g. ECONNREFUSED while the gateway is down: nothing to read
  }
  out.resize(size_t(n));
  return true;
}

}  // namespace ibp
