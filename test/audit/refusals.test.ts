// The refusal aggregator and the claim caps on their own: one line per key and interval, counts
// that add up, a bounded number of keys, and claimed fields cut to their caps with a marker.
import { describe, expect, it } from 'vitest';
import { RefusalAggregator, OVERFLOW_KEY } from '../../src/audit/refusals.js';
import { CLAIM_CAPS, capClaims } from '../../src/audit/claims.js';
import type { AuditEvent } from '../../src/ops/pipeline.js';

const refusal = (ip: string): AuditEvent => ({
  op: 'status', transport: 'http', caller: { kind: 'access-key', sourceIp: ip }, claimed: undefined,
  outcome: 'denied', errorCode: 'AccessDenied', durationUs: 1,
});

describe('RefusalAggregator', () => {
  it('writes the first refusal of a key, then one summary per interval with the count; a quiet key closes and opens anew', () => {
    const lines: Array<{ ip: string | undefined; count?: number }> = [];
    const agg = new RefusalAggregator((e, s) => {
      lines.push({ ip: e.caller.sourceIp, ...(s !== undefined ? { count: s.count } : {}) });
      return true;
    }, 8);
    for (let i = 0; i < 1000; i++) agg.refuse('a', refusal('10.0.0.1'), i);
    expect(lines).toEqual([{ ip: '10.0.0.1' }]);
    agg.tick();
    expect(lines).toEqual([{ ip: '10.0.0.1' }, { ip: '10.0.0.1', count: 999 }]);
    agg.tick(); // quiet interval: nothing written, window kept once
    agg.tick(); // quiet again: closed
    expect(agg.openWindows).toBe(0);
    agg.refuse('a', refusal('10.0.0.1'), 5000);
    expect(lines).toHaveLength(3);
  });

  it('keys past the limit share one overflow window, so memory and lines stay bounded', () => {
    let written = 0;
    const agg = new RefusalAggregator(() => ++written > 0, 4);
    for (let i = 0; i < 10_000; i++) agg.refuse(`ip-${i}`, refusal(`10.0.${i >> 8}.${i & 255}`), i);
    expect(agg.openWindows).toBe(5); // 4 + the overflow window
    expect(written).toBe(5);
    agg.drain();
    expect(written).toBe(6); // one summary: the overflow window's 9,995
    expect(OVERFLOW_KEY).toBe('*');
  });

  it('counts refusals the log cannot take now and writes them at the next interval that it can', () => {
    let writable = false;
    const counts: number[] = [];
    const agg = new RefusalAggregator((_e, s) => {
      if (!writable) return false;
      counts.push(s?.count ?? 1);
      return true;
    }, 8);
    for (let i = 0; i < 50; i++) agg.refuse('a', refusal('10.0.0.1'), i);
    agg.tick();
    expect(counts).toEqual([]);
    writable = true;
    agg.tick();
    expect(counts).toEqual([50]);
  });
});

describe('capClaims', () => {
  it('returns the same object when everything fits, and cuts each field at its cap with the original size in "cut"', () => {
    const small = { principal: 'svc', user_agent: 'app/1.0', extra: { a: 'b' } };
    expect(capClaims(small)).toBe(small);
    const cut = capClaims({ principal: 'é'.repeat(200), user_agent: 'u'.repeat(1024), extra: { __proto__x: 'v', big: 'x'.repeat(1024) } });
    expect(Buffer.byteLength(cut.principal as string)).toBeLessThanOrEqual(CLAIM_CAPS.principal);
    expect(cut.principal).toBe('é'.repeat(64)); // never half a character
    expect(cut.user_agent).toHaveLength(CLAIM_CAPS.user_agent);
    expect(cut.extra?.big).toHaveLength(CLAIM_CAPS.extraValue);
    expect(cut.cut).toEqual({ principal: 400, user_agent: 1024, extra: 2 });
  });

  it('keeps a "__proto__" extra key as a key and drops pairs past the extra total', () => {
    const extra = JSON.parse('{"__proto__":"p"}') as Record<string, string>;
    for (let i = 0; i < 32; i++) extra[`k${i}`] = 'v'.repeat(100);
    const cut = capClaims({ extra });
    expect(Object.prototype.hasOwnProperty.call(cut.extra, '__proto__')).toBe(true);
    const bytes = Object.entries(cut.extra ?? {}).reduce((n, [k, v]) => n + k.length + v.length, 0);
    expect(bytes).toBeLessThanOrEqual(CLAIM_CAPS.extraTotal);
    expect(cut.cut).toEqual({ extra: 33 });
    expect(JSON.stringify(cut)).toContain('"__proto__":"p"');
  });
});
