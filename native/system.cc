#include "system.h"

#include <sys/file.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

namespace kms {
namespace sys {

bool GetPeerCredentials(int fd, PeerCredentials* out, std::string* err) {
#if defined(__linux__) && defined(SO_PEERCRED)
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof(cred)) {
    *err = std::string("SO_PEERCRED failed: ") + strerror(errno);
    return false;
  }
  if (cred.pid <= 0) {
    *err = "SO_PEERCRED reported no peer process";
    return false;
  }
  out->uid = cred.uid;
  out->gid = cred.gid;
  out->pid = cred.pid;
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
      groups.resize(glen / sizeof(gid_t));
      out->groups.assign(groups.begin(), groups.end());
      return true;
    }
    if (errno != ERANGE) {
      *err = std::string("SO_PEERGROUPS failed: ") + strerror(errno);
      return false;
    }
    groups.resize(glen / sizeof(gid_t) + 16);  // the kernel told us how much room it needs
  }
  *err = "SO_PEERGROUPS kept growing";
  return false;
#else
  *err = "peer credentials (SO_PEERCRED) are not supported on this platform";
  return false;
#endif
}

bool HardenProcess(std::string* err) {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    *err = std::string("prctl(PR_SET_DUMPABLE, 0) failed: ") + strerror(errno);
    return false;
  }
  struct rlimit none = {0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) {
    *err = std::string("setrlimit(RLIMIT_CORE, 0) failed: ") + strerror(errno);
    return false;
  }
  return true;
}

bool LockExclusive(int fd, std::string* err) {
  if (flock(fd, LOCK_EX | LOCK_NB) == 0) return true;
  *err = errno == EWOULDBLOCK ? "held by another process" : std::string("flock failed: ") + strerror(errno);
  return false;
}

int Dumpable() { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0); }

bool SdNotify(const std::string& socket_path, const std::string& message, std::string* err) {
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || socket_path.size() >= sizeof(addr.sun_path)) {
    *err = "NOTIFY_SOCKET must be 1.." + std::to_string(sizeof(addr.sun_path) - 1) + " bytes";
    return false;
  }
  if (socket_path[0] != '/' && socket_path[0] != '@') {
    *err = "NOTIFY_SOCKET must be an absolute path or an abstract name starting with '@'";
    return false;
  }
  memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t addr_len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + socket_path.size());
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = std::string("socket() failed: ") + strerror(errno);
    return false;
  }
  ssize_t sent = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                        reinterpret_cast<struct sockaddr*>(&addr), addr_len);
  int saved = errno;
  close(fd);
  if (sent < 0 || static_cast<size_t>(sent) != message.size()) {
    *err = std::string("sendto NOTIFY_SOCKET failed: ") + strerror(saved);
    return false;
  }
  return true;
}

}  // namespace sys
}  // namespace kms
