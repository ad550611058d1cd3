#include "posix_fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ibp {

std::string PosixFileSystem::prepare() {
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = root_.find('/', pos + 1);
    partial = root_.substr(0, pos);
    if (partial.empty()) continue;
    if (mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      return "cannot create state directory " + partial + ": " + std::strerror(errno);
    }
  }
  struct stat st {};
  if (stat(root_.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "state path " + root_ + " is not a directory";
  return "";
}

bool PosixFileSystem::size(const std::string& path, size_t& out) {
  struct stat st {};
  if (stat(full(path).c_str(), &st) != 0) return false;
  out = size_t(st.st_size);
  return true;
}

bool PosixFileSystem::read_at(const std::string& path, size_t offset, uint8_t* buf, size_t len) {
  int fd = open(full(path).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < len) {
    ssize_t n = pread(fd, buf + done, len - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += size_t(n);
  }
  close(fd);
  return done == len;
}

bool PosixFileSystem::write_at(const std::string& path, size_t offset, const uint8_t* data, size_t len) {
  std::string name = full(path);
  bool existed = access(name.c_str(), F_OK) == 0;
  int fd = open(name.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, data + done, len - done, off_t(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += size_t(n);
  }
  bool ok = done == len && fsync(fd) == 0;
  close(fd);
  if (ok && !existed) {  // make the new directory entry durable too
    int dir = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      fsync(dir);
      close(dir);
    }
  }
  return ok;
}

bool PosixFileSystem::remove(const std::string& path) { return unlink(full(path).c_str()) == 0 || errno == ENOENT; }

}  // namespace ibp
