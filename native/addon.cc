// N-API face of the addon. Every binding checks its arguments with the Arg* helpers below, which
// throw an error naming the argument and return false; no binding ever crashes on bad input.
#include <napi.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "aead.h"
#include "secure_arena.h"
#include "system.h"

namespace kms {
namespace {

using aead::Aad;
using aead::kGcmNonceBytes;
using aead::kTagBytes;
using aead::kXaesNonceBytes;

constexpr size_t kKeyBytes = 32;
constexpr size_t kMaxPayload = 0x7fffff00;  // EVP takes int lengths
constexpr size_t kWrappedBytes = kXaesNonceBytes + kKeyBytes + kTagBytes;

bool g_test_hooks = false;

struct Bytes {
  uint8_t* data;
  size_t len;
};

bool Throw(Napi::Env env, const std::string& message, bool range = false) {
  if (range) {
    Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  } else {
    Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  }
  return false;
}

bool ThrowError(Napi::Env env, const std::string& message) {
  Napi::Error::New(env, message).ThrowAsJavaScriptException();
  return false;
}

// A Uint8Array (Buffer included) argument.
bool ArgBytes(const Napi::CallbackInfo& info, size_t i, const char* name, Bytes* out) {
  napi_env env = info.Env();
  napi_value value = info[i];
  bool is_typed = false;
  if (i >= info.Length() || napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) {
    return Throw(info.Env(), std::string(name) + " must be a Buffer or Uint8Array");
  }
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint8_array) {
    return Throw(info.Env(), std::string(name) + " must be a Buffer or Uint8Array");
  }
  if (length > kMaxPayload) {
    return Throw(info.Env(), std::string(name) + " is " + std::to_string(length) + " bytes; the limit is " +
                                 std::to_string(kMaxPayload), true);
  }
  static uint8_t empty = 0;
  out->data = data != nullptr ? static_cast<uint8_t*>(data) : &empty;
  out->len = length;
  return true;
}

bool ArgBytesExact(const Napi::CallbackInfo& info, size_t i, const char* name, size_t len, Bytes* out) {
  if (!ArgBytes(info, i, name, out)) return false;
  if (out->len != len) {
    return Throw(info.Env(), std::string(name) + " must be " + std::to_string(len) + " bytes, got " +
                                 std::to_string(out->len), true);
  }
  return true;
}

bool ArgBytesAtLeast(const Napi::CallbackInfo& info, size_t i, const char* name, size_t len, Bytes* out) {
  if (!ArgBytes(info, i, name, out)) return false;
  if (out->len < len) {
    return Throw(info.Env(), std::string(name) + " must be at least " + std::to_string(len) + " bytes, got " +
                                 std::to_string(out->len), true);
  }
  return true;
}

bool ArgUint(const Napi::CallbackInfo& info, size_t i, const char* name, uint32_t min, uint32_t max, uint32_t* out) {
  if (i >= info.Length() || !info[i].IsNumber()) return Throw(info.Env(), std::string(name) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= min && v <= max) || static_cast<double>(static_cast<uint32_t>(v)) != v) {
    return Throw(info.Env(), std::string(name) + " must be an integer from " + std::to_string(min) + " to " +
                                 std::to_string(max), true);
  }
  *out = static_cast<uint32_t>(v);
  return true;
}

bool ArgSlot(const Napi::CallbackInfo& info, size_t i, const char* name, Slot** out) {
  if (i >= info.Length() || !info[i].IsNumber()) return Throw(info.Env(), std::string(name) + " must be a slot handle");
  *out = arena::Lookup(info[i].As<Napi::Number>().DoubleValue());
  if (*out == nullptr) return ThrowError(info.Env(), std::string(name) + " is not a live key slot (destroyed or unknown handle)");
  return true;
}

bool ArgFunction(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (i >= info.Length() || !info[i].IsFunction()) return Throw(info.Env(), std::string(name) + " must be a function");
  return true;
}

#define CHECK(expr) \
  if (!(expr)) return info.Env().Undefined()

// ---- memory and slots -------------------------------------------------------------------------

Napi::Value SetAllowUnlockedMemory(const Napi::CallbackInfo& info) {
  CHECK((info.Length() >= 1 && info[0].IsBoolean()) || Throw(info.Env(), "allow must be a boolean"));
  arena::SetAllowUnlocked(info[0].As<Napi::Boolean>().Value());
  return info.Env().Undefined();
}

Napi::Value SetMaxSlots(const Napi::CallbackInfo& info) {
  uint32_t max;
  CHECK(ArgUint(info, 0, "maxSlots", 1, 1u << 20, &max));
  arena::SetMaxSlots(max);
  return info.Env().Undefined();
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("lockedBytes", Napi::Number::New(info.Env(), static_cast<double>(arena::LockedBytes())));
  out.Set("slotsInUse", Napi::Number::New(info.Env(), static_cast<double>(arena::SlotsInUse())));
  out.Set("allowUnlocked", Napi::Boolean::New(info.Env(), arena::AllowUnlocked()));
  return out;
}

Napi::Value NewSlot(Napi::Env env, Slot** slot) {
  double handle;
  std::string err;
  *slot = arena::Allocate(&handle, &err);
  if (*slot == nullptr) {
    ThrowError(env, err);
    return env.Undefined();
  }
  return Napi::Number::New(env, handle);
}

Napi::Value SlotGenerate(const Napi::CallbackInfo& info) {
  Slot* slot;
  Napi::Value handle = NewSlot(info.Env(), &slot);
  if (slot == nullptr) return handle;
  if (!aead::GenerateKey(slot, kKeyBytes)) {
    arena::Release(slot);
    ThrowError(info.Env(), "RAND_bytes failed while generating key material");
    return info.Env().Undefined();
  }
  return handle;
}

Napi::Value SlotImport(const Napi::CallbackInfo& info) {
  Bytes material;
  CHECK(ArgBytesExact(info, 0, "material", kKeyBytes, &material));
  Slot* slot;
  Napi::Value handle = NewSlot(info.Env(), &slot);
  if (slot == nullptr) return handle;
  memcpy(slot->key, material.data, kKeyBytes);
  slot->key_len = kKeyBytes;
  aead::PrepareSlot(slot);
  return handle;
}

Napi::Value SlotExport(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes out;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytesExact(info, 1, "out", slot->key_len, &out));
  memcpy(out.data, slot->key, slot->key_len);
  return info.Env().Undefined();
}

Napi::Value SlotDestroy(const Napi::CallbackInfo& info) {
  CHECK((info.Length() >= 1 && info[0].IsNumber()) || Throw(info.Env(), "slot must be a slot handle"));
  Slot* slot = arena::Lookup(info[0].As<Napi::Number>().DoubleValue());
  if (slot == nullptr) return Napi::Boolean::New(info.Env(), false);
  arena::Release(slot);
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value SlotValid(const Napi::CallbackInfo& info) {
  bool valid = info.Length() >= 1 && info[0].IsNumber() &&
               arena::Lookup(info[0].As<Napi::Number>().DoubleValue()) != nullptr;
  return Napi::Boolean::New(info.Env(), valid);
}

Napi::Value WipeAll(const Napi::CallbackInfo& info) {
  arena::WipeAll();
  return info.Env().Undefined();
}

// ---- secure buffers ---------------------------------------------------------------------------

Napi::Value SecureBuffer(const Napi::CallbackInfo& info) {
  uint32_t len;
  CHECK(ArgUint(info, 0, "length", 1, 1u << 20, &len));
  std::string err;
  void* mem = arena::SecureAlloc(len, &err);
  if (mem == nullptr) {
    ThrowError(info.Env(), err);
    return info.Env().Undefined();
  }
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(info.Env(), mem, len, [](Napi::Env, void* data) { arena::SecureFree(data); });
  return Napi::Uint8Array::New(info.Env(), len, ab, 0);
}

Napi::Value SecureRelease(const Napi::CallbackInfo& info) {
  Bytes bytes;
  CHECK(ArgBytes(info, 0, "buffer", &bytes));
  Napi::ArrayBuffer ab = info[0].As<Napi::TypedArray>().ArrayBuffer();
  if (ab.IsDetached()) return info.Env().Undefined();
  // Only our own locked buffers: detaching anything else (Node's Buffer pool) would break the process.
  CHECK(arena::SecureWipe(bytes.data) || Throw(info.Env(), "buffer must be a buffer made by secureBuffer()"));
  ab.Detach();  // the finalizer unmaps the pages once V8 lets go of them
  return info.Env().Undefined();
}

// ---- XAES-256-GCM and AES-256-GCM -------------------------------------------------------------

// Detached form for known-answer tests: out = ciphertext ‖ tag, caller's nonce.
Napi::Value XaesSeal(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes out, nonce, pt, aad;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytes(info, 1, "out", &out));
  CHECK(ArgBytesExact(info, 2, "nonce", kXaesNonceBytes, &nonce));
  CHECK(ArgBytes(info, 3, "plaintext", &pt));
  CHECK(ArgBytes(info, 4, "aad", &aad));
  CHECK(out.len == pt.len + kTagBytes ||
        Throw(info.Env(), "out must be plaintext length + 16 bytes (" + std::to_string(pt.len + kTagBytes) + ")", true));
  bool ok = aead::XaesSeal(slot, nonce.data, Aad{aad.data, aad.len, nullptr, 0}, pt.data, pt.len, out.data, out.data + pt.len);
  CHECK(ok || ThrowError(info.Env(), "XAES-256-GCM seal failed in OpenSSL"));
  return info.Env().Undefined();
}

Napi::Value XaesOpen(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes out, nonce, ct, aad;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytes(info, 1, "out", &out));
  CHECK(ArgBytesExact(info, 2, "nonce", kXaesNonceBytes, &nonce));
  CHECK(ArgBytesAtLeast(info, 3, "ciphertext", kTagBytes, &ct));
  CHECK(ArgBytes(info, 4, "aad", &aad));
  size_t pt_len = ct.len - kTagBytes;
  CHECK(out.len == pt_len || Throw(info.Env(), "out must be ciphertext length - 16 bytes (" + std::to_string(pt_len) + ")", true));
  bool ok = aead::XaesOpen(slot, nonce.data, Aad{aad.data, aad.len, nullptr, 0}, ct.data, pt_len, ct.data + pt_len, out.data);
  return Napi::Boolean::New(info.Env(), ok);
}

// Envelope form: out[0, headerLen) holds the caller's header; a random nonce follows it, then
// ciphertext and tag. AAD = header ‖ nonce ‖ aad. Returns the bytes written in total.
Napi::Value XaesSealEnvelope(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes out, pt, aad;
  uint32_t header_len;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytes(info, 1, "out", &out));
  CHECK(ArgUint(info, 2, "headerLength", 0, 4096, &header_len));
  CHECK(ArgBytes(info, 3, "plaintext", &pt));
  CHECK(ArgBytes(info, 4, "aad", &aad));
  size_t total = header_len + kXaesNonceBytes + pt.len + kTagBytes;
  CHECK(out.len >= total || Throw(info.Env(), "out must be at least " + std::to_string(total) + " bytes", true));
  uint8_t* nonce = out.data + header_len;
  CHECK(aead::RandomBytes(nonce, kXaesNonceBytes) || ThrowError(info.Env(), "RAND_bytes failed"));
  uint8_t* ct = nonce + kXaesNonceBytes;
  bool ok = aead::XaesSeal(slot, nonce, Aad{out.data, header_len + kXaesNonceBytes, aad.data, aad.len}, pt.data, pt.len, ct, ct + pt.len);
  CHECK(ok || ThrowError(info.Env(), "XAES-256-GCM seal failed in OpenSSL"));
  return Napi::Number::New(info.Env(), static_cast<double>(total));
}

bool OpenEnvelope(Slot* slot, const uint8_t* env, size_t env_len, size_t header_len, const Bytes& aad, uint8_t* out) {
  const uint8_t* nonce = env + header_len;
  const uint8_t* ct = nonce + kXaesNonceBytes;
  size_t ct_len = env_len - header_len - kXaesNonceBytes - kTagBytes;
  return aead::XaesOpen(slot, nonce, Aad{env, header_len + kXaesNonceBytes, aad.data, aad.len}, ct, ct_len, ct + ct_len, out);
}

// Returns true and fills out[0, plaintext length) on success; false, out wiped, on any mismatch.
Napi::Value XaesOpenEnvelope(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes out, env, aad;
  uint32_t header_len;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytes(info, 1, "out", &out));
  CHECK(ArgBytes(info, 2, "envelope", &env));
  CHECK(ArgUint(info, 3, "headerLength", 0, 4096, &header_len));
  CHECK(ArgBytes(info, 4, "aad", &aad));
  size_t overhead = header_len + kXaesNonceBytes + kTagBytes;
  if (env.len < overhead) return Napi::Boolean::New(info.Env(), false);
  size_t pt_len = env.len - overhead;
  CHECK(out.len >= pt_len || Throw(info.Env(), "out must be at least " + std::to_string(pt_len) + " bytes", true));
  return Napi::Boolean::New(info.Env(), OpenEnvelope(slot, env.data, env.len, header_len, aad, out.data));
}

// Fresh data keys sealed in one call: keysOut gets count × keyBytes random bytes, envelopesOut
// count records of headerLen + 24 + keyBytes + 16 bytes. The header is read from record 0 and
// copied into every record.
Napi::Value GenerateDataKeys(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes keys, envs, aad;
  uint32_t header_len, key_bytes, count;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytes(info, 1, "keysOut", &keys));
  CHECK(ArgBytes(info, 2, "envelopesOut", &envs));
  CHECK(ArgUint(info, 3, "headerLength", 0, 4096, &header_len));
  CHECK(ArgUint(info, 4, "keyBytes", 1, 1024, &key_bytes));
  CHECK(ArgUint(info, 5, "count", 1, 65536, &count));
  CHECK(ArgBytes(info, 6, "aad", &aad));
  size_t record = header_len + kXaesNonceBytes + key_bytes + kTagBytes;
  CHECK(keys.len >= static_cast<size_t>(key_bytes) * count ||
        Throw(info.Env(), "keysOut must be at least " + std::to_string(static_cast<size_t>(key_bytes) * count) + " bytes", true));
  CHECK(envs.len >= record * count ||
        Throw(info.Env(), "envelopesOut must be at least " + std::to_string(record * count) + " bytes", true));
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t* rec = envs.data + record * i;
    uint8_t* key = keys.data + static_cast<size_t>(key_bytes) * i;
    if (i > 0) memcpy(rec, envs.data, header_len);
    uint8_t* nonce = rec + header_len;
    uint8_t* ct = nonce + kXaesNonceBytes;
    bool ok = aead::RandomBytes(key, key_bytes) && aead::RandomBytes(nonce, kXaesNonceBytes) &&
              aead::XaesSeal(slot, nonce, Aad{rec, header_len + kXaesNonceBytes, aad.data, aad.len}, key, key_bytes, ct, ct + key_bytes);
    if (!ok) {
      OPENSSL_cleanse(keys.data, keys.len);
      ThrowError(info.Env(), "data key generation failed in OpenSSL");
      return info.Env().Undefined();
    }
  }
  return info.Env().Undefined();
}

// count envelopes of envelopeLength bytes each, every one with its own header of headerLen bytes.
// All or nothing: on any failure every output byte is wiped and false returned.
Napi::Value XaesOpenEnvelopeBatch(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes out, envs, aad;
  uint32_t env_len, header_len, count;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytes(info, 1, "out", &out));
  CHECK(ArgBytes(info, 2, "envelopes", &envs));
  CHECK(ArgUint(info, 3, "envelopeLength", 1, 1u << 20, &env_len));
  CHECK(ArgUint(info, 4, "headerLength", 0, 4096, &header_len));
  CHECK(ArgUint(info, 5, "count", 1, 65536, &count));
  CHECK(ArgBytes(info, 6, "aad", &aad));
  size_t overhead = header_len + kXaesNonceBytes + kTagBytes;
  CHECK(env_len >= overhead || Throw(info.Env(), "envelopeLength must be at least " + std::to_string(overhead), true));
  CHECK(envs.len >= static_cast<size_t>(env_len) * count ||
        Throw(info.Env(), "envelopes must be at least " + std::to_string(static_cast<size_t>(env_len) * count) + " bytes", true));
  size_t pt_len = env_len - overhead;
  CHECK(out.len >= pt_len * count || Throw(info.Env(), "out must be at least " + std::to_string(pt_len * count) + " bytes", true));
  for (uint32_t i = 0; i < count; ++i) {
    if (!OpenEnvelope(slot, envs.data + static_cast<size_t>(env_len) * i, env_len, header_len, aad, out.data + pt_len * i)) {
      OPENSSL_cleanse(out.data, pt_len * count);
      return Napi::Boolean::New(info.Env(), false);
    }
  }
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value GcmSeal(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes out, iv, pt, aad;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytes(info, 1, "out", &out));
  CHECK(ArgBytesExact(info, 2, "iv", kGcmNonceBytes, &iv));
  CHECK(ArgBytes(info, 3, "plaintext", &pt));
  CHECK(ArgBytes(info, 4, "aad", &aad));
  CHECK(out.len == pt.len + kTagBytes ||
        Throw(info.Env(), "out must be plaintext length + 16 bytes (" + std::to_string(pt.len + kTagBytes) + ")", true));
  bool ok = aead::GcmSeal(slot, iv.data, Aad{aad.data, aad.len, nullptr, 0}, pt.data, pt.len, out.data, out.data + pt.len);
  CHECK(ok || ThrowError(info.Env(), "AES-256-GCM seal failed in OpenSSL"));
  return info.Env().Undefined();
}

Napi::Value GcmOpen(const Napi::CallbackInfo& info) {
  Slot* slot;
  Bytes out, iv, ct, aad;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytes(info, 1, "out", &out));
  CHECK(ArgBytesExact(info, 2, "iv", kGcmNonceBytes, &iv));
  CHECK(ArgBytesAtLeast(info, 3, "ciphertext", kTagBytes, &ct));
  CHECK(ArgBytes(info, 4, "aad", &aad));
  size_t pt_len = ct.len - kTagBytes;
  CHECK(out.len == pt_len || Throw(info.Env(), "out must be ciphertext length - 16 bytes (" + std::to_string(pt_len) + ")", true));
  return Napi::Boolean::New(info.Env(), aead::GcmOpen(slot, iv.data, Aad{aad.data, aad.len, nullptr, 0}, ct.data, pt_len, ct.data + pt_len, out.data));
}

// ---- async (libuv thread pool) ----------------------------------------------------------------

// Seals or opens one detached message off the event loop. The slot is pinned and every buffer
// referenced until the callback runs, so neither can vanish underneath the worker.
class AeadWorker : public Napi::AsyncWorker {
 public:
  AeadWorker(Napi::Function cb, Slot* slot, bool xaes, bool seal, Bytes out, Bytes nonce, Bytes in, Bytes aad,
             Napi::Object keep)
      : Napi::AsyncWorker(cb), slot_(slot), xaes_(xaes), seal_(seal), out_(out), nonce_(nonce), in_(in), aad_(aad) {
    keep_ = Napi::Persistent(keep);
    arena::Pin(slot_);
    for (const Bytes* b : {&out_, &nonce_, &in_, &aad_}) arena::SecureHold(b->data);
  }
  ~AeadWorker() override {
    for (const Bytes* b : {&out_, &nonce_, &in_, &aad_}) arena::SecureDrop(b->data);
    arena::Unpin(slot_);
  }

  void Execute() override {
    Aad aad{aad_.data, aad_.len, nullptr, 0};
    if (seal_) {
      ok_ = xaes_ ? aead::XaesSeal(slot_, nonce_.data, aad, in_.data, in_.len, out_.data, out_.data + in_.len)
                  : SealGcmFresh(aad);
      if (!ok_) SetError("seal failed in OpenSSL");
    } else {
      size_t pt_len = in_.len - kTagBytes;
      ok_ = xaes_ ? aead::XaesOpen(slot_, nonce_.data, aad, in_.data, pt_len, in_.data + pt_len, out_.data)
                  : OpenGcmFresh(aad, pt_len);
    }
  }

  void OnOK() override {
    Callback().Call({Env().Null(), Napi::Boolean::New(Env(), ok_)});
  }

 private:
  // The slot's shared GCM context belongs to the main thread; pool threads key a private one.
  bool SealGcmFresh(const Aad& aad) {
    return aead::GcmSealPrivate(slot_, nonce_.data, aad, in_.data, in_.len, out_.data, out_.data + in_.len);
  }
  bool OpenGcmFresh(const Aad& aad, size_t pt_len) {
    return aead::GcmOpenPrivate(slot_, nonce_.data, aad, in_.data, pt_len, in_.data + pt_len, out_.data);
  }

  Slot* slot_;
  bool xaes_, seal_;
  Bytes out_, nonce_, in_, aad_;
  Napi::ObjectReference keep_;
  bool ok_ = false;
};

// aeadAsync(algorithm 1=XAES 2=GCM, seal boolean, slot, out, nonce, input, aad, callback(err, ok))
Napi::Value AeadAsync(const Napi::CallbackInfo& info) {
  uint32_t alg;
  Slot* slot;
  Bytes out, nonce, in, aad;
  CHECK(ArgUint(info, 0, "algorithm", 1, 2, &alg));
  CHECK(info[1].IsBoolean() || Throw(info.Env(), "seal must be a boolean"));
  bool seal = info[1].As<Napi::Boolean>().Value();
  bool xaes = alg == 1;
  CHECK(ArgSlot(info, 2, "slot", &slot));
  CHECK(ArgBytes(info, 3, "out", &out));
  CHECK(ArgBytesExact(info, 4, "nonce", xaes ? kXaesNonceBytes : kGcmNonceBytes, &nonce));
  CHECK(seal ? ArgBytes(info, 5, "input", &in) : ArgBytesAtLeast(info, 5, "input", kTagBytes, &in));
  CHECK(ArgBytes(info, 6, "aad", &aad));
  CHECK(ArgFunction(info, 7, "callback"));
  size_t want = seal ? in.len + kTagBytes : in.len - kTagBytes;
  CHECK(out.len == want || Throw(info.Env(), "out must be " + std::to_string(want) + " bytes", true));
  Napi::Object keep = Napi::Object::New(info.Env());
  keep.Set("out", info[3]);
  keep.Set("nonce", info[4]);
  keep.Set("input", info[5]);
  keep.Set("aad", info[6]);
  auto* worker = new AeadWorker(info[7].As<Napi::Function>(), slot, xaes, seal, out, nonce, in, aad, keep);
  worker->Queue();
  return info.Env().Undefined();
}

// scrypt(passphrase, salt) straight into a new slot: the stretched root key never touches the JS heap.
Napi::Value SlotFromScrypt(const Napi::CallbackInfo& info) {
  Bytes passphrase, salt;
  uint32_t log2n, r, p;
  CHECK(ArgBytes(info, 0, "passphrase", &passphrase));
  CHECK(ArgBytesAtLeast(info, 1, "salt", 16, &salt));
  CHECK(ArgUint(info, 2, "log2N", 10, 22, &log2n));
  CHECK(ArgUint(info, 3, "r", 1, 32, &r));
  CHECK(ArgUint(info, 4, "p", 1, 16, &p));
  CHECK(passphrase.len > 0 || Throw(info.Env(), "passphrase must not be empty", true));
  Slot* slot;
  Napi::Value handle = NewSlot(info.Env(), &slot);
  if (slot == nullptr) return handle;
  uint64_t mem = (static_cast<uint64_t>(128) * r << log2n) + (1u << 20) * 64;
  if (EVP_PBE_scrypt(reinterpret_cast<const char*>(passphrase.data), passphrase.len, salt.data, salt.len,
                     static_cast<uint64_t>(1) << log2n, r, p, mem, slot->key, kKeyBytes) != 1) {
    arena::Release(slot);
    ThrowError(info.Env(), "scrypt failed in OpenSSL");
    return info.Env().Undefined();
  }
  slot->key_len = kKeyBytes;
  aead::PrepareSlot(slot);
  return handle;
}

// ---- wrapping one slot under another ----------------------------------------------------------

// out (72 bytes) = nonce ‖ XAES-256-GCM(wrapper, target material, aad) ‖ tag.
Napi::Value WrapSlot(const Napi::CallbackInfo& info) {
  Slot *wrapper, *target;
  Bytes out, aad;
  CHECK(ArgSlot(info, 0, "wrappingSlot", &wrapper));
  CHECK(ArgSlot(info, 1, "targetSlot", &target));
  CHECK(ArgBytesExact(info, 2, "out", kWrappedBytes, &out));
  CHECK(ArgBytes(info, 3, "aad", &aad));
  CHECK(target->key_len == kKeyBytes || ThrowError(info.Env(), "targetSlot does not hold a 32-byte key"));
  CHECK(aead::RandomBytes(out.data, kXaesNonceBytes) || ThrowError(info.Env(), "RAND_bytes failed"));
  uint8_t* ct = out.data + kXaesNonceBytes;
  bool ok = aead::XaesSeal(wrapper, out.data, Aad{aad.data, aad.len, nullptr, 0}, target->key, kKeyBytes, ct, ct + kKeyBytes);
  CHECK(ok || ThrowError(info.Env(), "wrap failed in OpenSSL"));
  return info.Env().Undefined();
}

// Decrypts straight into a new slot; null (no detail, no oracle) when authentication fails.
Napi::Value UnwrapSlot(const Napi::CallbackInfo& info) {
  Slot* wrapper;
  Bytes wrapped, aad;
  CHECK(ArgSlot(info, 0, "wrappingSlot", &wrapper));
  CHECK(ArgBytesExact(info, 1, "wrapped", kWrappedBytes, &wrapped));
  CHECK(ArgBytes(info, 2, "aad", &aad));
  Slot* slot;
  Napi::Value handle = NewSlot(info.Env(), &slot);
  if (slot == nullptr) return handle;
  const uint8_t* ct = wrapped.data + kXaesNonceBytes;
  if (!aead::XaesOpen(wrapper, wrapped.data, Aad{aad.data, aad.len, nullptr, 0}, ct, kKeyBytes, ct + kKeyBytes, slot->key)) {
    arena::Release(slot);
    return info.Env().Null();
  }
  slot->key_len = kKeyBytes;
  aead::PrepareSlot(slot);
  return handle;
}

// ---- operating system -------------------------------------------------------------------------

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  uint32_t fd;
  CHECK(ArgUint(info, 0, "fd", 0, 0x7fffffff, &fd));
  sys::PeerCredentials cred;
  std::string err;
  CHECK(sys::GetPeerCredentials(static_cast<int>(fd), &cred, &err) || ThrowError(info.Env(), err));
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  out.Set("pid", Napi::Number::New(env, cred.pid));
  Napi::Array groups = Napi::Array::New(env, cred.groups.size());
  for (size_t i = 0; i < cred.groups.size(); ++i) groups.Set(static_cast<uint32_t>(i), Napi::Number::New(env, cred.groups[i]));
  out.Set("groups", groups);
  return out;
}

Napi::Value LockFile(const Napi::CallbackInfo& info) {
  uint32_t fd;
  CHECK(ArgUint(info, 0, "fd", 0, 0x7fffffff, &fd));
  std::string err;
  CHECK(sys::LockExclusive(static_cast<int>(fd), &err) || ThrowError(info.Env(), err));
  return info.Env().Undefined();
}

Napi::Value HardenProcess(const Napi::CallbackInfo& info) {
  // An old caller asking for mlockall must hear it is gone, not get less than it asked for.
  CHECK(info.Length() == 0 ||
        Throw(info.Env(), "hardenProcess takes no arguments: mlockall was removed (V8's madvise(MADV_DONTNEED) "
                          "fails with EINVAL on locked pages and V8 aborts); key slots are always locked"));
  std::string err;
  CHECK(sys::HardenProcess(&err) || ThrowError(info.Env(), err));
  return info.Env().Undefined();
}

Napi::Value Dumpable(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), sys::Dumpable()); }

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  CHECK((info.Length() >= 1 && info[0].IsString()) || Throw(info.Env(), "socketPath must be a string"));
  CHECK((info.Length() >= 2 && info[1].IsString()) || Throw(info.Env(), "message must be a string"));
  std::string err;
  CHECK(sys::SdNotify(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(), &err) ||
        ThrowError(info.Env(), err));
  return info.Env().Undefined();
}

// Known-answer tests only; refused unless RUSTFS_KMS_NATIVE_TEST_HOOKS=1 was set at load.
Napi::Value XaesIntermediates(const Napi::CallbackInfo& info) {
  CHECK(g_test_hooks || ThrowError(info.Env(), "xaesIntermediates is a test hook; set RUSTFS_KMS_NATIVE_TEST_HOOKS=1"));
  Slot* slot;
  Bytes nonce;
  CHECK(ArgSlot(info, 0, "slot", &slot));
  CHECK(ArgBytesExact(info, 1, "nonce", kXaesNonceBytes, &nonce));
  uint8_t l[16], k1[16], derived[32];
  aead::XaesIntermediates(slot, nonce.data, l, k1, derived);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("L", Napi::Buffer<uint8_t>::Copy(info.Env(), l, 16));
  out.Set("K1", Napi::Buffer<uint8_t>::Copy(info.Env(), k1, 16));
  out.Set("derivedKey", Napi::Buffer<uint8_t>::Copy(info.Env(), derived, 32));
  OPENSSL_cleanse(derived, sizeof(derived));
  return out;
}

// The arena is process-wide and unlocked, so exactly one JavaScript environment (the main thread,
// or one worker at a time) may use it; when that environment ends every slot is wiped.
napi_env g_owner = nullptr;

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (g_owner != nullptr && g_owner != static_cast<napi_env>(env)) {
    Napi::Error::New(env, "the rustfs-kms native addon is in use by another thread of this process; "
                          "it serves one JavaScript thread at a time").ThrowAsJavaScriptException();
    return exports;
  }
  g_owner = env;
  const char* hooks = getenv("RUSTFS_KMS_NATIVE_TEST_HOOKS");
  g_test_hooks = hooks != nullptr && strcmp(hooks, "1") == 0;
  env.AddCleanupHook([]() {
    arena::WipeAll();
    g_owner = nullptr;
  });
#define EXPORT(name, fn) exports.Set(name, Napi::Function::New(env, fn, name))
  EXPORT("setAllowUnlockedMemory", SetAllowUnlockedMemory);
  EXPORT("setMaxSlots", SetMaxSlots);
  EXPORT("stats", Stats);
  EXPORT("slotGenerate", SlotGenerate);
  EXPORT("slotImport", SlotImport);
  EXPORT("slotExport", SlotExport);
  EXPORT("slotDestroy", SlotDestroy);
  EXPORT("slotValid", SlotValid);
  EXPORT("wipeAll", WipeAll);
  EXPORT("secureBuffer", SecureBuffer);
  EXPORT("secureRelease", SecureRelease);
  EXPORT("xaesSeal", XaesSeal);
  EXPORT("xaesOpen", XaesOpen);
  EXPORT("xaesSealEnvelope", XaesSealEnvelope);
  EXPORT("xaesOpenEnvelope", XaesOpenEnvelope);
  EXPORT("xaesOpenEnvelopeBatch", XaesOpenEnvelopeBatch);
  EXPORT("generateDataKeys", GenerateDataKeys);
  EXPORT("gcmSeal", GcmSeal);
  EXPORT("gcmOpen", GcmOpen);
  EXPORT("aeadAsync", AeadAsync);
  EXPORT("wrapSlot", WrapSlot);
  EXPORT("unwrapSlot", UnwrapSlot);
  EXPORT("peerCredentials", PeerCredentials);
  EXPORT("slotFromScrypt", SlotFromScrypt);
  EXPORT("lockFile", LockFile);
  EXPORT("hardenProcess", HardenProcess);
  EXPORT("dumpable", Dumpable);
  EXPORT("sdNotify", SdNotify);
  EXPORT("xaesIntermediates", XaesIntermediates);
#undef EXPORT
  return exports;
}

}  // namespace
}  // namespace kms

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return kms::Init(env, exports); }
NODE_API_MODULE(rustfs_kms_native, InitModule)
