// The small filesystem the store needs: sized files, positioned reads, durable positioned writes.
// Implementations: PosixFileSystem (host), LittleFsFileSystem (board), MemoryFileSystem and
// FaultFileSystem (tests). A write_at that returns true is durable (synced); one interrupted by a power
// cut may have written any prefix of its bytes, and nothing after it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ibp {

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  // File size in bytes; false when the file does not exist.
  virtual bool size(const std::string& path, size_t& out) = 0;
  // Reads exactly len bytes at offset; false on a missing file or a short read.
  virtual bool read_at(const std::string& path, size_t offset, uint8_t* buf, size_t len) = 0;
  // Writes len bytes at offset (creating the file, zero-filling any hole) and makes them durable.
  virtual bool write_at(const std::string& path, size_t offset, const uint8_t* data, size_t len) = 0;
  virtual bool remove(const std::string& path) = 0;
};

}  // namespace ibp
