#pragma once
// File helpers shared by the SDK's readers and writers and the runner.
// write_atomically writes through a temporary in the same folder and renames
// it into place, so a failed or interrupted write never leaves a half-written
// file under the final name (rename is atomic within a folder).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <fmt/format.h>

#include "flows/error.hpp"

namespace flows::detail {

// The whole file as bytes; IoError names the path and why it cannot be read.
inline std::string read_whole_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(fmt::format("{}: cannot read: it is a folder, not a file", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const bool exists = std::filesystem::exists(path, ec);
    throw IoError(
        fmt::format("{}: cannot open: {}", path, exists ? std::strerror(errno) : "no such file"));
  }
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw IoError(fmt::format("{}: read failed", path));
  return bytes.str();
}

// The first `count` bytes of a file (fewer when it is shorter).
inline std::string read_prefix(const std::string& path, std::size_t count) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return detail::read_whole_file(path);  // raises the IoError that says why
  std::string out(count, '\0');
  in.read(out.data(), static_cast<std::streamsize>(count));
  out.resize(static_cast<std::size_t>(in.gcount()));
  if (in.bad()) throw IoError(fmt::format("{}: read failed", path));
  return out;
}

// Calls write(file) on a temporary next to `path`, then renames it to `path`.
// `write` returns false (or throws) on failure; any failure removes the
// temporary and raises IoError naming `path`.
inline void write_atomically(const std::string& path,
                             const std::function<bool(std::FILE*)>& write) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.filename().empty()) throw IoError(fmt::format("{}: not a file name", path));
  const fs::path folder = target.parent_path();
  std::error_code ec;
  if (!folder.empty() && !fs::is_directory(folder, ec))
    throw IoError(
        fmt::format("{}: cannot write: folder '{}' does not exist", path, folder.string()));

  std::string tmp = (folder / ("." + target.filename().string() + ".tmp.XXXXXX")).string();
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0)
    throw IoError(fmt::format("{}: cannot create a temporary file in '{}': {}", path,
                              folder.empty() ? "." : folder.string(), std::strerror(errno)));
  std::FILE* file = ::fdopen(fd, "wb");
  if (file == nullptr) {
    const int err = errno;
    ::close(fd);
    std::remove(tmp.c_str());
    throw IoError(fmt::format("{}: cannot open a temporary file: {}", path, std::strerror(err)));
  }
  bool ok = false;
  try {
    ok = write(file);
  } catch (...) {
    std::fclose(file);
    std::remove(tmp.c_str());
    throw;
  }
  int err = 0;
  if (!ok || std::ferror(file)) err = errno ? errno : EIO;
  if (std::fflush(file) != 0 && err == 0) err = errno;
  if (err == 0 && ::fsync(::fileno(file)) != 0) err = errno;
  if (std::fclose(file) != 0 && err == 0) err = errno;
  if (err != 0) {
    std::remove(tmp.c_str());
    throw IoError(fmt::format("{}: write failed: {}", path, std::strerror(err)));
  }
  // mkstemp creates the file 0600; give it the usual permissions.
  fs::permissions(tmp,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                      fs::perms::others_read,
                  ec);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    std::remove(tmp.c_str());
    throw IoError(fmt::format("{}: cannot rename the temporary file into place: {}", path,
                              std::strerror(err)));
  }
}

}  // namespace flows::detail
