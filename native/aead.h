// XAES-256-GCM (c2sp.org/XAES-256-GCM) and AES-256-GCM keyed by slots. Pure functions over raw
// pointers; argument checking happens in the binding layer.
#pragma once
#include <cstddef>
#include <cstdint>

#include "secure_arena.h"

namespace kms {
namespace aead {

constexpr size_t kXaesNonceBytes = 24;
constexpr size_t kGcmNonceBytes = 12;
constexpr size_t kTagBytes = 16;

// Additional data given in up to two pieces (the envelope authenticates header ‖ nonce, then context).
struct Aad {
  const uint8_t* a;
  size_t a_len;
  const uint8_t* b;
  size_t b_len;
};

// Fills key_len random bytes into the slot and precomputes its per-key state.
bool GenerateKey(Slot* slot, size_t key_len);
// Precomputes round keys and K1 after material has been written to slot->key.
void PrepareSlot(Slot* slot);

// Cryptographically random bytes, served from a per-thread pool refilled by RAND_bytes.
bool RandomBytes(uint8_t* out, size_t len);

bool XaesSeal(Slot* slot, const uint8_t* nonce, const Aad& aad, const uint8_t* pt, size_t pt_len,
              uint8_t* ct, uint8_t* tag);
// On failure the plaintext output is wiped.
bool XaesOpen(Slot* slot, const uint8_t* nonce, const Aad& aad, const uint8_t* ct, size_t ct_len,
              const uint8_t* tag, uint8_t* pt);

bool GcmSeal(Slot* slot, const uint8_t* iv, const Aad& aad, const uint8_t* pt, size_t pt_len,
             uint8_t* ct, uint8_t* tag);
bool GcmOpen(Slot* slot, const uint8_t* iv, const Aad& aad, const uint8_t* ct, size_t ct_len,
             const uint8_t* tag, uint8_t* pt);

// Same, with a private context (for libuv pool threads, which must not share the slot's).
bool GcmSealPrivate(const Slot* slot, const uint8_t* iv, const Aad& aad, const uint8_t* pt, size_t pt_len,
                    uint8_t* ct, uint8_t* tag);
bool GcmOpenPrivate(const Slot* slot, const uint8_t* iv, const Aad& aad, const uint8_t* ct, size_t ct_len,
                    const uint8_t* tag, uint8_t* pt);

// Test hook: the spec's intermediate values L, K1 and the derived key for a nonce.
void XaesIntermediates(Slot* slot, const uint8_t* nonce, uint8_t l[16], uint8_t k1[16], uint8_t derived[32]);

}  // namespace aead
}  // namespace kms
