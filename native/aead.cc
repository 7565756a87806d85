#include "aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/mman.h>

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#define KMS_HAVE_AESNI_PATH 1
#endif

#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

namespace kms {
namespace aead {
namespace {

// ---- AES-256 single-block encryption with the master key ----------------------------------
// The XAES key derivation needs two AES blocks under the master key per message. With AES-NI the
// expanded schedule lives in the locked slot; without it we fall back to a one-shot OpenSSL ECB.

#ifdef KMS_HAVE_AESNI_PATH
__attribute__((target("aes,sse2"))) inline __m128i ExpandA(__m128i t1, __m128i t2) {
  t2 = _mm_shuffle_epi32(t2, 0xff);
  __m128i t4 = _mm_slli_si128(t1, 4);
  t1 = _mm_xor_si128(t1, t4);
  t4 = _mm_slli_si128(t4, 4);
  t1 = _mm_xor_si128(t1, t4);
  t4 = _mm_slli_si128(t4, 4);
  t1 = _mm_xor_si128(t1, t4);
  return _mm_xor_si128(t1, t2);
}

__attribute__((target("aes,sse2"))) inline __m128i ExpandB(__m128i t1, __m128i t3) {
  __m128i t2 = _mm_shuffle_epi32(_mm_aeskeygenassist_si128(t1, 0x00), 0xaa);
  __m128i t4 = _mm_slli_si128(t3, 4);
  t3 = _mm_xor_si128(t3, t4);
  t4 = _mm_slli_si128(t4, 4);
  t3 = _mm_xor_si128(t3, t4);
  t4 = _mm_slli_si128(t4, 4);
  t3 = _mm_xor_si128(t3, t4);
  return _mm_xor_si128(t3, t2);
}

#define KMS_EXPAND_ROUND(rcon, i)                          \
  t1 = ExpandA(t1, _mm_aeskeygenassist_si128(t3, rcon));   \
  rk[i] = t1;                                              \
  t3 = ExpandB(t1, t3);                                    \
  rk[i + 1] = t3;

__attribute__((target("aes,sse2"))) void ExpandKey256(const uint8_t* key, uint8_t* out) {
  __m128i rk[15];
  __m128i t1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key));
  __m128i t3 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(key + 16));
  rk[0] = t1;
  rk[1] = t3;
  KMS_EXPAND_ROUND(0x01, 2)
  KMS_EXPAND_ROUND(0x02, 4)
  KMS_EXPAND_ROUND(0x04, 6)
  KMS_EXPAND_ROUND(0x08, 8)
  KMS_EXPAND_ROUND(0x10, 10)
  KMS_EXPAND_ROUND(0x20, 12)
  t1 = ExpandA(t1, _mm_aeskeygenassist_si128(t3, 0x40));
  rk[14] = t1;
  for (int i = 0; i < 15; ++i) _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * i), rk[i]);
  t1 = t3 = _mm_setzero_si128();
  OPENSSL_cleanse(rk, sizeof(rk));
}

// Encrypts two independent blocks at once (the two halves of the XAES derived key).
__attribute__((target("aes,sse2"))) void EncryptBlocks2(const uint8_t* schedule, const uint8_t* in0,
                                                         const uint8_t* in1, uint8_t* out0,
                                                         uint8_t* out1) {
  const __m128i* rk = reinterpret_cast<const __m128i*>(schedule);
  __m128i k = _mm_loadu_si128(rk);
  __m128i b0 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in0)), k);
  __m128i b1 = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in1)), k);
  for (int i = 1; i < 14; ++i) {
    k = _mm_loadu_si128(rk + i);
    b0 = _mm_aesenc_si128(b0, k);
    b1 = _mm_aesenc_si128(b1, k);
  }
  k = _mm_loadu_si128(rk + 14);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out0), _mm_aesenclast_si128(b0, k));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out1), _mm_aesenclast_si128(b1, k));
}

bool CpuHasAesNi() {
  static const bool has = __builtin_cpu_supports("aes");
  return has;
}
#endif

// OpenSSL fallback: ECB over `blocks` 16-byte blocks with the slot key.
bool EncryptBlocksEvp(const Slot* slot, const uint8_t* in, uint8_t* out, int blocks) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return false;
  int len = 0;
  bool ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_ecb(), nullptr, slot->key, nullptr) == 1 &&
            EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
            EVP_EncryptUpdate(ctx, out, &len, in, 16 * blocks) == 1;
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

bool EncryptTwoBlocks(const Slot* slot, const uint8_t in[32], uint8_t out[32]) {
#ifdef KMS_HAVE_AESNI_PATH
  if (slot->has_round_keys) {
    EncryptBlocks2(slot->round_keys, in, in + 16, out, out + 16);
    return true;
  }
#endif
  return EncryptBlocksEvp(slot, in, out, 2);
}

// K1 = dbl(L): shift left one bit, conditionally xor 0x87 (constant time).
void Double(const uint8_t l[16], uint8_t k1[16]) {
  uint8_t msb = l[0] >> 7;
  for (int i = 0; i < 15; ++i) k1[i] = static_cast<uint8_t>((l[i] << 1) | (l[i + 1] >> 7));
  k1[15] = static_cast<uint8_t>((l[15] << 1) ^ (0x87 & (0 - msb)));
}

// Derived key Kx = AES_K(M1 ^ K1) ‖ AES_K(M2 ^ K1), M_i = 0x00 ‖ i ‖ "X" ‖ 0x00 ‖ nonce[:12].
bool DeriveKey(const Slot* slot, const uint8_t* nonce, uint8_t derived[32]) {
  alignas(16) uint8_t m[32];
  m[0] = 0x00; m[1] = 0x01; m[2] = 'X'; m[3] = 0x00;
  memcpy(m + 4, nonce, 12);
  m[16] = 0x00; m[17] = 0x02; m[18] = 'X'; m[19] = 0x00;
  memcpy(m + 20, nonce, 12);
  for (int i = 0; i < 16; ++i) {
    m[i] ^= slot->k1[i];
    m[16 + i] ^= slot->k1[i];
  }
  bool ok = EncryptTwoBlocks(slot, m, derived);
  OPENSSL_cleanse(m, sizeof(m));
  return ok;
}

// ---- AES-256-GCM through OpenSSL's EVP (the AES-NI/VAES + carry-less multiply code paths) -----

const EVP_CIPHER* GcmCipher() {
  static const EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return cipher;
}

// One context per thread for per-message keys (XAES): the main thread and each pool thread.
EVP_CIPHER_CTX* ThreadContext() {
  static thread_local EVP_CIPHER_CTX* ctx = nullptr;
  if (ctx == nullptr) {
    ctx = EVP_CIPHER_CTX_new();
    if (ctx != nullptr && EVP_CipherInit_ex(ctx, GcmCipher(), nullptr, nullptr, nullptr, 1) != 1) {
      EVP_CIPHER_CTX_free(ctx);
      ctx = nullptr;
    }
  }
  return ctx;
}

bool FeedAad(EVP_CIPHER_CTX* ctx, const Aad& aad) {
  int len = 0;
  if (aad.a_len > 0 && EVP_CipherUpdate(ctx, nullptr, &len, aad.a, static_cast<int>(aad.a_len)) != 1) return false;
  if (aad.b_len > 0 && EVP_CipherUpdate(ctx, nullptr, &len, aad.b, static_cast<int>(aad.b_len)) != 1) return false;
  return true;
}

// key == nullptr reuses the key already set on ctx.
bool GcmSealWith(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* iv, const Aad& aad,
                 const uint8_t* pt, size_t pt_len, uint8_t* ct, uint8_t* tag) {
  int len = 0;
  if (EVP_CipherInit_ex(ctx, nullptr, nullptr, key, iv, 1) != 1) return false;
  if (!FeedAad(ctx, aad)) return false;
  if (pt_len > 0 && EVP_CipherUpdate(ctx, ct, &len, pt, static_cast<int>(pt_len)) != 1) return false;
  if (EVP_CipherFinal_ex(ctx, ct + pt_len, &len) != 1) return false;
  return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1;
}

bool GcmOpenWith(EVP_CIPHER_CTX* ctx, const uint8_t* key, const uint8_t* iv, const Aad& aad,
                 const uint8_t* ct, size_t ct_len, const uint8_t* tag, uint8_t* pt) {
  int len = 0;
  bool ok = EVP_CipherInit_ex(ctx, nullptr, nullptr, key, iv, 0) == 1 && FeedAad(ctx, aad) &&
            (ct_len == 0 || EVP_CipherUpdate(ctx, pt, &len, ct, static_cast<int>(ct_len)) == 1) &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, const_cast<uint8_t*>(tag)) == 1 &&
            EVP_CipherFinal_ex(ctx, pt + ct_len, &len) == 1;
  if (!ok && ct_len > 0) OPENSSL_cleanse(pt, ct_len);  // never hand out unauthenticated plaintext
  return ok;
}

EVP_CIPHER_CTX* SlotContext(Slot* slot) {
  if (slot->gcm_ctx == nullptr) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    if (ctx == nullptr) return nullptr;
    if (EVP_CipherInit_ex(ctx, GcmCipher(), nullptr, slot->key, nullptr, 1) != 1) {
      EVP_CIPHER_CTX_free(ctx);
      return nullptr;
    }
    slot->gcm_ctx = ctx;
  }
  return slot->gcm_ctx;
}

// ---- random pool ------------------------------------------------------------------------------

constexpr size_t kPoolBytes = 4096 - 16;
struct RandomPool {
  size_t used;      // 0 after fork (MADV_WIPEONFORK zeroes the page), which means "empty"
  uint8_t filled;
  uint8_t bytes[kPoolBytes];
};

RandomPool* ThreadPool() {
  static thread_local RandomPool* pool = nullptr;
  if (pool == nullptr) {
    void* mem = mmap(nullptr, sizeof(RandomPool), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return nullptr;
    mlock(mem, sizeof(RandomPool));
    madvise(mem, sizeof(RandomPool), MADV_DONTDUMP);
    madvise(mem, sizeof(RandomPool), MADV_WIPEONFORK);
    pool = static_cast<RandomPool*>(mem);
  }
  return pool;
}

}  // namespace

bool RandomBytes(uint8_t* out, size_t len) {
  if (len > kPoolBytes / 4) return RAND_bytes(out, static_cast<int>(len)) == 1;
  RandomPool* pool = ThreadPool();
  if (pool == nullptr) return RAND_bytes(out, static_cast<int>(len)) == 1;
  if (!pool->filled || pool->used + len > kPoolBytes) {
    if (RAND_bytes(pool->bytes, static_cast<int>(kPoolBytes)) != 1) return false;
    pool->filled = 1;
    pool->used = 0;
  }
  memcpy(out, pool->bytes + pool->used, len);
  OPENSSL_cleanse(pool->bytes + pool->used, len);  // each random byte is handed out once
  pool->used += len;
  return true;
}

void PrepareSlot(Slot* slot) {
  alignas(16) uint8_t zero[32] = {0};
  alignas(16) uint8_t l[32];
#ifdef KMS_HAVE_AESNI_PATH
  if (slot->key_len == 32 && CpuHasAesNi()) {
    ExpandKey256(slot->key, slot->round_keys);
    slot->has_round_keys = 1;
  }
#endif
  EncryptTwoBlocks(slot, zero, l);
  Double(l, slot->k1);
  OPENSSL_cleanse(l, sizeof(l));
}

bool GenerateKey(Slot* slot, size_t key_len) {
  if (RAND_bytes(slot->key, static_cast<int>(key_len)) != 1) return false;
  slot->key_len = static_cast<uint32_t>(key_len);
  PrepareSlot(slot);
  return true;
}

bool XaesSeal(Slot* slot, const uint8_t* nonce, const Aad& aad, const uint8_t* pt, size_t pt_len,
              uint8_t* ct, uint8_t* tag) {
  EVP_CIPHER_CTX* ctx = ThreadContext();
  alignas(16) uint8_t derived[32];
  bool ok = ctx != nullptr && DeriveKey(slot, nonce, derived) &&
            GcmSealWith(ctx, derived, nonce + 12, aad, pt, pt_len, ct, tag);
  OPENSSL_cleanse(derived, sizeof(derived));
  return ok;
}

bool XaesOpen(Slot* slot, const uint8_t* nonce, const Aad& aad, const uint8_t* ct, size_t ct_len,
              const uint8_t* tag, uint8_t* pt) {
  EVP_CIPHER_CTX* ctx = ThreadContext();
  alignas(16) uint8_t derived[32];
  bool ok = ctx != nullptr && DeriveKey(slot, nonce, derived) &&
            GcmOpenWith(ctx, derived, nonce + 12, aad, ct, ct_len, tag, pt);
  OPENSSL_cleanse(derived, sizeof(derived));
  if (!ok && ct_len > 0) OPENSSL_cleanse(pt, ct_len);
  return ok;
}

bool GcmSeal(Slot* slot, const uint8_t* iv, const Aad& aad, const uint8_t* pt, size_t pt_len,
             uint8_t* ct, uint8_t* tag) {
  EVP_CIPHER_CTX* ctx = SlotContext(slot);
  return ctx != nullptr && GcmSealWith(ctx, nullptr, iv, aad, pt, pt_len, ct, tag);
}

bool GcmOpen(Slot* slot, const uint8_t* iv, const Aad& aad, const uint8_t* ct, size_t ct_len,
             const uint8_t* tag, uint8_t* pt) {
  EVP_CIPHER_CTX* ctx = SlotContext(slot);
  if (ctx == nullptr) return false;
  return GcmOpenWith(ctx, nullptr, iv, aad, ct, ct_len, tag, pt);
}

bool GcmSealPrivate(const Slot* slot, const uint8_t* iv, const Aad& aad, const uint8_t* pt, size_t pt_len,
                    uint8_t* ct, uint8_t* tag) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  bool ok = ctx != nullptr && EVP_CipherInit_ex(ctx, GcmCipher(), nullptr, nullptr, nullptr, 1) == 1 &&
            GcmSealWith(ctx, slot->key, iv, aad, pt, pt_len, ct, tag);
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

bool GcmOpenPrivate(const Slot* slot, const uint8_t* iv, const Aad& aad, const uint8_t* ct, size_t ct_len,
                    const uint8_t* tag, uint8_t* pt) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  bool ok = ctx != nullptr && EVP_CipherInit_ex(ctx, GcmCipher(), nullptr, nullptr, nullptr, 0) == 1 &&
            GcmOpenWith(ctx, slot->key, iv, aad, ct, ct_len, tag, pt);
  EVP_CIPHER_CTX_free(ctx);
  return ok;
}

void XaesIntermediates(Slot* slot, const uint8_t* nonce, uint8_t l[16], uint8_t k1[16], uint8_t derived[32]) {
  alignas(16) uint8_t zero[32] = {0};
  alignas(16) uint8_t both[32];
  EncryptTwoBlocks(slot, zero, both);
  memcpy(l, both, 16);
  memcpy(k1, slot->k1, 16);
  DeriveKey(slot, nonce, derived);
}

}  // namespace aead
}  // namespace kms
