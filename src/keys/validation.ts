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

/** A tag map: null-prototype, so no tag name can reach Object.prototype. */
export type Tags = Record<string, string>;

export const TAG_KEY_PATTERN = /^[A-Za-z0-9._:/=+@-]{1,128}$/;
// Names that break plain-object handling (prototype pollution, the MessagePack encoder's refusal).
const RESERVED_TAG_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

export function emptyTags(): Tags {
  return Object.create(null) as Tags;
}

/** Why one tag breaks DESIGN §4's rules, or undefined when it is fine. */
export function tagProblem(key: string, value: unknown): string | undefined {
  const shown = JSON.stringify(key.slice(0, 64)) + (key.length > 64 ? '…' : '');
  if (RESERVED_TAG_KEYS.has(key)) return `tag key ${shown} is reserved (__proto__, constructor and prototype are never tag keys)`;
  if (!TAG_KEY_PATTERN.test(key)) {
    return `tag key ${shown} is not 1 to ${TAG_LIMITS.maxKeyBytes} characters of A-Z a-z 0-9 . _ : / = + @ -`;
  }
  if (typeof value !== 'string') return `tag ${shown} must have a string value`;
  const chars = [...value].length;
  if (chars > TAG_LIMITS.maxValueBytes) return `tag ${shown} has a value of ${chars} characters; the limit is ${TAG_LIMITS.maxValueBytes}`;
  return undefined;
}

function ownEntries(tags: object): Array<[string, unknown]> {
  return Object.keys(tags).map((k) => [k, (tags as Record<string, unknown>)[k]]);
}

/**
 * Tags from a caller (socket, HTTP, library, restore): a null-prototype copy, or InvalidRequest
 * naming the first tag that breaks the rules. The one check every way in uses.
 */
export function checkTags(tags: unknown): Tags {
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags) || tags instanceof Uint8Array) {
    throw new KmsError('InvalidRequest', 'tags must be a map of string to string');
  }
  const entries = ownEntries(tags);
  if (entries.length > TAG_LIMITS.maxPairs) {
    throw new KmsError('InvalidRequest', `tags has ${entries.length} entries; the limit is ${TAG_LIMITS.maxPairs}`);
  }
  const out = emptyTags();
  for (const [key, value] of entries) {
    const problem = tagProblem(key, value);
    if (problem !== undefined) throw new KmsError('InvalidRequest', problem);
    out[key] = value as string;
  }
  return out;
}

/**
 * Tags read back from a keystore (written before this check existed, or by a hostile host sharing
 * the keystore): the valid ones as a null-prototype map, and why each other one was dropped. The key
 * itself stays usable; a bad tag is metadata, never a reason to lose access to key material.
 */
export function storedTags(raw: unknown): { tags: Tags; dropped: string[] } {
  const tags = emptyTags();
  if (raw === undefined || raw === null) return { tags, dropped: [] };
  if (typeof raw !== 'object' || Array.isArray(raw)) return { tags, dropped: ['tags is not a map'] };
  const dropped: string[] = [];
  let kept = 0;
  for (const [key, value] of ownEntries(raw)) {
    const problem = tagProblem(key, value) ?? (kept >= TAG_LIMITS.maxPairs ? `tag ${JSON.stringify(key)} is beyond the limit of ${TAG_LIMITS.maxPairs} tags` : undefined);
    if (problem !== undefined) {
      dropped.push(problem);
      continue;
    }
    tags[key] = value as string;
    kept++;
  }
  return { tags, dropped };
}
