// The key service's own rules for names and sizes. The RPC op table checks wire types; these
// checks hold for every caller, the in-process library included.
import { KmsError } from '../errors.js';

export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const MAX_PLAINTEXT_BYTES = 65536;
export const DATA_KEY_BYTES = { min: 16, max: 64, default: 32 } as const;
export const BATCH_COUNT = { min: 1, max: 1024 } as const;
export const LIST_LIMIT = { max: 1000, default: 100 } as const;
export const PENDING_DAYS = { min: 7, max: 30 } as const;
export const ROTATION_PERIOD_DAYS = { min: 1, max: 3650 } as const;
export const MAX_DESCRIPTION_BYTES = 1024;
export const TAG_LIMITS = { maxPairs: 50, maxKeyBytes: 128, maxValueBytes: 256 } as const;

export function assertKeyId(keyId: unknown, name = 'key_id'): asserts keyId is string {
  if (typeof keyId !== 'string' || !KEY_ID_PATTERN.test(keyId)) {
    const shown = typeof keyId === 'string' ? JSON.stringify(keyId.slice(0, 64)) : typeof keyId;
    throw new KmsError('InvalidKeyId', `${name} ${shown} is not a valid key id (1 to 128 of A-Z a-z 0-9 . _ -, starting with a letter or digit)`);
  }
}

export function assertIntegerIn(value: number, name: string, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new KmsError('InvalidRequest', `${name} is ${value}; it must be an integer from ${min} to ${max}`);
  }
}

export function assertPlaintext(plaintext: Uint8Array): void {
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw new KmsError('InvalidRequest', `plaintext is ${plaintext.length} bytes; the limit is ${MAX_PLAINTEXT_BYTES}`);
  }
}

export function assertDescription(description: string): void {
  const bytes = Buffer.byteLength(description);
  if (bytes > MAX_DESCRIPTION_BYTES) {
    throw new KmsError('InvalidRequest', `description is ${bytes} bytes; the limit is ${MAX_DESCRIPTION_BYTES}`);
  }
}

export function assertTags(tags: Record<string, string>): void {
  const keys = Object.keys(tags);
  if (keys.length > TAG_LIMITS.maxPairs) {
    throw new KmsError('InvalidRequest', `tags has ${keys.length} entries; the limit is ${TAG_LIMITS.maxPairs}`);
  }
  for (const key of keys) {
    const value = tags[key];
    if (typeof value !== 'string') throw new KmsError('InvalidRequest', `tag "${key.slice(0, 64)}" must have a string value`);
    if (Buffer.byteLength(key) > TAG_LIMITS.maxKeyBytes) {
      throw new KmsError('InvalidRequest', `tag key "${key.slice(0, 64)}" is longer than ${TAG_LIMITS.maxKeyBytes} bytes`);
    }
    if (Buffer.byteLength(value) > TAG_LIMITS.maxValueBytes) {
      throw new KmsError('InvalidRequest', `tag "${key.slice(0, 64)}" has a value longer than ${TAG_LIMITS.maxValueBytes} bytes`);
    }
  }
}
