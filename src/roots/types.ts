// A root of trust wraps key material so that a key record is useless without it. Local files, an
// HSM and Vault Transit all answer to this one interface.
import type { SlotHandle } from '../native/index.js';
import type { KeyOrigin } from '../keystore/types.js';

export interface RootHealth {
  healthy: boolean;
  /** What is wrong, for status output; never secret. */
  detail?: string;
}

export interface RootOfTrust {
  readonly type: 'local' | 'pkcs11' | 'vault-transit';
  /** Recorded as KeyInfo.origin for keys made under this root. */
  readonly origin: KeyOrigin;
  /** Identity of this root (type and a key check value), stored with every version it wraps. */
  readonly ref: string;
  /** Wraps a slot's material under the root, bound to aad. */
  wrap(slot: SlotHandle, aad: Buffer): Promise<Buffer>;
  /**
   * Unwraps into a new slot. KmsError BackendUnavailable when the root cannot be reached; Internal
   * when the blob does not open under this root.
   */
  unwrap(wrapped: Buffer, aad: Buffer): Promise<SlotHandle>;
  health(): Promise<RootHealth>;
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

/** AAD binding wrapped material to its key and version (DESIGN section 6). */
export function keyMaterialAad(keyId: string, version: number): Buffer {
  const prefix = 'rustfs-kms/v1/key';
  const id = Buffer.from(keyId, 'utf8');
  const aad = Buffer.allocUnsafe(prefix.length + id.length + 4);
  aad.write(prefix, 0, 'latin1');
  id.copy(aad, prefix.length);
  aad.writeUInt32BE(version, prefix.length + id.length);
  return aad;
}
