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
  const pairs: [Buffer, Buffer][] = [];
  let total = 0;
  for (const key of keys) {
    const value = context[key];
    if (typeof value !== 'string') {
      throw new KmsError('InvalidRequest', `context value for "${key.slice(0, 64)}" must be a string`);
    }
    const k = Buffer.from(key, 'utf8');
    const v = Buffer.from(value, 'utf8');
    total += 4 + k.length + v.length;
    pairs.push([k, v]);
  }
  if (total > MAX_CONTEXT_BYTES) {
    throw new KmsError('InvalidRequest', `context encodes to ${total} bytes; the limit is ${MAX_CONTEXT_BYTES}`);
  }
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
