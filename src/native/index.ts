// Typed face of the native addon (native/*.cc). Key material never crosses this boundary: JavaScript
// holds slot handles, and every function that takes one refuses a destroyed or unknown handle.
import { createRequire } from 'node:module';
import { PACKAGE_ROOT } from '../package-info.js';

/** Opaque reference to key material held in locked native memory. */
export type SlotHandle = number & { readonly __slot: unique symbol };

export const XAES_NONCE_BYTES = 24;
export const GCM_NONCE_BYTES = 12;
export const TAG_BYTES = 16;
export const KEY_BYTES = 32;
/** nonce ‖ sealed 32-byte key ‖ tag, as produced by {@link NativeBinding.wrapSlot}. */
export const WRAPPED_KEY_BYTES = XAES_NONCE_BYTES + KEY_BYTES + TAG_BYTES;

export interface PeerCredentials {
  uid: number;
  gid: number;
  pid: number;
  /** Supplementary groups (SO_PEERGROUPS). */
  groups: number[];
}

export interface NativeStats {
  lockedBytes: number;
  slotsInUse: number;
  allowUnlocked: boolean;
}

export interface NativeBinding {
  /** Allow slots in memory that could not be mlock()ed (operator's explicit --allow-unlocked-memory). */
  setAllowUnlockedMemory(allow: boolean): void;
  setMaxSlots(maxSlots: number): void;
  stats(): NativeStats;

  /** 32 fresh random bytes straight into a new slot. */
  slotGenerate(): SlotHandle;
  /** Copies 32 bytes from a secure buffer into a new slot; release the buffer right after. */
  slotImport(material: Uint8Array): SlotHandle;
  /** Copies a slot's material into a secure buffer, for libraries that must see the bytes (PKCS#11 wrap). */
  slotExport(slot: SlotHandle, out: Uint8Array): void;
  /** Wipes the slot; false when the handle was already gone. */
  slotDestroy(slot: SlotHandle): boolean;
  slotValid(slot: SlotHandle): boolean;
  wipeAll(): void;

  /** Locked, non-dumpable memory outside the JS heap; wipe it with {@link secureRelease}. */
  secureBuffer(length: number): Uint8Array;
  secureRelease(buffer: Uint8Array): void;

  /** Detached XAES-256-GCM: out = ciphertext ‖ tag (plaintext.length + 16 bytes). */
  xaesSeal(slot: SlotHandle, out: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): void;
  /** Detached open; false (and out wiped) when anything does not authenticate. */
  xaesOpen(slot: SlotHandle, out: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): boolean;
  /**
   * Envelope seal: out[0, headerLength) is the caller's header; a random 24-byte nonce, the
   * ciphertext and the tag follow. AAD = header ‖ nonce ‖ aad. Returns the bytes written.
   */
  xaesSealEnvelope(slot: SlotHandle, out: Uint8Array, headerLength: number, plaintext: Uint8Array, aad: Uint8Array): number;
  xaesOpenEnvelope(slot: SlotHandle, out: Uint8Array, envelope: Uint8Array, headerLength: number, aad: Uint8Array): boolean;
  /** count envelopes of envelopeLength bytes each; all or nothing. */
  xaesOpenEnvelopeBatch(
    slot: SlotHandle, out: Uint8Array, envelopes: Uint8Array, envelopeLength: number,
    headerLength: number, count: number, aad: Uint8Array,
  ): boolean;
  /**
   * count fresh random keys of keyBytes into keysOut and their envelopes into envelopesOut
   * (records of headerLength + 24 + keyBytes + 16 bytes; the header is read from record 0).
   */
  generateDataKeys(
    slot: SlotHandle, keysOut: Uint8Array, envelopesOut: Uint8Array, headerLength: number,
    keyBytes: number, count: number, aad: Uint8Array,
  ): void;

  /** Detached AES-256-GCM with the slot's key: out = ciphertext ‖ tag. */
  gcmSeal(slot: SlotHandle, out: Uint8Array, iv: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): void;
  gcmOpen(slot: SlotHandle, out: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): boolean;
  aeadAsync(
    algorithm: 1 | 2, seal: boolean, slot: SlotHandle, out: Uint8Array, nonce: Uint8Array,
    input: Uint8Array, aad: Uint8Array, callback: (err: Error | null, ok: boolean) => void,
  ): void;

  /** out (72 bytes) = XAES-256-GCM of targetSlot's material under wrappingSlot, bound to aad. */
  wrapSlot(wrappingSlot: SlotHandle, targetSlot: SlotHandle, out: Uint8Array, aad: Uint8Array): void;
  /** A new slot holding the unwrapped material, or null when the blob does not authenticate. */
  unwrapSlot(wrappingSlot: SlotHandle, wrapped: Uint8Array, aad: Uint8Array): SlotHandle | null;

  /** scrypt(passphrase, salt, N = 2^log2N, r, p) straight into a new slot. */
  slotFromScrypt(passphrase: Uint8Array, salt: Uint8Array, log2N: number, r: number, p: number): SlotHandle;
  /** flock(LOCK_EX | LOCK_NB) on an open file; throws "held by another process" when taken. */
  lockFile(fd: number): void;

  /** SO_PEERCRED + SO_PEERGROUPS of a connected Unix socket; throws rather than guess. */
  peerCredentials(fd: number): PeerCredentials;
  /** PR_SET_DUMPABLE 0 and RLIMIT_CORE 0 (key slots are locked on their own; no mlockall, V8 aborts under it). */
  hardenProcess(): void;
  dumpable(): number;
  sdNotify(socketPath: string, message: string): void;

  /** Test hook (RUSTFS_KMS_NATIVE_TEST_HOOKS=1 at load): the spec's intermediate values. */
  xaesIntermediates(slot: SlotHandle, nonce: Uint8Array): { L: Buffer; K1: Buffer; derivedKey: Buffer };
}

const require = createRequire(import.meta.url);
const load = require('node-gyp-build') as (dir: string) => unknown;

/** The loaded addon: a prebuild from prebuilds/ when one matches, else build/Release. */
export const native = load(PACKAGE_ROOT) as NativeBinding;

/** Promise form of {@link NativeBinding.aeadAsync}, for payloads big enough to leave the event loop. */
export function aeadAsync(
  algorithm: 'xaes' | 'gcm', seal: boolean, slot: SlotHandle, out: Uint8Array, nonce: Uint8Array,
  input: Uint8Array, aad: Uint8Array,
): Promise<boolean> {
  return new Promise((resolve, reject) => {
    native.aeadAsync(algorithm === 'xaes' ? 1 : 2, seal, slot, out, nonce, input, aad, (err, ok) => {
      if (err) reject(err);
      else resolve(ok);
    });
  });
}

/** Runs fn with a secure buffer of `length` bytes and wipes it afterwards, whatever happens. */
export function withSecureBuffer<T>(length: number, fn: (buffer: Uint8Array) => T): T {
  const buffer = native.secureBuffer(length);
  try {
    return fn(buffer);
  } finally {
    native.secureRelease(buffer);
  }
}
