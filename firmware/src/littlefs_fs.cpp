#include "littlefs_fs.h"

#include <FS.h>
#include <LittleFS.h>

namespace {
String full(const std::string& path) { return String("/") + path.c_str(); }
}  // namespace

bool LittleFsFileSystem::begin() { return LittleFS.begin(true); }

bool LittleFsFileSystem::size(const std::string& path, size_t& out) {
  String name = full(path);
  if (!LittleFS.exists(name)) return false;
  File f = LittleFS.open(name, "r");
  if (!f) return false;
  out = f.size();
  f.close();
  return true;
}

bool LittleFsFileSystem::read_at(const std::string& path, size_t offset, uint8_t* buf, size_t len) {
  File f = LittleFS.open(full(path), "r");
  if (!f) return false;
  bool ok = f.size() >= offset + len && f.seek(offset) && f.read(buf, len) == len;
  f.close();
  return ok;
}

bool LittleFsFileSystem::write_at(const std::string& path, size_t offset, const uint8_t* data, size_t len) {
  String name = full(path);
  File f = LittleFS.open(name, LittleFS.exists(name) ? "r+" : "w+");
  if (!f) return false;
  bool ok = true;
  if (f.size() < offset) {  // zero-fill a hole
    ok = f.seek(f.size());
    static const uint8_t zeros[64] = {0};
    size_t missing = offset - f.size();
    while (ok && missing > 0) {
      size_t n = missing < sizeof zeros ? missing : sizeof zeros;
      ok = f.write(zeros, n) == n;
      missing -= n;
    }
  }
  ok = ok && f.seek(offset) && f.write(data, len) == len;
  f.flush();
  f.close();  // LittleFS commits the file at close
  return ok;
}

bool LittleFsFileSystem::remove(const std::string& path) {
  String name = full(path);
  return !LittleFS.exists(name) || LittleFS.remove(name);
}
