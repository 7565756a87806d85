// Canonical encoding of an encryption context (DESIGN section 5): pairs sorted by key bytes, each
// u16be(len k) ‖ k ‖ u16be(len v) ‖ v; the empty map encodes to nothing.
import { KmsError } from '../errors.js';

export const MAX_CONTEXT_PAIRS = 64;
export const MAX_CONTEXT_BYTES = 4096;

export type EncryptionContext = Readonly<Record<string, string>>;

const EMPTY = Buffer.alloc(0);

export function canonicalContext(context: EncryptionContext | undefined): Buffer {
  if (context === undefined) return EMPTY;
  const keys = Object.keys(context);
  if (keys.length === 0) return EMPTY;
  if (keys.length > MAX_CONTEXT_PAIRS) {
    throw new KmsError('InvalidRequest', `context has ${keys.length} pairs; the limit is ${MAX_CONTEXT_PAIRS}`);
  }
  let total = 0;
  let ascii = true;
  for (const key of keys) {
    const value = context[key];
    if (typeof value !== 'string') {
      throw new KmsError('InvalidRequest', `context value for "${key.slice(0, 64)}" must be a string`);
    }
    const k = Buffer.byteLength(key);
    const v = Buffer.byteLength(value);
    if (k !== key.length || v !== value.length) ascii = false;
    total += 4 + k + v;
  }
  if (total > MAX_CONTEXT_BYTES) {
    throw new KmsError('InvalidRequest', `context encodes to ${total} bytes; the limit is ${MAX_CONTEXT_BYTES}`);
  }
  return ascii ? encodeAscii(context, keys, total) : encodeUtf8(context, keys, total);
}

/** The common case: for ASCII, string order is byte order and each character is one byte. */
function encodeAscii(context: EncryptionContext, keys: string[], total: number): Buffer {
  keys.sort();
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const key of keys) {
    const value = context[key] as string;
    offset = out.writeUInt16BE(key.length, offset);
    offset += out.write(key, offset, 'latin1');
    offset = out.writeUInt16BE(value.length, offset);
    offset += out.write(value, offset, 'latin1');
  }
  return out;
}

function encodeUtf8(context: EncryptionContext, keys: string[], total: number): Buffer {
  const pairs = keys.map((key) => [Buffer.from(key, 'utf8'), Buffer.from(context[key] as string, 'utf8')] as const);
  pairs.sort((a, b) => Buffer.compare(a[0], b[0]));
  const out = Buffer.allocUnsafe(total);
  let offset = 0;
  for (const [k, v] of pairs) {
    offset = out.writeUInt16BE(k.length, offset);
    offset += k.copy(out, offset);
    offset = out.writeUInt16BE(v.length, offset);
    offset += v.copy(out, offset);
  }
  return out;
}
