#include "secure_arena.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

namespace kms {
namespace arena {
namespace {

constexpr uint32_t kSlotsPerChunk = 128;       // 64 KiB of slots per chunk
constexpr double kIndexSpace = 1048576.0;      // handle = generation * 2^20 + index

struct Chunk {
  uint8_t* base;      // includes the leading guard page
  size_t total;       // guard + data + guard
  Slot* slots;
};

bool g_allow_unlocked = false;
uint32_t g_max_slots = 131072;
std::vector<Chunk> g_chunks;
std::vector<uint32_t> g_free;
size_t g_locked_bytes = 0;
size_t g_in_use = 0;

// Secure buffers by data address: length, async holds, and whether JS has let go of it.
struct SecureBlock {
  size_t len;
  uint32_t holds;
  bool finalized;
};
std::map<const uint8_t*, SecureBlock> g_secure;

size_t PageSize() {
  static size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

size_t RoundToPages(size_t len) {
  size_t page = PageSize();
  return (len + page - 1) / page * page;
}

// Maps guard | data | guard, locks and hides the data pages. Returns the data pointer.
uint8_t* MapLocked(size_t data_len, uint8_t** base_out, size_t* total_out, std::string* err) {
  size_t page = PageSize();
  size_t total = data_len + 2 * page;
  void* base = mmap(nullptr, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) {
    *err = std::string("mmap of locked key memory failed: ") + strerror(errno);
    return nullptr;
  }
  uint8_t* data = static_cast<uint8_t*>(base) + page;
  if (mprotect(data, data_len, PROT_READ | PROT_WRITE) != 0) {
    *err = std::string("mprotect of locked key memory failed: ") + strerror(errno);
    munmap(base, total);
    return nullptr;
  }
  if (mlock(data, data_len) != 0) {
    if (!g_allow_unlocked) {
      *err = std::string("mlock of ") + std::to_string(data_len) +
             " bytes of key memory failed (" + strerror(errno) +
             "); raise RLIMIT_MEMLOCK (systemd LimitMEMLOCK) or explicitly allow unlocked memory";
      munmap(base, total);
      return nullptr;
    }
  } else {
    g_locked_bytes += data_len;
  }
  madvise(data, data_len, MADV_DONTDUMP);
  madvise(data, data_len, MADV_WIPEONFORK);  // a forked child sees zeros, never keys
  *base_out = static_cast<uint8_t*>(base);
  *total_out = total;
  return data;
}

void UnmapLocked(uint8_t* data, size_t data_len, uint8_t* base, size_t total) {
  OPENSSL_cleanse(data, data_len);
  if (munlock(data, data_len) == 0) g_locked_bytes -= data_len;
  munmap(base, total);
}

bool AddChunk(std::string* err) {
  Chunk chunk;
  uint8_t* data = MapLocked(kSlotsPerChunk * sizeof(Slot), &chunk.base, &chunk.total, err);
  if (data == nullptr) return false;
  chunk.slots = reinterpret_cast<Slot*>(data);
  uint32_t first = static_cast<uint32_t>(g_chunks.size()) * kSlotsPerChunk;
  g_chunks.push_back(chunk);
  for (uint32_t i = kSlotsPerChunk; i > 0; --i) g_free.push_back(first + i - 1);
  return true;
}

Slot* SlotAt(uint32_t index) {
  uint32_t chunk = index / kSlotsPerChunk;
  if (chunk >= g_chunks.size()) return nullptr;
  return &g_chunks[chunk].slots[index % kSlotsPerChunk];
}

void Wipe(Slot* slot) {
  if (slot->gcm_ctx != nullptr) EVP_CIPHER_CTX_free(slot->gcm_ctx);  // cleanses its key schedule
  uint32_t generation = slot->generation;
  OPENSSL_cleanse(slot, sizeof(Slot));
  slot->generation = generation + 1;
}

uint32_t IndexOf(Slot* slot) {
  for (uint32_t c = 0; c < g_chunks.size(); ++c) {
    Slot* first = g_chunks[c].slots;
    if (slot >= first && slot < first + kSlotsPerChunk) {
      return c * kSlotsPerChunk + static_cast<uint32_t>(slot - first);
    }
  }
  return UINT32_MAX;
}

}  // namespace

void SetAllowUnlocked(bool allow) { g_allow_unlocked = allow; }
bool AllowUnlocked() { return g_allow_unlocked; }
void SetMaxSlots(uint32_t max_slots) { g_max_slots = max_slots; }

Slot* Allocate(double* handle, std::string* err) {
  if (g_in_use >= g_max_slots) {
    *err = "key slot limit reached (" + std::to_string(g_max_slots) + " slots)";
    return nullptr;
  }
  if (g_free.empty() && !AddChunk(err)) return nullptr;
  uint32_t index = g_free.back();
  g_free.pop_back();
  Slot* slot = SlotAt(index);
  slot->in_use = 1;
  ++g_in_use;
  *handle = static_cast<double>(slot->generation) * kIndexSpace + index;
  return slot;
}

Slot* Lookup(double handle) {
  if (!(handle >= 0) || handle > 9007199254740991.0) return nullptr;
  uint64_t h = static_cast<uint64_t>(handle);
  if (static_cast<double>(h) != handle) return nullptr;
  uint32_t index = static_cast<uint32_t>(h % static_cast<uint64_t>(kIndexSpace));
  uint64_t generation = h / static_cast<uint64_t>(kIndexSpace);
  Slot* slot = SlotAt(index);
  if (slot == nullptr || !slot->in_use || slot->doomed || slot->generation != generation) return nullptr;
  return slot;
}

void Release(Slot* slot) {
  if (slot->pins > 0) {
    slot->doomed = 1;
    return;
  }
  uint32_t index = IndexOf(slot);
  Wipe(slot);
  --g_in_use;
  g_free.push_back(index);
}

void Pin(Slot* slot) { ++slot->pins; }

void Unpin(Slot* slot) {
  if (slot->pins == 0) return;
  if (--slot->pins == 0 && slot->doomed) Release(slot);
}

void WipeAll() {
  for (auto& chunk : g_chunks) {
    for (uint32_t i = 0; i < kSlotsPerChunk; ++i) {
      Slot* slot = &chunk.slots[i];
      if (slot->in_use && !slot->doomed) Release(slot);  // pinned slots go when their job ends
    }
  }
}

size_t LockedBytes() { return g_locked_bytes; }
size_t SlotsInUse() { return g_in_use; }

void* SecureAlloc(size_t len, std::string* err) {
  uint8_t* base;
  size_t total;
  size_t data_len = RoundToPages(len == 0 ? 1 : len);
  uint8_t* data = MapLocked(data_len, &base, &total, err);
  if (data != nullptr) g_secure[data] = SecureBlock{data_len, 0, false};
  return data;
}

namespace {
std::map<const uint8_t*, SecureBlock>::iterator FindBlock(const void* ptr) {
  const uint8_t* p = static_cast<const uint8_t*>(ptr);
  auto it = g_secure.upper_bound(p);
  if (it == g_secure.begin()) return g_secure.end();
  --it;
  return p < it->first + it->second.len ? it : g_secure.end();
}

void Unmap(std::map<const uint8_t*, SecureBlock>::iterator it) {
  uint8_t* data = const_cast<uint8_t*>(it->first);
  size_t page = PageSize();
  size_t data_len = it->second.len;
  g_secure.erase(it);
  UnmapLocked(data, data_len, data - page, data_len + 2 * page);
}
}  // namespace

void SecureFree(void* ptr) {
  auto it = FindBlock(ptr);
  if (it == g_secure.end()) return;
  it->second.finalized = true;
  if (it->second.holds == 0) Unmap(it);
}

bool SecureWipe(const void* ptr) {
  auto it = FindBlock(ptr);
  if (it == g_secure.end()) return false;
  OPENSSL_cleanse(const_cast<uint8_t*>(it->first), it->second.len);
  return true;
}

void SecureHold(const void* ptr) {
  auto it = FindBlock(ptr);
  if (it != g_secure.end()) ++it->second.holds;
}

void SecureDrop(const void* ptr) {
  auto it = FindBlock(ptr);
  if (it == g_secure.end() || it->second.holds == 0) return;
  if (--it->second.holds == 0 && it->second.finalized) Unmap(it);
}

}  // namespace arena
}  // namespace kms
