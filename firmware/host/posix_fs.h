// FileSystem on POSIX files under one directory (the virtual device's state dir). Every write_at is
// followed by fsync, so a SIGKILL or a power cut after it returns cannot lose it.
#pragma once

#include <string>

#include "ibp/filesystem.h"

namespace ibp {

class PosixFileSystem : public FileSystem {
 public:
  explicit PosixFileSystem(std::string root) : root_(std::move(root)) {}
  // Creates the directory (and parents). Returns "" or what went wrong.
  std::string prepare();

  bool size(const std::string& path, size_t& out) override;
  bool read_at(const std::string& path, size_t offset, uint8_t* buf, size_t len) override;
  bool write_at(const std::string& path, size_t offset, const uint8_t* data, size_t len) override;
  bool remove(const std::string& path) override;

 private:
  std::string full(const std::string& path) const { return root_ + "/" + path; }
  std::string root_;
};

}  // namespace ibp
