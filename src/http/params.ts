// Reading query parameters and JSON bodies for the route files that came after routes.ts
// (madmin.ts, rustfs-routes.ts). Errors are KmsError InvalidRequest naming the parameter.
import type { KmsError } from '../errors.js';
import { ArgumentError, InvalidJsonError } from './errors.js';
import type { RawQuery } from './sigv4.js';

export function bad(message: string): KmsError {
  return new ArgumentError(message);
}

function badJson(message: string): KmsError {
  return new InvalidJsonError(message);
}

/** The one value of `name`, undefined when absent; given twice is an error. */
export function single(query: RawQuery, name: string): string | undefined {
  const values = query.get(name);
  if (values === undefined) return undefined;
  if (values.length > 1) throw bad(`query parameter ${name} is given ${values.length} times`);
  return values[0];
}

/** The first non-empty value among `names` (RustFS's keyId, key-id, key). */
export function firstOf(query: RawQuery, names: readonly string[]): string | undefined {
  for (const n of names) {
    const v = single(query, n);
    if (v !== undefined && v !== '') return v;
  }
  return undefined;
}

/**
 * The body as a JSON object; undefined when empty. Only `allowed` fields (RustFS's request types are
 * deny_unknown_fields). Throws InvalidRequest naming the field.
 */
export function jsonObject(body: Buffer, allowed: readonly string[]): Record<string, unknown> | undefined {
  const text = body.toString('utf8').trim();
  if (text === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw badJson(`invalid JSON: ${(err as Error).message.slice(0, 120)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badJson('invalid JSON: the body must be a JSON object');
  const obj = value as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw badJson(`invalid JSON: unknown field ${JSON.stringify(k.slice(0, 64))}, expected one of ${allowed.join(', ')}`);
  }
  return obj;
}

export function optString(obj: Record<string, unknown> | undefined, name: string): string | undefined {
  const v = obj?.[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badJson(`invalid JSON: ${name} must be a string`);
  return v;
}

export function optBool(obj: Record<string, unknown> | undefined, name: string): boolean | undefined {
  const v = obj?.[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badJson(`invalid JSON: ${name} must be true or false`);
  return v;
}

export function optStringMap(obj: Record<string, unknown> | undefined, name: string): Record<string, string> | undefined {
  const v = obj?.[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw badJson(`invalid JSON: ${name} must be an object of strings`);
  // Null prototype: a "__proto__" tag stays a tag (and is refused by the tag check), not a setter call.
  const out = Object.create(null) as Record<string, string>;
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    if (typeof x !== 'string') throw badJson(`invalid JSON: ${name}[${JSON.stringify(k.slice(0, 64))}] must be a string`);
    out[k] = x;
  }
  return out;
}

export { globMatch } from '../access/glob.js';
