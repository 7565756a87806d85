// Operating-system facilities the daemon needs without a library: peer credentials of a Unix
// socket, process hardening, and systemd's notify protocol.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kms {
namespace sys {

struct PeerCredentials {
  uint32_t uid;
  uint32_t gid;
  int32_t pid;
  std::vector<uint32_t> groups;
};

// Kernel-reported identity of the peer of a connected Unix socket. False with *err on any doubt:
// there is no fallback to this process's own identity.
bool GetPeerCredentials(int fd, PeerCredentials* out, std::string* err);

// prctl(PR_SET_DUMPABLE, 0) and RLIMIT_CORE = 0. No mlockall: V8 aborts when madvise() fails on locked pages.
bool HardenProcess(std::string* err);
int Dumpable();

// flock(LOCK_EX | LOCK_NB): false with *err when another process holds the lock.
bool LockExclusive(int fd, std::string* err);

// One datagram to $NOTIFY_SOCKET (a path, or an abstract name starting with '@').
bool SdNotify(const std::string& socket_path, const std::string& message, std::string* err);

}  // namespace sys
}  // namespace kms
