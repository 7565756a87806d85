// Every binding refuses bad arguments with a TypeError / RangeError / Error whose message names
// the argument, and never crashes. A table lists, per function, a valid argument list and the
// substitutions that must be refused.
import { createDecipheriv, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';

import { native, type SlotHandle } from '../../src/native/index.js';

type Fn = (...args: unknown[]) => unknown;
const MISSING = Symbol('missing');
type ErrorClass = typeof Error | typeof TypeError | typeof RangeError;

interface BadArg {
  index: number;
  value: unknown;
  cls: ErrorClass;
  message: RegExp;
  label: string;
}
interface Entry {
  fn: string;
  /** A valid argument list (built fresh per call). */
  args: () => unknown[];
  /** Whether the valid call may be made (false for calls that change process-wide state). */
  baseline: boolean;
  bad: BadArg[];
}

const live = native.slotGenerate();
const live2 = native.slotGenerate();
const dead = native.slotGenerate();
native.slotDestroy(dead);
const created: SlotHandle[] = [];
afterAll(() => {
  for (const s of [live, live2, ...created]) native.slotDestroy(s);
});

const b = (n: number) => Buffer.alloc(n);
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const detached = (() => {
  const d = native.secureBuffer(16);
  native.secureRelease(d);
  return d;
})();

function describeValue(v: unknown): string {
  if (v === MISSING) return 'missing';
  if (typeof v === 'number' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  if (typeof v === 'string') return `string ${JSON.stringify(v)}`;
  if (v === null) return 'null';
  if (v instanceof Uint8Array) return `${v.constructor.name}(${v.length})`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}`;
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function bad(index: number, value: unknown, cls: ErrorClass, message: RegExp): BadArg {
  return { index, value, cls, message, label: describeValue(value) };
}

// ---- reusable families of bad values ------------------------------------------------------------

function badSlot(index: number, name: string): BadArg[] {
  const notLive = new RegExp(`^${esc(name)} is not a live key slot`);
  const notHandle = new RegExp(`^${esc(name)} must be a slot handle`);
  return [
    bad(index, dead, Error, notLive),
    bad(index, 1.5, Error, notLive),
    bad(index, -1, Error, notLive),
    bad(index, 2 ** 60, Error, notLive),
    bad(index, Number.NaN, Error, notLive),
    bad(index, Number.POSITIVE_INFINITY, Error, notLive),
    bad(index, 999_999, Error, notLive),
    bad(index, String(live), TypeError, notHandle),
    bad(index, 1n, TypeError, notHandle),
    bad(index, null, TypeError, notHandle),
    bad(index, {}, TypeError, notHandle),
    bad(index, MISSING, TypeError, notHandle),
  ];
}

function badBytes(index: number, name: string): BadArg[] {
  const m = new RegExp(`^${esc(name)} must be a Buffer or Uint8Array`);
  return [
    bad(index, 'not bytes', TypeError, m),
    bad(index, MISSING, TypeError, m),
    bad(index, null, TypeError, m),
    bad(index, undefined, TypeError, m),
    bad(index, 42, TypeError, m),
    bad(index, [1, 2, 3], TypeError, m),
    bad(index, new ArrayBuffer(32), TypeError, m),
    bad(index, new Uint16Array(16), TypeError, m),
    bad(index, new Int8Array(32), TypeError, m),
    bad(index, new Uint8ClampedArray(32), TypeError, m),
    bad(index, new DataView(new ArrayBuffer(32)), TypeError, m),
  ];
}

function badExactSize(index: number, name: string, size: number, wrong: number[]): BadArg[] {
  return wrong.map((n) => bad(index, b(n), RangeError, new RegExp(`^${esc(name)} must be ${size} bytes, got ${n}`)));
}

function badUint(index: number, name: string, min: number, max: number): BadArg[] {
  const range = new RegExp(`^${esc(name)} must be an integer from ${min} to ${max}`);
  const type = new RegExp(`^${esc(name)} must be a number`);
  const out = [
    bad(index, -1, RangeError, range),
    bad(index, 1.5, RangeError, range),
    bad(index, Number.NaN, RangeError, range),
    bad(index, Number.POSITIVE_INFINITY, RangeError, range),
    bad(index, max + 1, RangeError, range),
    bad(index, 2 ** 60, RangeError, range),
    bad(index, String(min), TypeError, type),
    bad(index, null, TypeError, type),
    bad(index, BigInt(min), TypeError, type),
    bad(index, MISSING, TypeError, type),
  ];
  if (min > 0) out.push(bad(index, min - 1, RangeError, range));
  return out;
}

function badBoolean(index: number, name: string): BadArg[] {
  const m = new RegExp(`^${esc(name)} must be a boolean`);
  return [bad(index, 'true', TypeError, m), bad(index, 1, TypeError, m), bad(index, null, TypeError, m), bad(index, MISSING, TypeError, m)];
}

// ---- the table -------------------------------------------------------------------------------

const PT = 10;
const envelopeFor = (header: number, pt: number) => b(header + 24 + pt + 16);

const table: Entry[] = [
  {
    fn: 'setAllowUnlockedMemory',
    args: () => [false],
    baseline: false,
    bad: badBoolean(0, 'allow'),
  },
  {
    fn: 'setMaxSlots',
    args: () => [131072],
    baseline: false,
    bad: badUint(0, 'maxSlots', 1, 1 << 20),
  },
  {
    fn: 'slotImport',
    args: () => [b(32)],
    baseline: true,
    bad: [...badBytes(0, 'material'), ...badExactSize(0, 'material', 32, [0, 1, 16, 31, 33, 64]), bad(0, detached, RangeError, /^material must be 32 bytes, got 0/)],
  },
  {
    fn: 'slotExport',
    args: () => [live, b(32)],
    baseline: true,
    bad: [...badSlot(0, 'slot'), ...badBytes(1, 'out'), ...badExactSize(1, 'out', 32, [0, 31, 33])],
  },
  {
    fn: 'slotDestroy',
    args: () => [dead],
    baseline: true,
    bad: [
      bad(0, 'x', TypeError, /^slot must be a slot handle/),
      bad(0, null, TypeError, /^slot must be a slot handle/),
      bad(0, MISSING, TypeError, /^slot must be a slot handle/),
    ],
  },
  {
    fn: 'secureBuffer',
    args: () => [32],
    baseline: false, // would need a release; covered in memory.test.ts
    bad: badUint(0, 'length', 1, 1 << 20),
  },
  {
    fn: 'secureRelease',
    args: () => [detached],
    baseline: true,
    bad: badBytes(0, 'buffer'),
  },
  {
    fn: 'xaesSeal',
    args: () => [live, b(PT + 16), b(24), b(PT), b(3)],
    baseline: true,
    bad: [
      ...badSlot(0, 'slot'),
      ...badBytes(1, 'out'),
      ...[0, PT, PT + 15, PT + 17].map((n) => bad(1, b(n), RangeError, /^out must be plaintext length \+ 16 bytes \(26\)/)),
      bad(1, detached, RangeError, /^out must be plaintext length \+ 16/),
      ...badBytes(2, 'nonce'),
      ...badExactSize(2, 'nonce', 24, [0, 12, 23, 25, 32]),
      ...badBytes(3, 'plaintext'),
      ...badBytes(4, 'aad'),
    ],
  },
  {
    fn: 'xaesOpen',
    args: () => [live, b(PT), b(24), b(PT + 16), b(0)],
    baseline: true,
    bad: [
      ...badSlot(0, 'slot'),
      ...badBytes(1, 'out'),
      ...[0, PT - 1, PT + 1, PT + 16].map((n) => bad(1, b(n), RangeError, /^out must be ciphertext length - 16 bytes \(10\)/)),
      ...badBytes(2, 'nonce'),
      ...badExactSize(2, 'nonce', 24, [0, 23, 25]),
      ...badBytes(3, 'ciphertext'),
      ...[0, 1, 15].map((n) => bad(3, b(n), RangeError, new RegExp(`^ciphertext must be at least 16 bytes, got ${n}`))),
      ...badBytes(4, 'aad'),
    ],
  },
  {
    fn: 'xaesSealEnvelope',
    args: () => [live, envelopeFor(8, PT), 8, b(PT), b(0)],
    baseline: true,
    bad: [
      ...badSlot(0, 'slot'),
      ...badBytes(1, 'out'),
      ...[0, 8, 8 + 24 + PT + 15].map((n) => bad(1, b(n), RangeError, /^out must be at least 58 bytes/)),
      ...badUint(2, 'headerLength', 0, 4096),
      ...badBytes(3, 'plaintext'),
      ...badBytes(4, 'aad'),
    ],
  },
  {
    fn: 'xaesOpenEnvelope',
    args: () => [live, b(PT), envelopeFor(8, PT), 8, b(0)],
    baseline: true,
    bad: [
      ...badSlot(0, 'slot'),
      ...badBytes(1, 'out'),
      ...[0, PT - 1].map((n) => bad(1, b(n), RangeError, /^out must be at least 10 bytes/)),
      ...badBytes(2, 'envelope'),
      ...badUint(3, 'headerLength', 0, 4096),
      ...badBytes(4, 'aad'),
    ],
  },
  {
    fn: 'xaesOpenEnvelopeBatch',
    args: () => [live, b(3 * PT), b(3 * (8 + 24 + PT + 16)), 8 + 24 + PT + 16, 8, 3, b(0)],
    baseline: true,
    bad: [
      ...badSlot(0, 'slot'),
      ...badBytes(1, 'out'),
      bad(1, b(3 * PT - 1), RangeError, /^out must be at least 30 bytes/),
      ...badBytes(2, 'envelopes'),
      bad(2, b(3 * 58 - 1), RangeError, /^envelopes must be at least 174 bytes/),
      ...badUint(3, 'envelopeLength', 1, 1 << 20),
      bad(3, 47, RangeError, /^envelopeLength must be at least 48/),
      ...badUint(4, 'headerLength', 0, 4096),
      ...badUint(5, 'count', 1, 65536),
      ...badBytes(6, 'aad'),
    ],
  },
  {
    fn: 'generateDataKeys',
    args: () => [live, b(2 * 32), b(2 * (8 + 24 + 32 + 16)), 8, 32, 2, b(0)],
    baseline: true,
    bad: [
      ...badSlot(0, 'slot'),
      ...badBytes(1, 'keysOut'),
      bad(1, b(63), RangeError, /^keysOut must be at least 64 bytes/),
      ...badBytes(2, 'envelopesOut'),
      bad(2, b(159), RangeError, /^envelopesOut must be at least 160 bytes/),
      ...badUint(3, 'headerLength', 0, 4096),
      ...badUint(4, 'keyBytes', 1, 1024),
      ...badUint(5, 'count', 1, 65536),
      ...badBytes(6, 'aad'),
    ],
  },
  {
    fn: 'gcmSeal',
    args: () => [live, b(PT + 16), b(12), b(PT), b(0)],
    baseline: true,
    bad: [
      ...badSlot(0, 'slot'),
      ...badBytes(1, 'out'),
      ...[0, PT + 15, PT + 17].map((n) => bad(1, b(n), RangeError, /^out must be plaintext length \+ 16 bytes/)),
      ...badBytes(2, 'iv'),
      ...badExactSize(2, 'iv', 12, [0, 11, 13, 16, 24]),
      ...badBytes(3, 'plaintext'),
      ...badBytes(4, 'aad'),
    ],
  },
  {
    fn: 'gcmOpen',
    args: () => [live, b(PT), b(12), b(PT + 16), b(0)],
    baseline: true,
    bad: [
      ...badSlot(0, 'slot'),
      ...badBytes(1, 'out'),
      ...[0, PT + 1].map((n) => bad(1, b(n), RangeError, /^out must be ciphertext length - 16 bytes/)),
      ...badBytes(2, 'iv'),
      ...badExactSize(2, 'iv', 12, [0, 11, 13, 24]),
      ...badBytes(3, 'ciphertext'),
      ...[0, 15].map((n) => bad(3, b(n), RangeError, /^ciphertext must be at least 16 bytes/)),
      ...badBytes(4, 'aad'),
    ],
  },
  {
    fn: 'aeadAsync',
    args: () => [2, true, live, b(PT + 16), b(12), b(PT), b(0), () => {}],
    baseline: true,
    bad: [
      ...badUint(0, 'algorithm', 1, 2),
      bad(0, 3, RangeError, /^algorithm must be an integer from 1 to 2/),
      ...badBoolean(1, 'seal'),
      ...badSlot(2, 'slot'),
      ...badBytes(3, 'out'),
      ...[0, PT, PT + 17].map((n) => bad(3, b(n), RangeError, /^out must be 26 bytes/)),
      ...badBytes(4, 'nonce'),
      ...badExactSize(4, 'nonce', 12, [0, 11, 13, 24]),
      ...badBytes(5, 'input'),
      ...badBytes(6, 'aad'),
      bad(7, MISSING, TypeError, /^callback must be a function/),
      bad(7, 'cb', TypeError, /^callback must be a function/),
      bad(7, null, TypeError, /^callback must be a function/),
    ],
  },
  {
    fn: 'wrapSlot',
    args: () => [live, live2, b(72), b(4)],
    baseline: true,
    bad: [...badSlot(0, 'wrappingSlot'), ...badSlot(1, 'targetSlot'), ...badBytes(2, 'out'), ...badExactSize(2, 'out', 72, [0, 71, 73]), ...badBytes(3, 'aad')],
  },
  {
    fn: 'unwrapSlot',
    args: () => [live, b(72), b(0)],
    baseline: true,
    bad: [...badSlot(0, 'wrappingSlot'), ...badBytes(1, 'wrapped'), ...badExactSize(1, 'wrapped', 72, [0, 24, 71, 73]), ...badBytes(2, 'aad')],
  },
  {
    fn: 'peerCredentials',
    args: () => [0],
    baseline: false, // fd 0 is not a socket here; covered in peercred.test.ts
    bad: badUint(0, 'fd', 0, 0x7fffffff),
  },
  {
    fn: 'hardenProcess',
    args: () => [],
    baseline: false,
    bad: [bad(0, true, TypeError, /^hardenProcess takes no arguments: mlockall was removed/), bad(0, false, TypeError, /^hardenProcess takes no arguments/)],
  },
  {
    fn: 'sdNotify',
    args: () => ['/nonexistent/notify.sock', 'READY=1'],
    baseline: false,
    bad: [
      bad(0, MISSING, TypeError, /^socketPath must be a string/),
      bad(0, 5, TypeError, /^socketPath must be a string/),
      bad(0, Buffer.from('/x'), TypeError, /^socketPath must be a string/),
      bad(0, 'relative', Error, /^NOTIFY_SOCKET must be an absolute path/),
      bad(0, '', Error, /^NOTIFY_SOCKET must be 1\.\.107 bytes/),
      bad(1, 5, TypeError, /^message must be a string/),
      bad(1, null, TypeError, /^message must be a string/),
    ],
  },
  {
    fn: 'xaesIntermediates',
    args: () => [live, b(24)],
    baseline: true,
    bad: [...badSlot(0, 'slot'), ...badBytes(1, 'nonce'), ...badExactSize(1, 'nonce', 24, [0, 12, 23, 25])],
  },
];

// Functions added to the addon after this suite was written: covered when exported.
const nativeAny = native as unknown as Record<string, Fn>;
if (typeof nativeAny.slotFromScrypt === 'function') {
  table.push({
    fn: 'slotFromScrypt',
    args: () => [Buffer.from('correct horse'), b(16), 10, 8, 1],
    baseline: true,
    bad: [
      ...badBytes(0, 'passphrase'),
      bad(0, b(0), RangeError, /^passphrase must not be empty/),
      ...badBytes(1, 'salt'),
      ...[0, 15].map((n) => bad(1, b(n), RangeError, new RegExp(`^salt must be at least 16 bytes, got ${n}`))),
      ...badUint(2, 'log2N', 10, 22),
      ...badUint(3, 'r', 1, 32),
      ...badUint(4, 'p', 1, 16),
    ],
  });
}
if (typeof nativeAny.lockFile === 'function') {
  table.push({ fn: 'lockFile', args: () => [0], baseline: false, bad: badUint(0, 'fd', 0, 0x7fffffff) });
}

// Functions without arguments to refuse; they must ignore junk arguments.
const noArgs = ['stats', 'slotGenerate', 'slotValid', 'wipeAll', 'dumpable'];

function call(entry: Entry, badArg?: BadArg): unknown {
  const args = entry.args();
  if (badArg) {
    if (badArg.value === MISSING) args.length = badArg.index;
    else args[badArg.index] = badArg.value;
  }
  return nativeAny[entry.fn]!(...args);
}

function expectRefused(entry: Entry, badArg: BadArg): void {
  let thrown: unknown;
  try {
    call(entry, badArg);
  } catch (e) {
    thrown = e;
  }
  expect(thrown, 'must throw').toBeInstanceOf(badArg.cls);
  if (badArg.cls === Error) {
    // Plain Error for "valid type, refused value" (dead handles, OS refusals) — not a Type/RangeError.
    expect((thrown as Error).constructor).toBe(Error);
  }
  expect((thrown as Error).message).toMatch(badArg.message);
}

function afterCall(result: unknown): void {
  // Valid baseline calls may create slots (slotImport, unwrapSlot, slotFromScrypt); keep no garbage.
  if (typeof result === 'number' && native.slotValid(result as SlotHandle)) created.push(result as SlotHandle);
}

describe('the table covers the addon', () => {
  it('every exported function is listed', () => {
    const listed = new Set([...table.map((e) => e.fn), ...noArgs]);
    const exported = Object.keys(native).filter((k) => typeof nativeAny[k] === 'function');
    expect(exported.length).toBeGreaterThan(20);
    expect(exported.filter((k) => !listed.has(k))).toEqual([]);
  });
});

describe.each(table.map((e) => [e.fn, e] as const))('%s', (_name, entry) => {
  if (entry.baseline) {
    it('accepts its valid argument list', () => {
      expect(() => afterCall(call(entry))).not.toThrow();
    });
  }
  it.each(entry.bad.map((x) => [x.index, x.label, x] as const))('argument %i = %s is refused', (_i, _label, badArg) => {
    expectRefused(entry, badArg);
  });
});

describe('lenient queries', () => {
  it('slotDestroy and slotValid answer false for any non-live number instead of throwing', () => {
    for (const v of [dead, 1.5, -1, 2 ** 60, Number.NaN, Number.POSITIVE_INFINITY, 999_999]) {
      expect(native.slotValid(v as SlotHandle)).toBe(false);
      expect(native.slotDestroy(v as SlotHandle)).toBe(false);
    }
    for (const v of ['1', null, undefined, {}, 1n]) expect((native.slotValid as Fn)(v)).toBe(false);
    expect((native.slotValid as Fn)()).toBe(false);
    expect(native.slotValid(live)).toBe(true);
  });

  it('argument-free functions ignore junk arguments', () => {
    expect((native.stats as Fn)('junk', 1)).toMatchObject({ slotsInUse: expect.any(Number) });
    expect((native.dumpable as Fn)(null)).toBe(1);
  });

  it('the xaesIntermediates hook is enabled for tests (RUSTFS_KMS_NATIVE_TEST_HOOKS=1)', () => {
    expect(process.env.RUSTFS_KMS_NATIVE_TEST_HOOKS).toBe('1');
    expect(native.xaesIntermediates(live, b(24)).derivedKey).toHaveLength(32);
  });
});

describe('after a storm of bad calls', () => {
  it('the process is alive, no slot leaked, and a normal seal still works', () => {
    const inUse = native.stats().slotsInUse;
    let calls = 0;
    let refused = 0;
    for (let round = 0; round < 3; round++) {
      for (const entry of table) {
        for (const x of entry.bad) {
          calls++;
          try {
            call(entry, x);
          } catch {
            refused++;
          }
        }
      }
    }
    expect(calls).toBeGreaterThan(500);
    expect(refused).toBe(calls);
    expect(native.stats().slotsInUse).toBe(inUse);

    const key = randomBytes(32);
    const kb = native.secureBuffer(32);
    kb.set(key);
    const slot = native.slotImport(kb);
    native.secureRelease(kb);
    created.push(slot);
    const iv = randomBytes(12);
    const pt = randomBytes(1000);
    const aad = randomBytes(20);
    const out = b(pt.length + 16);
    native.gcmSeal(slot, out, iv, pt, aad);
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.setAAD(aad);
    d.setAuthTag(out.subarray(pt.length));
    expect(Buffer.concat([d.update(out.subarray(0, pt.length)), d.final()]).equals(pt)).toBe(true);

    const xs = b(pt.length + 16);
    native.xaesSeal(live, xs, b(24), pt, aad);
    const back = b(pt.length);
    expect(native.xaesOpen(live, back, b(24), xs, aad)).toBe(true);
    expect(back.equals(pt)).toBe(true);
  });
});
