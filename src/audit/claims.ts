// Claimed context (ctx over the socket, headers over HTTP, OperationContext in process) is the
// caller's word and may be as large as the transport allows. The audit line keeps a short prefix
// of each field, so a line's size is bounded whatever the caller sent, and `cut` says what was cut:
// each shortened field with its original size in bytes (for `extra`: its original number of pairs).
import type { ClaimedContext as WireContext } from './event.js';

export const CLAIM_CAPS = {
  principal: 128,
  request_id: 128,
  user_agent: 256,
  source_ip: 64,
  extraKey: 64,
  extraValue: 256,
  /** Keys and values of `extra` together; pairs past this are dropped. */
  extraTotal: 512,
} as const;

export interface AuditedClaims extends WireContext {
  cut?: Record<string, number>;
}

const FIELDS = ['principal', 'request_id', 'user_agent', 'source_ip'] as const;

/** The first `max` bytes of `s`, never splitting a character. */
export function cutUtf8(s: string, max: number): string {
  if (s.length * 3 <= max || Buffer.byteLength(s) <= max) return s;
  return Buffer.from(s).subarray(0, max).toString('utf8').replace(/\uFFFD+$/, '');
}

function fits(s: string, max: number): boolean {
  return s.length * 3 <= max || Buffer.byteLength(s) <= max;
}

/** `claimed` itself when every field fits (the common case allocates nothing), else a capped copy. */
export function capClaims(claimed: WireContext): AuditedClaims {
  let cut: Record<string, number> | undefined;
  let out: AuditedClaims = claimed;
  for (const f of FIELDS) {
    const v = claimed[f];
    if (v === undefined || fits(v, CLAIM_CAPS[f])) continue;
    if (out === claimed) out = { ...claimed };
    out[f] = cutUtf8(v, CLAIM_CAPS[f]);
    (cut ??= {})[f] = Buffer.byteLength(v);
  }
  if (claimed.extra !== undefined) {
    const capped = capExtra(claimed.extra);
    if (capped !== claimed.extra) {
      if (out === claimed) out = { ...claimed };
      out.extra = capped;
      (cut ??= {}).extra = Object.keys(claimed.extra).length;
    }
  }
  if (cut !== undefined) out.cut = cut;
  return out;
}

function capExtra(extra: Record<string, string>): Record<string, string> {
  let total = 0;
  let changed = false;
  const out: Record<string, string> = Object.create(null) as Record<string, string>; // a "__proto__" key stays a key
  for (const [k, v] of Object.entries(extra)) {
    const key = cutUtf8(k, CLAIM_CAPS.extraKey);
    const value = cutUtf8(v, CLAIM_CAPS.extraValue);
    if (key !== k || value !== v) changed = true;
    total += Buffer.byteLength(key) + Buffer.byteLength(value);
    if (total > CLAIM_CAPS.extraTotal) return out; // the rest is dropped
    out[key] = value;
  }
  return changed ? out : extra;
}
