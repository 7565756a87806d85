// Vault Transit root of trust: key material is wrapped with Transit `encrypt` and unwrapped with
// `decrypt` under one named AEAD key (aes256-gcm96 by default), bound to the key id and version with
// Transit's `associated_data` (DESIGN section 6's AAD, base64). Transit ignores `context` on keys that
// are not derived, so `context` is sent as well only when the Transit key is derived.
//
// Where the 32 bytes travel: slot → locked secure buffer → base64 string → JSON request body → Vault;
// back: Vault → JSON response body → base64 string → decoded straight into a locked secure buffer →
// slot; the buffer is wiped at once. The base64 string and the JSON bodies necessarily exist for a
// moment on the ordinary JS heap (Vault's HTTP API is JSON); the transport wipes the raw bytes it
// owns, the strings live until the garbage collector reuses them. docs/operations.md says so.
import { KmsError } from '../errors.js';
import { KEY_BYTES, native, withSecureBuffer, type SlotHandle } from '../native/index.js';
import type { RootHealth, RootOfTrust } from './types.js';
import {
  VaultResponseError, objectAt, vaultKmsError, type VaultClient,
} from '../vault/client.js';

export interface VaultTransitRootOptions {
  client: VaultClient;
  /** Called by close() (releases the shared client). */
  release?: () => void;
  /** Transit mount path, e.g. "transit". */
  mount: string;
  /** Transit key name, e.g. "rustfs-kms". */
  key: string;
}

interface TransitKeyInfo {
  type: string;
  derived: boolean;
  latestVersion: number;
}

const AEAD_TYPES = new Set(['aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305']);
const CIPHERTEXT = /^vault:v[1-9][0-9]*:[A-Za-z0-9+/]+={0,2}$/;
/** base64 of exactly 32 bytes. */
const KEY_BASE64 = /^[A-Za-z0-9+/]{43}=$/;
const HEALTH_TIMEOUT_MS = 5000;

export class VaultTransitRoot implements RootOfTrust {
  readonly type = 'vault-transit' as const;
  readonly origin = 'vault' as const;
  /** Names the Transit key, not the address: every host reaches the same cluster by its own name. */
  readonly ref: string;
  private readonly client: VaultClient;
  private info: Promise<TransitKeyInfo> | null = null;
  private lastInfo: TransitKeyInfo | null = null;

  constructor(private readonly options: VaultTransitRootOptions) {
    this.client = options.client;
    const ns = options.client.namespace.replace(/^\/+|\/+$/g, '');
    this.ref = `vault-transit:${ns === '' ? '' : `${ns}/`}${options.mount}/${options.key}`;
  }

  private get keyPath(): string {
    return `${this.options.mount}/${this.options.key}`;
  }

  async wrap(slot: SlotHandle, aad: Buffer): Promise<Buffer> {
    const info = await this.transitKey();
    const plaintext = withSecureBuffer(KEY_BYTES, (buffer) => {
      native.slotExport(slot, buffer);
      return view(buffer).toString('base64'); // transient JS string: unavoidable with a JSON API
    });
    const binding = aad.toString('base64');
    let body: Record<string, unknown> | undefined;
    try {
      body = await this.client.write(`${this.options.mount}/encrypt/${this.options.key}`, {
        plaintext,
        associated_data: binding,
        ...(info.derived ? { context: binding } : {}),
      });
    } catch (err) {
      throw vaultKmsError(err, `Transit encrypt with key ${this.keyPath}`);
    }
    const ciphertext = objectAt(body, 'data')?.ciphertext;
    if (typeof ciphertext !== 'string' || !CIPHERTEXT.test(ciphertext)) {
      throw new KmsError('Internal', `Transit encrypt with key ${this.keyPath} at ${this.client.address} returned no vault:vN: ciphertext`);
    }
    return Buffer.from(ciphertext, 'utf8');
  }

  async unwrap(wrapped: Buffer, aad: Buffer): Promise<SlotHandle> {
    const ciphertext = wrapped.toString('utf8');
    if (!CIPHERTEXT.test(ciphertext)) {
      throw new KmsError('Internal', 'wrapped key material is not a Vault Transit ciphertext (vault:vN:...)');
    }
    const info = await this.transitKey();
    const binding = aad.toString('base64');
    let body: Record<string, unknown> | undefined;
    try {
      body = await this.client.write(`${this.options.mount}/decrypt/${this.options.key}`, {
        ciphertext,
        associated_data: binding,
        ...(info.derived ? { context: binding } : {}),
      });
    } catch (err) {
      if (err instanceof VaultResponseError && err.status === 400) {
        throw new KmsError('Internal',
          `key material does not unwrap under Vault Transit key ${this.keyPath} at ${this.client.address}: ${err.errors.join('; ') || 'rejected'}`);
      }
      throw vaultKmsError(err, `Transit decrypt with key ${this.keyPath}`);
    }
    const plaintext = objectAt(body, 'data')?.plaintext;
    if (typeof plaintext !== 'string' || !KEY_BASE64.test(plaintext)) {
      throw new KmsError('Internal', `Transit decrypt with key ${this.keyPath} did not return ${KEY_BYTES} bytes of key material`);
    }
    return withSecureBuffer(KEY_BYTES, (buffer) => {
      // Decodes the base64 text straight into locked memory; no intermediate heap buffer.
      const written = view(buffer).write(plaintext, 0, KEY_BYTES, 'base64');
      if (written !== KEY_BYTES) throw new KmsError('Internal', 'Transit decrypt returned key material of the wrong length');
      return native.slotImport(buffer);
    });
  }

  async health(): Promise<RootHealth> {
    try {
      const info = await this.readKey(HEALTH_TIMEOUT_MS, 1);
      this.info = Promise.resolve(info);
      return { healthy: true };
    } catch (err) {
      const state = this.client.state();
      const detail = err instanceof KmsError ? err.message : state.detail ?? (err as Error).message;
      return { healthy: false, detail };
    }
  }

  describe(): Record<string, unknown> {
    const state = this.client.state();
    return {
      type: this.type,
      address: this.client.address,
      namespace: this.client.namespace,
      transit_mount: this.options.mount,
      transit_key: this.options.key,
      ref: this.ref,
      ...(this.lastInfo !== null ? { transit_key_type: this.lastInfo.type, transit_key_version: this.lastInfo.latestVersion } : {}),
      reachable: state.reachable,
      authenticated: state.authenticated,
      ...(state.detail !== undefined ? { detail: state.detail } : {}),
    };
  }

  async close(): Promise<void> {
    this.options.release?.();
  }

  /** The Transit key's type and derivation, read once (and again after a failure). */
  private transitKey(): Promise<TransitKeyInfo> {
    if (this.info === null) {
      const pending = this.readKey();
      this.info = pending;
      pending.catch(() => {
        if (this.info === pending) this.info = null;
      });
    }
    return this.info;
  }

  private async readKey(timeoutMs?: number, attempts?: number): Promise<TransitKeyInfo> {
    let body: Record<string, unknown> | undefined;
    try {
      body = await this.client.read(`${this.options.mount}/keys/${this.options.key}`, {
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(attempts !== undefined ? { attempts } : {}),
      });
    } catch (err) {
      if (err instanceof VaultResponseError && (err.status === 404 || err.status === 400)) {
        throw new KmsError('BackendUnavailable',
          `Vault Transit key ${this.keyPath} does not exist at ${this.client.address}` +
          ` (create it: vault write -f ${this.options.mount}/keys/${this.options.key})`);
      }
      throw vaultKmsError(err, `reading Transit key ${this.keyPath}`);
    }
    const data = objectAt(body, 'data');
    const type = typeof data?.type === 'string' ? data.type : '';
    if (!AEAD_TYPES.has(type)) {
      throw new KmsError('Internal',
        `Vault Transit key ${this.keyPath} has type "${type}"; it must be an AEAD key (aes256-gcm96, aes128-gcm96 or chacha20-poly1305) so that associated_data binds each wrapped key`);
    }
    const info = { type, derived: data?.derived === true, latestVersion: typeof data?.latest_version === 'number' ? data.latest_version : 0 };
    this.lastInfo = info;
    return info;
  }
}

function view(u8: Uint8Array): Buffer {
  return Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
}
