// PKCS#11 root of trust (DESIGN section 6): an HSM token, reached with pkcs11js.
//
// wrap mode      The root is a sensitive, non-extractable AES-256 key on the token (made by
//                `rustfs-kms init`). Master-key material is generated in the addon's locked slots
//                and wrapped on the token with CKM_AES_GCM (random 12-byte IV, 128-bit tag, AAD =
//                keyMaterialAad); unwrapping decrypts into a locked secure buffer and from there
//                into a slot. Data operations then run in the addon at the local root's speed.
// on-token mode  Every master-key version is its own non-extractable token object and every seal
//                runs on the token (TokenKeys below); versions are rotated automatically before
//                their random-nonce budget runs out (pkcs11-counter.ts).
//
// Wrapped blob (wrap mode): iv(12) ‖ ciphertext(32) ‖ tag(16). Root ref:
// `pkcs11:<token label>:<key label>:<key check value>` — the check value is the first 8 bytes of
// the GCM tag over 32 zero bytes under an all-zero IV and a fixed label, so records wrapped by a
// different key with the same label are refused, not mis-opened.
import { randomFillSync } from 'node:crypto';
import { join } from 'node:path';
import pkcs11js from 'pkcs11js';
import type { Template } from 'pkcs11js';
import { KmsError } from '../errors.js';
import { KEY_BYTES, native, type SlotHandle } from '../native/index.js';
import type { RootHealth, RootOfTrust, TokenKeys } from './types.js';
import {
  GCM_IV_BYTES, GCM_TAG_BYTES, Pin, Pkcs11Token, boolValue, ulongValue, type Handle, type RootLogger,
} from './pkcs11-token.js';
import { DEFAULT_RESERVE_BLOCK, DEFAULT_SEAL_LIMIT, SealCounters } from './pkcs11-counter.js';

export type { RootLogger } from './pkcs11-token.js';

export type Pkcs11Mode = 'wrap' | 'on-token';

export interface Pkcs11RootOptions {
  /** Absolute path of the PKCS#11 module (.so). */
  module: string;
  /** The token is selected by label and/or serial (never by slot index). */
  tokenLabel?: string;
  tokenSerial?: string;
  /** Exactly one of pinFile / pinEnv. */
  pinFile?: string;
  pinEnv?: string;
  env: Record<string, string | undefined>;
  /** Label of the root key (wrap mode). */
  keyLabel: string;
  mode: Pkcs11Mode;
  /** Sessions in the crypto pool: token operations that may run at once. */
  sessions: number;
  /** Where the seal counters of on-token keys live. */
  stateDir: string;
  logger?: RootLogger;
  /** Seals per on-token version before automatic rotation (default 2^31). Internal: tests shrink it. */
  sealLimit?: number;
  /** Seals reserved per counter-file write (default 2^20, at most sealLimit / 4). */
  reserveBlock?: number;
  /** Background token probe (default 5 s); 0 = probe only on use and on health checks. */
  monitorIntervalMs?: number;
  /** Reconnect back-off (defaults 250 ms doubling to 10 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
}

/** Wrapped material: iv ‖ ciphertext ‖ tag. */
export const PKCS11_WRAPPED_BYTES = GCM_IV_BYTES + KEY_BYTES + GCM_TAG_BYTES;
const CHECK_AAD = Buffer.from('rustfs-kms/v1/root-check-value');
/** Label prefix of on-token master-key versions: `rustfs-kms:<key_id>:<version>`. */
export const TOKEN_OBJECT_PREFIX = 'rustfs-kms:';
export const SEAL_COUNTER_FILE = 'pkcs11-seal-counters.json';

export function tokenObjectLabel(keyId: string, version: number): string {
  return `${TOKEN_OBJECT_PREFIX}${keyId}:${version}`;
}

/** The attributes every key this daemon creates on a token gets: it can never leave the token. */
export function secretKeyTemplate(label: string): Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: KEY_BYTES },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_WRAP, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: false },
    { type: pkcs11js.CKA_SIGN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: false },
    { type: pkcs11js.CKA_DERIVE, value: false },
    { type: pkcs11js.CKA_MODIFIABLE, value: false },
    { type: pkcs11js.CKA_COPYABLE, value: false },
  ];
}

/** Refuses a key that could leave the token or is not AES-256 encrypt/decrypt. */
function assertKeyAttributes(token: Pkcs11Token, handle: Handle, what: string): void {
  const [keyType, length, sensitive, extractable, encrypt, decrypt] = token.attributes(handle, [
    pkcs11js.CKA_KEY_TYPE, pkcs11js.CKA_VALUE_LEN, pkcs11js.CKA_SENSITIVE, pkcs11js.CKA_EXTRACTABLE,
    pkcs11js.CKA_ENCRYPT, pkcs11js.CKA_DECRYPT,
  ]).map((a) => a.value);
  const problems: string[] = [];
  if (keyType === undefined || ulongValue(keyType) !== pkcs11js.CKK_AES) problems.push('not an AES key');
  if (length === undefined || ulongValue(length) !== KEY_BYTES) problems.push(`not ${KEY_BYTES * 8} bits`);
  if (sensitive === undefined || !boolValue(sensitive)) problems.push('CKA_SENSITIVE is false');
  if (extractable === undefined || boolValue(extractable)) problems.push('CKA_EXTRACTABLE is true');
  if (encrypt === undefined || !boolValue(encrypt) || decrypt === undefined || !boolValue(decrypt)) {
    problems.push('it cannot both encrypt and decrypt');
  }
  if (problems.length > 0) throw new Error(`${what} on token "${token.label}" is unusable: ${problems.join(', ')}; refusing to use it`);
}

function secureView(buffer: Uint8Array, length = buffer.length): Buffer {
  // Shares the locked memory: nothing is copied into the JavaScript heap.
  return Buffer.from(buffer.buffer, buffer.byteOffset, length);
}

interface RootKey {
  handle: Handle;
  kcv: string;
}

export class Pkcs11Root implements RootOfTrust {
  readonly type = 'pkcs11' as const;
  readonly origin = 'pkcs11' as const;
  readonly ref: string;
  readonly mode: Pkcs11Mode;
  readonly tokenKeys?: TokenKeys;
  private rootKey: RootKey | null;

  private constructor(
    private readonly token: Pkcs11Token,
    private readonly options: Pkcs11RootOptions,
    rootKey: RootKey | null,
    onToken: OnTokenKeys | undefined,
  ) {
    this.mode = options.mode;
    this.rootKey = rootKey;
    this.ref = rootKey !== null ? `pkcs11:${token.label}:${options.keyLabel}:${rootKey.kcv}` : `pkcs11:${token.label}:on-token`;
    if (onToken !== undefined) this.tokenKeys = onToken;
  }

  /**
   * Opens the token and logs in (synchronously, at start-up). Throws an Error that names the
   * problem: module missing or not loadable, token not found, PIN rejected, root key missing.
   */
  static open(options: Pkcs11RootOptions): Pkcs11Root {
    const pin = readPin(options);
    let root: Pkcs11Root | undefined;
    let initialKcv: string | null | undefined;
    const locate = (token: Pkcs11Token): RootKey | null => {
      const found = token.findSecretKeys(options.keyLabel);
      if (found.length === 0) return null;
      if (found.length > 1) throw new Error(`${found.length} keys on token "${token.label}" are labelled "${options.keyLabel}"; the root key label must be unique`);
      const handle = found[0] as Handle;
      assertKeyAttributes(token, handle, `root key "${options.keyLabel}"`);
      return { handle, kcv: keyCheckValue(token, handle) };
    };
    const token = Pkcs11Token.open({
      module: options.module,
      ...(options.tokenLabel !== undefined ? { tokenLabel: options.tokenLabel } : {}),
      ...(options.tokenSerial !== undefined ? { tokenSerial: options.tokenSerial } : {}),
      pin,
      sessions: options.sessions,
      ...(options.logger !== undefined ? { logger: options.logger } : {}),
      monitorIntervalMs: options.monitorIntervalMs ?? 5000,
      ...(options.backoffInitialMs !== undefined ? { backoffInitialMs: options.backoffInitialMs } : {}),
      ...(options.backoffMaxMs !== undefined ? { backoffMaxMs: options.backoffMaxMs } : {}),
      onConnect: (t) => {
        if (initialKcv === undefined) return; // first connection: checked below
        // A reconnection must find the same root key, or stay down and say why.
        const key = locate(t);
        if (initialKcv !== null) {
          if (key === null) {
            throw new Error(`root key "${options.keyLabel}" is no longer on token "${t.label}" (was the token re-initialised? restore it from a backup)`);
          }
          if (key.kcv !== initialKcv) {
            throw new Error(`root key "${options.keyLabel}" on token "${t.label}" is a different key now (check value ${key.kcv}, expected ${initialKcv}); restore the original token`);
          }
        }
        if (root !== undefined) root.rootKey = key !== null && key.kcv === initialKcv ? key : root.rootKey;
      },
      onProbe: (t) => {
        const key = root?.rootKey;
        if (key !== undefined && key !== null) t.attributes(key.handle, [pkcs11js.CKA_CLASS]);
      },
    });
    try {
      const key = locate(token);
      if (key === null && options.mode === 'wrap') {
        throw new Error(`root key "${options.keyLabel}" not found on token "${token.label}"; create it with "rustfs-kms init --config <this config>"`);
      }
      initialKcv = key?.kcv ?? null;
      let onToken: OnTokenKeys | undefined;
      if (options.mode === 'on-token') {
        const limit = options.sealLimit ?? DEFAULT_SEAL_LIMIT;
        const block = options.reserveBlock ?? Math.max(1, Math.min(DEFAULT_RESERVE_BLOCK, Math.floor(limit / 4)));
        onToken = new OnTokenKeys(token, new SealCounters(join(options.stateDir, SEAL_COUNTER_FILE), { limit, block }));
      }
      root = new Pkcs11Root(token, options, key, onToken);
      return root;
    } catch (err) {
      void token.close();
      throw err;
    }
  }

  async wrap(slot: SlotHandle, aad: Buffer): Promise<Buffer> {
    const key = this.requireRootKey();
    const out = Buffer.allocUnsafe(PKCS11_WRAPPED_BYTES);
    randomFillSync(out, 0, GCM_IV_BYTES);
    const secure = native.secureBuffer(KEY_BYTES);
    try {
      native.slotExport(slot, secure);
      const written = await this.token.gcm(true, key.handle, out.subarray(0, GCM_IV_BYTES), aad, secureView(secure), out.subarray(GCM_IV_BYTES));
      if (written !== KEY_BYTES + GCM_TAG_BYTES) throw new KmsError('Internal', `the token wrapped ${String(written)} bytes; expected ${KEY_BYTES + GCM_TAG_BYTES}`);
    } finally {
      native.secureRelease(secure);
    }
    return out;
  }

  async unwrap(wrapped: Buffer, aad: Buffer): Promise<SlotHandle> {
    if (wrapped.length !== PKCS11_WRAPPED_BYTES) {
      throw new KmsError('Internal', `wrapped key material is ${wrapped.length} bytes; expected ${PKCS11_WRAPPED_BYTES}`);
    }
    const key = this.requireRootKey();
    // The module writes up to input-length bytes; all of them land in locked memory.
    const secure = native.secureBuffer(KEY_BYTES + GCM_TAG_BYTES);
    try {
      const written = await this.token.gcm(false, key.handle, wrapped.subarray(0, GCM_IV_BYTES), aad, wrapped.subarray(GCM_IV_BYTES), secureView(secure));
      if (written === null) throw new KmsError('Internal', 'key material does not unwrap under the PKCS#11 root key');
      if (written !== KEY_BYTES) throw new KmsError('Internal', `the token unwrapped ${written} bytes; expected ${KEY_BYTES}`);
      return native.slotImport(secure.subarray(0, KEY_BYTES));
    } finally {
      native.secureRelease(secure);
    }
  }

  async health(): Promise<RootHealth> {
    if (this.token.state === 'up') this.token.probe();
    if (this.token.state === 'up') return { healthy: true };
    return { healthy: false, detail: `PKCS#11 token "${this.token.label}": ${this.token.detail ?? this.token.state}` };
  }

  describe(): Record<string, unknown> {
    return {
      type: this.type,
      mode: this.mode,
      module: this.options.module,
      token: this.token.label,
      serial: this.token.serial,
      key_label: this.options.keyLabel,
      ref: this.ref,
      sessions: this.token.sessionCount,
      state: this.token.state,
      ...(this.token.detail !== undefined ? { detail: this.token.detail } : {}),
    };
  }

  async close(): Promise<void> {
    if (this.tokenKeys instanceof OnTokenKeys) await this.tokenKeys.flush();
    await this.token.close();
  }

  private requireRootKey(): RootKey {
    if (this.rootKey === null) {
      throw new KmsError('Internal', `no root key "${this.options.keyLabel}" on token "${this.token.label}" (on-token mode without a root key cannot wrap or unwrap)`);
    }
    return this.rootKey;
  }
}

function readPin(options: Pkcs11RootOptions): Pin {
  if (options.pinFile !== undefined && options.pinEnv !== undefined) throw new Error('set exactly one of root.pkcs11.pin_file and pin_env');
  if (options.pinFile !== undefined) return Pin.fromFile(options.pinFile);
  if (options.pinEnv !== undefined) return Pin.fromEnv(options.pinEnv, options.env);
  throw new Error('root.pkcs11 needs pin_file or pin_env');
}

function keyCheckValue(token: Pkcs11Token, handle: Handle): string {
  const out = Buffer.alloc(KEY_BYTES + GCM_TAG_BYTES);
  token.encryptSync(handle, Buffer.alloc(GCM_IV_BYTES), CHECK_AAD, Buffer.alloc(KEY_BYTES), out);
  return out.subarray(KEY_BYTES, KEY_BYTES + 8).toString('hex');
}

// ---- on-token keys ------------------------------------------------------------------------------

class OnTokenKeys implements TokenKeys {
  private handles = new Map<string, Handle>();
  private generation: number;

  constructor(private readonly token: Pkcs11Token, private readonly counters: SealCounters) {
    this.generation = token.generation;
  }

  /** The object's handle, found by label once per connection. */
  private handle(keyId: string, version: number): Handle {
    if (this.generation !== this.token.generation) {
      this.handles.clear();
      this.generation = this.token.generation;
    }
    const label = tokenObjectLabel(keyId, version);
    const cached = this.handles.get(label);
    if (cached !== undefined) return cached;
    if (this.token.state !== 'up') throw this.token.unavailable();
    const found = this.token.findSecretKeys(label);
    if (found.length === 0) throw new KmsError('Internal', `token object "${label}" is missing from token "${this.token.label}"`);
    if (found.length > 1) throw new KmsError('Internal', `${found.length} objects on token "${this.token.label}" are labelled "${label}"`);
    const handle = found[0] as Handle;
    this.handles.set(label, handle);
    return handle;
  }

  async create(keyId: string, version: number): Promise<string> {
    const label = tokenObjectLabel(keyId, version);
    if (this.token.state !== 'up') throw this.token.unavailable();
    if (this.token.findSecretKeys(label).length > 0) {
      throw new KmsError('Internal', `token object "${label}" already exists on token "${this.token.label}" (left by an interrupted operation?); inspect it with pkcs11-tool and remove it if it is stale`);
    }
    const handle = await this.token.generateKey(secretKeyTemplate(label));
    try {
      await this.counters.register(keyId, version);
    } catch (err) {
      try {
        this.token.destroyObject(handle);
      } catch {
        // reported by the caller's failure
      }
      throw err;
    }
    this.handles.set(label, handle);
    return `pkcs11:${this.token.label}:${label}`;
  }

  async verify(keyId: string, version: number): Promise<void> {
    this.handle(keyId, version);
  }

  async seal(keyId: string, version: number, header: Buffer, plaintext: Uint8Array, aad: Uint8Array): Promise<Buffer> {
    const key = this.handle(keyId, version);
    const reserved = this.counters.take(keyId, version);
    if (reserved !== undefined) await reserved;
    const h = header.length;
    const out = Buffer.allocUnsafe(h + GCM_IV_BYTES + plaintext.length + GCM_TAG_BYTES);
    header.copy(out, 0);
    randomFillSync(out, h, GCM_IV_BYTES);
    const fullAad = Buffer.allocUnsafe(h + GCM_IV_BYTES + aad.length);
    out.copy(fullAad, 0, 0, h + GCM_IV_BYTES);
    fullAad.set(aad, h + GCM_IV_BYTES);
    const input = Buffer.isBuffer(plaintext) ? plaintext : Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.length);
    const written = await this.token.gcm(true, key, out.subarray(h, h + GCM_IV_BYTES), fullAad, input, out.subarray(h + GCM_IV_BYTES));
    if (written !== plaintext.length + GCM_TAG_BYTES) throw new KmsError('Internal', `the token sealed ${String(written)} bytes; expected ${plaintext.length + GCM_TAG_BYTES}`);
    return out;
  }

  async open(keyId: string, version: number, envelope: Uint8Array, headerLength: number, aad: Uint8Array): Promise<Buffer | null> {
    const key = this.handle(keyId, version);
    const env = Buffer.isBuffer(envelope) ? envelope : Buffer.from(envelope.buffer, envelope.byteOffset, envelope.length);
    const body = headerLength + GCM_IV_BYTES;
    if (env.length < body + GCM_TAG_BYTES) return null;
    const fullAad = Buffer.allocUnsafe(body + aad.length);
    env.copy(fullAad, 0, 0, body);
    fullAad.set(aad, body);
    const sealed = env.subarray(body);
    const out = Buffer.allocUnsafe(sealed.length);
    const written = await this.token.gcm(false, key, env.subarray(headerLength, body), fullAad, sealed, out);
    if (written === null) {
      out.fill(0);
      return null;
    }
    return out.subarray(0, written);
  }

  async destroy(keyId: string, version: number): Promise<void> {
    const label = tokenObjectLabel(keyId, version);
    if (this.token.state !== 'up') throw this.token.unavailable();
    for (const handle of this.token.findSecretKeys(label, 16)) this.token.destroyObject(handle);
    this.handles.delete(label);
    await this.counters.forget(keyId, version);
  }

  rotationDue(keyId: string, version: number): boolean {
    return this.counters.rotationDue(keyId, version);
  }

  flush(): Promise<void> {
    return this.counters.flush();
  }
}

// ---- rustfs-kms init ----------------------------------------------------------------------------

export interface InitResult {
  created: boolean;
  token: string;
  serial: string;
  keyLabel: string;
  kcv?: string;
  message: string;
}

/**
 * `rustfs-kms init` for a pkcs11 root: in wrap mode, generates the root key on the token (AES-256,
 * sensitive, never extractable) and refuses when a key with that label exists. In on-token mode
 * there is no root key; init only proves that the token opens with the PIN.
 */
export async function initPkcs11Root(options: Omit<Pkcs11RootOptions, 'stateDir' | 'mode'> & { mode: Pkcs11Mode }): Promise<InitResult> {
  const token = Pkcs11Token.open({
    module: options.module,
    ...(options.tokenLabel !== undefined ? { tokenLabel: options.tokenLabel } : {}),
    ...(options.tokenSerial !== undefined ? { tokenSerial: options.tokenSerial } : {}),
    pin: readPin({ ...options, stateDir: '' }),
    sessions: 1,
  });
  try {
    const base = { token: token.label, serial: token.serial, keyLabel: options.keyLabel };
    if (options.mode === 'on-token') {
      return { ...base, created: false, message: `token "${token.label}" opens with the PIN; on-token mode needs no root key (every master-key version is made on the token)` };
    }
    const existing = token.findSecretKeys(options.keyLabel);
    if (existing.length > 0) {
      const kcv = existing.length === 1 ? keyCheckValue(token, existing[0] as Handle) : undefined;
      throw new Error(`a key labelled "${options.keyLabel}" already exists on token "${token.label}"${kcv !== undefined ? ` (check value ${kcv})` : ''}; refusing to overwrite it`);
    }
    const handle = await token.generateKey(secretKeyTemplate(options.keyLabel));
    assertKeyAttributes(token, handle, `root key "${options.keyLabel}"`);
    const kcv = keyCheckValue(token, handle);
    return {
      ...base, created: true, kcv,
      message: `created root key "${options.keyLabel}" on token "${token.label}" (AES-256, sensitive, never extractable; check value ${kcv})`,
    };
  } finally {
    await token.close();
  }
}
