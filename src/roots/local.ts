// Local root of trust: a 32-byte root key file (0600, owned by the daemon's user), or a passphrase
// stretched with scrypt and a stored salt. The root key exists only in a locked native slot.
import { closeSync, constants as fsc, fstatSync, openSync, readSync, writeSync, fsyncSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { KmsError } from '../errors.js';
import { KEY_BYTES, WRAPPED_KEY_BYTES, native, withSecureBuffer, type SlotHandle } from '../native/index.js';
import type { RootHealth, RootOfTrust } from './types.js';
import { assertPrivatePath } from '../permissions.js';

export interface LocalRootOptions {
  keyFile: string;
  /** Name of the environment variable holding the passphrase; when set, the key file is not used. */
  passphraseEnv?: string;
  /** Where the scrypt salt lives (next to the state). */
  saltFile: string;
  /** Create the key file (or salt) when absent: `rustfs-kms init` and first `--dev` start. */
  create: boolean;
  env: Record<string, string | undefined>;
}

// scrypt cost: N = 2^17, r = 8, p = 1 (~128 MiB, well under a second): OWASP's floor for scrypt.
const SCRYPT_LOG2N = 17;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
const CHECK_AAD = Buffer.from('rustfs-kms/v1/root-check-value');

export class LocalRoot implements RootOfTrust {
  readonly type = 'local' as const;
  readonly origin = 'local' as const;
  readonly ref: string;

  private constructor(private slot: SlotHandle, private readonly source: string) {
    this.ref = 'local:' + keyCheckValue(slot);
  }

  static open(options: LocalRootOptions): LocalRoot {
    if (options.passphraseEnv !== undefined) return LocalRoot.fromPassphrase(options);
    if (!existsSync(options.keyFile)) {
      if (!options.create) {
        throw new Error(`root key file ${options.keyFile} does not exist; run "rustfs-kms init" to create it`);
      }
      createKeyFile(options.keyFile);
    }
    assertPrivatePath(options.keyFile, 'root key file');
    return new LocalRoot(readKeyFile(options.keyFile), `key file ${options.keyFile}`);
  }

  private static fromPassphrase(options: LocalRootOptions): LocalRoot {
    const name = options.passphraseEnv as string;
    const value = options.env[name];
    if (value === undefined || value.length === 0) {
      throw new Error(`root passphrase variable ${name} is not set or empty`);
    }
    if (!existsSync(options.saltFile)) {
      if (!options.create && existsSync(dirname(options.saltFile) + '/keys')) {
        throw new Error(`scrypt salt ${options.saltFile} is missing but keys exist; restore it from backup`);
      }
      writeFileSync(options.saltFile, randomBytes(32), { mode: 0o600, flag: 'wx' });
    }
    assertPrivatePath(options.saltFile, 'scrypt salt file');
    const salt = readFileSync(options.saltFile);
    const passphrase = Buffer.from(value, 'utf8');
    delete options.env[name]; // the passphrase leaves the environment once it has been stretched
    try {
      const slot = native.slotFromScrypt(passphrase, salt, SCRYPT_LOG2N, SCRYPT_R, SCRYPT_P);
      return new LocalRoot(slot, `passphrase from ${name}`);
    } finally {
      passphrase.fill(0);
    }
  }

  async wrap(slot: SlotHandle, aad: Buffer): Promise<Buffer> {
    const out = Buffer.allocUnsafe(WRAPPED_KEY_BYTES);
    native.wrapSlot(this.slot, slot, out, aad);
    return out;
  }

  async unwrap(wrapped: Buffer, aad: Buffer): Promise<SlotHandle> {
    if (wrapped.length !== WRAPPED_KEY_BYTES) {
      throw new KmsError('Internal', `wrapped key material is ${wrapped.length} bytes; expected ${WRAPPED_KEY_BYTES}`);
    }
    const slot = native.unwrapSlot(this.slot, wrapped, aad);
    if (slot === null) throw new KmsError('Internal', 'key material does not unwrap under the configured local root');
    return slot;
  }

  async health(): Promise<RootHealth> {
    return native.slotValid(this.slot) ? { healthy: true } : { healthy: false, detail: 'root key slot wiped' };
  }

  describe(): Record<string, unknown> {
    return { type: this.type, source: this.source, ref: this.ref };
  }

  async close(): Promise<void> {
    native.slotDestroy(this.slot);
  }
}

/** A public fingerprint of the root: the tag of an empty XAES seal under a fixed nonce and label. */
function keyCheckValue(slot: SlotHandle): string {
  const out = Buffer.alloc(16);
  native.xaesSeal(slot, out, Buffer.alloc(24), Buffer.alloc(0), CHECK_AAD);
  return out.subarray(0, 8).toString('hex');
}

function readKeyFile(path: string): SlotHandle {
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    if (size !== KEY_BYTES) throw new Error(`root key file ${path} is ${size} bytes; expected exactly ${KEY_BYTES}`);
    return withSecureBuffer(KEY_BYTES, (buffer) => {
      const read = readSync(fd, buffer, 0, KEY_BYTES, 0);
      if (read !== KEY_BYTES) throw new Error(`root key file ${path}: short read (${read} bytes)`);
      return native.slotImport(buffer);
    });
  } finally {
    closeSync(fd);
  }
}

/** Writes 32 fresh random bytes, exclusive create, 0600; the bytes go slot → locked buffer → file. */
export function createKeyFile(path: string): void {
  const slot = native.slotGenerate();
  try {
    withSecureBuffer(KEY_BYTES, (buffer) => {
      native.slotExport(slot, buffer);
      const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      try {
        writeSync(fd, buffer, 0, KEY_BYTES, 0);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    });
  } finally {
    native.slotDestroy(slot);
  }
}
