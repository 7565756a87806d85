// The `ctx` of a request (docs/protocol.md §4): the caller's claims, checked the same way whichever
// door they came through (the socket's frames, the in-process library), then recorded, never trusted.
import { KmsError } from '../errors.js';
import { CTX_LIMITS, type WireContext } from './protocol.js';

const CTX_STRING_FIELDS = ['principal', 'request_id', 'user_agent', 'source_ip'] as const;

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function utf8Length(s: string): number {
  // A UTF-16 unit is at most 3 UTF-8 bytes, so short strings need no count.
  return s.length * 3 <= CTX_LIMITS.maxStringBytes ? s.length : Buffer.byteLength(s, 'utf8');
}

function refuse(message: string): never {
  throw new KmsError('InvalidRequest', message);
}

/**
 * Absent or nil → undefined; else a map of the known string fields plus `extra` (map str → str, at
 * most CTX_LIMITS.maxExtraPairs pairs), every string at most CTX_LIMITS.maxStringBytes; nil fields
 * count as absent. Throws InvalidRequest naming the field and the limit.
 */
export function validateContext(raw: unknown): WireContext | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isMap(raw)) refuse('ctx must be a map');
  const max = CTX_LIMITS.maxStringBytes;
  const ctx: WireContext = {};
  for (const k in raw) {
    const v = raw[k];
    if (v === null || v === undefined) continue;
    if (k === 'extra') {
      if (!isMap(v)) refuse('ctx.extra must be a map of strings');
      const extra: Record<string, string> = {};
      let pairs = 0;
      for (const ek in v) {
        const ev = v[ek];
        if (++pairs > CTX_LIMITS.maxExtraPairs) refuse(`ctx.extra has more than ${CTX_LIMITS.maxExtraPairs} pairs`);
        if (typeof ev !== 'string') refuse(`ctx.extra[${JSON.stringify(ek.slice(0, 64))}] must be a string`);
        if (utf8Length(ek) > max) refuse(`a ctx.extra key is longer than ${max} bytes`);
        if (utf8Length(ev) > max) refuse(`ctx.extra[${JSON.stringify(ek.slice(0, 64))}] is longer than ${max} bytes`);
        extra[ek] = ev;
      }
      ctx.extra = extra;
    } else if ((CTX_STRING_FIELDS as readonly string[]).includes(k)) {
      if (typeof v !== 'string') refuse(`ctx.${k} must be a string`);
      const n = utf8Length(v);
      if (n > max) refuse(`ctx.${k} is ${n} bytes; the limit is ${max}`);
      ctx[k as (typeof CTX_STRING_FIELDS)[number]] = v;
    } else {
      refuse(`unknown ctx field ${JSON.stringify(k.slice(0, 64))}`);
    }
  }
  return ctx;
}
