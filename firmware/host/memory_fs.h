// In-memory FileSystem for tests, and FaultFileSystem: a wrapper that cuts the power at the N-th
// write_at, leaving a chosen prefix of that write on "flash" and failing every later operation.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ibp/filesystem.h"

namespace ibp {

class MemoryFileSystem : public FileSystem {
 public:
  bool size(const std::string& path, size_t& out) override {
    auto it = files_.find(path);
    if (it == files_.end()) return false;
    out = it->second.size();
    return true;
  }
  bool read_at(const std::string& path, size_t offset, uint8_t* buf, size_t len) override {
    auto it = files_.find(path);
    if (it == files_.end() || offset + len > it->second.size()) return false;
    std::copy(it->second.begin() + long(offset), it->second.begin() + long(offset + len), buf);
    return true;
  }
  bool write_at(const std::string& path, size_t offset, const uint8_t* data, size_t len) override {
    auto& f = files_[path];
    if (f.size() < offset + len) f.resize(offset + len, 0);
    std::copy(data, data + len, f.begin() + long(offset));
    return true;
  }
  bool remove(const std::string& path) override {
    files_.erase(path);
    return true;
  }
  std::vector<uint8_t>& raw(const std::string& path) { return files_[path]; }

 private:
  std::map<std::string, std::vector<uint8_t>> files_;
};

// How much of the interrupted write reaches the medium.
enum class Tear { kNothing, kHalf, kAllButLast, kAll };

class FaultFileSystem : public FileSystem {
 public:
  // Cuts the power during write number cut_at (0-based); cut_at < 0 never cuts (counts writes only).
  FaultFileSystem(FileSystem& inner, long cut_at, Tear tear) : inner_(inner), cut_at_(cut_at), tear_(tear) {}

  bool size(const std::string& path, size_t& out) override { return !dead_ && inner_.size(path, out); }
  bool read_at(const std::string& path, size_t offset, uint8_t* buf, size_t len) override {
    return !dead_ && inner_.read_at(path, offset, buf, len);
  }
  bool write_at(const std::string& path, size_t offset, const uint8_t* data, size_t len) override {
    if (dead_) return false;
    if (writes_++ != cut_at_) return inner_.write_at(path, offset, data, len);
    size_t keep = 0;
    switch (tear_) {
      case Tear::kNothing: keep = 0; break;
      case Tear::kHalf: keep = len / 2; break;
      case Tear::kAllButLast: keep = len > 0 ? len - 1 : 0; break;
      case Tear::kAll: keep = len; break;
    }
    if (keep > 0) inner_.write_at(path, offset, data, keep);
    dead_ = true;
    return false;
  }
  bool remove(const std::string& path) override { return !dead_ && inner_.remove(path); }

  long writes() const { return writes_; }
  bool dead() const { return dead_; }

 private:
  FileSystem& inner_;
  long cut_at_;
  Tear tear_;
  long writes_ = 0;
  bool dead_ = false;
};

}  // namespace ibp
