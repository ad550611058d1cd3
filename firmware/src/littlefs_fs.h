// ibp::FileSystem on the board's LittleFS (partition "spiffs", mounted at /littlefs). LittleFS is
// copy-on-write: a write becomes visible atomically at close, so a power cut leaves the old bytes.
#pragma once

#include "ibp/filesystem.h"

class LittleFsFileSystem : public ibp::FileSystem {
 public:
  // Mounts (formatting an unformatted partition). Returns false when the partition is missing.
  bool begin();
  bool size(const std::string& path, size_t& out) override;
  bool read_at(const std::string& path, size_t offset, uint8_t* buf, size_t len) override;
  bool write_at(const std::string& path, size_t offset, const uint8_t* data, size_t len) override;
  bool remove(const std::string& path) override;
};
