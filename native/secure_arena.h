// Locked, non-dumpable memory for key material: slots addressed by opaque handles, and transient
// secure buffers. Nothing here is ever copied into the JavaScript heap.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace kms {

constexpr size_t kMaxKeyBytes = 64;

// One key slot. Lives inside a locked arena chunk of 128 slots (at most 512 bytes each).
struct alignas(64) Slot {
  uint8_t round_keys[240];    // AES-256 encryption schedule (for the XAES CMAC derivation)
  uint8_t key[kMaxKeyBytes];  // raw material; only key_len bytes are meaningful
  uint8_t k1[16];             // XAES-256-GCM CMAC subkey K1 = dbl(AES_K(0^128))
  uint32_t key_len;
  uint32_t generation;        // bumped on every release so stale handles are refused
  uint32_t pins;              // async jobs holding the slot; release waits for zero
  uint8_t in_use;
  uint8_t doomed;             // released while pinned: wiped when the last pin goes
  uint8_t has_round_keys;     // false on CPUs without AES-NI (OpenSSL ECB fallback)
  EVP_CIPHER_CTX* gcm_ctx;    // lazily keyed AES-256-GCM context (plain GCM only)
};
static_assert(sizeof(Slot) <= 512, "a slot must fit in 512 bytes");

namespace arena {

// When false (the default) a slot that cannot be mlock()ed is an error, never a silent downgrade.
void SetAllowUnlocked(bool allow);
bool AllowUnlocked();
void SetMaxSlots(uint32_t max_slots);

// A fresh zeroed slot, or nullptr with *err naming the reason.
Slot* Allocate(double* handle, std::string* err);
// The live slot for a handle, or nullptr when the handle is unknown, released or doomed.
Slot* Lookup(double handle);
// Wipes and frees (or dooms, when an async job still holds it).
void Release(Slot* slot);
void Pin(Slot* slot);
void Unpin(Slot* slot);
void WipeAll();

size_t LockedBytes();
size_t SlotsInUse();

// Page-granular locked buffer with guard pages on both sides; nullptr with *err on failure.
void* SecureAlloc(size_t len, std::string* err);
// Called by the ArrayBuffer finalizer; the pages stay mapped while an async job holds them.
void SecureFree(void* ptr);
// Wipes the whole allocation holding ptr; false when ptr is not inside one of ours.
bool SecureWipe(const void* ptr);
// Async jobs hold the secure allocations their buffers live in (no-op for other memory).
void SecureHold(const void* ptr);
void SecureDrop(const void* ptr);

}  // namespace arena
}  // namespace kms
