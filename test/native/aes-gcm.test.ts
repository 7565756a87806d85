// AES-256-GCM through the addon: Wycheproof known answers, interoperability with node:crypto,
// rejection of every single-bit modification, and the async (thread pool) path.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';

import { aeadAsync, native, type SlotHandle } from '../../src/native/index.js';
import { hex, readVectorJson } from '../helpers/vectors.js';

interface WycheproofCase {
  tcId: number;
  comment: string;
  flags: string[];
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  result: 'valid' | 'invalid' | 'acceptable';
}
interface WycheproofGroup {
  keySize: number;
  ivSize: number;
  tagSize: number;
  tests: WycheproofCase[];
}
interface WycheproofFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: WycheproofGroup[];
}

const wycheproof = readVectorJson<WycheproofFile>('wycheproof_aes_gcm_test.json');
const groups = wycheproof.testGroups.filter((g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128);
const cases = groups.flatMap((g) => g.tests);
const expectedCount = cases.length;

const slots: SlotHandle[] = [];

/** The prescribed import path: secure buffer → slotImport → secureRelease. */
function importKey(key: Uint8Array): SlotHandle {
  const buf = native.secureBuffer(32);
  buf.set(key);
  const slot = native.slotImport(buf);
  native.secureRelease(buf);
  slots.push(slot);
  return slot;
}

afterAll(() => {
  for (const s of slots) native.slotDestroy(s);
});

function seal(slot: SlotHandle, iv: Uint8Array, pt: Uint8Array, aad: Uint8Array): Buffer {
  const out = Buffer.alloc(pt.length + 16);
  native.gcmSeal(slot, out, iv, pt, aad);
  return out;
}

function nodeSeal(key: Uint8Array, iv: Uint8Array, pt: Uint8Array, aad: Uint8Array): Buffer {
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  return Buffer.concat([c.update(pt), c.final(), c.getAuthTag()]);
}

function nodeOpen(key: Uint8Array, iv: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, iv);
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([d.update(sealed.subarray(0, sealed.length - 16)), d.final()]);
}

describe('Wycheproof AES-GCM (keySize 256, ivSize 96, tagSize 128)', () => {
  let exercised = 0;
  let exercisedValid = 0;
  let exercisedInvalid = 0;

  it('selects a non-empty set of cases with only known result values', () => {
    expect(wycheproof.algorithm).toBe('AES-GCM');
    expect(groups.length).toBeGreaterThan(0);
    expect(expectedCount).toBeGreaterThan(0);
    for (const c of cases) expect(['valid', 'invalid', 'acceptable']).toContain(c.result);
    // Both kinds must be present, or the suite would not test rejection at all.
    expect(cases.some((c) => c.result === 'valid')).toBe(true);
    expect(cases.some((c) => c.result === 'invalid')).toBe(true);
  });

  it.each(cases.map((c) => [c.tcId, c.result, c.comment || '-', c] as const))(
    'tcId %i (%s: %s)',
    (_id, _result, _comment, c) => {
      const key = hex(c.key);
      const iv = hex(c.iv);
      const aad = hex(c.aad);
      const msg = hex(c.msg);
      const sealed = Buffer.concat([hex(c.ct), hex(c.tag)]);
      expect(key.length).toBe(32);
      expect(iv.length).toBe(12);
      const slot = importKey(key);

      const out = Buffer.alloc(msg.length).fill(0xa5);
      const opened = sealed.length >= 16 ? native.gcmOpen(slot, out, iv, sealed, aad) : false;

      if (c.result === 'valid') {
        expect(seal(slot, iv, msg, aad).toString('hex')).toBe(sealed.toString('hex'));
        expect(opened).toBe(true);
        expect(out.toString('hex')).toBe(msg.toString('hex'));
        exercisedValid++;
      } else if (c.result === 'invalid') {
        expect(opened).toBe(false);
        // Unauthenticated plaintext is never handed out: the output is wiped.
        expect(out.equals(Buffer.alloc(out.length))).toBe(true);
        exercisedInvalid++;
      } else {
        // 'acceptable': either outcome is allowed, but success must give the right plaintext.
        if (opened) expect(out.toString('hex')).toBe(msg.toString('hex'));
      }
      exercised++;
      native.slotDestroy(slot);
    },
  );

  it('exercised every selected case', () => {
    expect(exercised).toBeGreaterThan(0);
    expect(exercised).toBe(expectedCount);
    expect(exercisedValid + exercisedInvalid).toBeLessThanOrEqual(expectedCount);
    expect(exercisedValid).toBe(cases.filter((c) => c.result === 'valid').length);
    expect(exercisedInvalid).toBe(cases.filter((c) => c.result === 'invalid').length);
  });
});

describe('interoperability with node:crypto aes-256-gcm', () => {
  const key = randomBytes(32);
  const slot = importKey(key);
  const lengths = [0, 1, 15, 16, 17, 31, 64, 1000, 4096, 65_537];
  const aads = [Buffer.alloc(0), randomBytes(1), randomBytes(13), randomBytes(300)];

  it('native seal opens with node:crypto', () => {
    for (const len of lengths) {
      for (const aad of aads) {
        const pt = randomBytes(len);
        const iv = randomBytes(12);
        const sealed = seal(slot, iv, pt, aad);
        expect(sealed.length).toBe(len + 16);
        expect(nodeOpen(key, iv, sealed, aad).equals(pt)).toBe(true);
        // Same inputs, same bytes.
        expect(sealed.equals(nodeSeal(key, iv, pt, aad))).toBe(true);
      }
    }
  });

  it('node:crypto seal opens with native', () => {
    for (const len of lengths) {
      for (const aad of aads) {
        const pt = randomBytes(len);
        const iv = randomBytes(12);
        const sealed = nodeSeal(key, iv, pt, aad);
        const out = Buffer.alloc(len);
        expect(native.gcmOpen(slot, out, iv, sealed, aad)).toBe(true);
        expect(out.equals(pt)).toBe(true);
      }
    }
  });

  it('honours byteOffset of Uint8Array views (subarrays of a larger buffer)', () => {
    const backing = randomBytes(256);
    const iv = backing.subarray(3, 15);
    const pt = backing.subarray(17, 117);
    const aad = backing.subarray(121, 140);
    const outBacking = Buffer.alloc(200);
    const out = outBacking.subarray(40, 40 + pt.length + 16);
    native.gcmSeal(slot, out, iv, pt, aad);
    expect(Buffer.from(out).equals(nodeSeal(key, Buffer.from(iv), Buffer.from(pt), Buffer.from(aad)))).toBe(true);
    // Bytes outside the view are untouched.
    expect(outBacking.subarray(0, 40).equals(Buffer.alloc(40))).toBe(true);
    expect(outBacking.subarray(40 + pt.length + 16).equals(Buffer.alloc(200 - 40 - pt.length - 16))).toBe(true);
    const plain = new Uint8Array(pt.length);
    expect(native.gcmOpen(slot, plain, iv, out, aad)).toBe(true);
    expect(Buffer.from(plain).equals(pt)).toBe(true);
  });

  it('a failed open does not disturb the slot\'s shared context for later seals', () => {
    const iv = randomBytes(12);
    const pt = randomBytes(100);
    const aad = randomBytes(7);
    const first = seal(slot, iv, pt, aad);
    const bad = Buffer.from(first);
    bad[0]! ^= 1;
    expect(native.gcmOpen(slot, Buffer.alloc(100), iv, bad, aad)).toBe(false);
    expect(seal(slot, iv, pt, aad).equals(first)).toBe(true);
    const out = Buffer.alloc(100);
    expect(native.gcmOpen(slot, out, iv, first, aad)).toBe(true);
    expect(out.equals(pt)).toBe(true);
  });

  it('different slots with different keys do not share state', () => {
    const key2 = randomBytes(32);
    const slot2 = importKey(key2);
    const iv = randomBytes(12);
    const pt = randomBytes(50);
    const a = seal(slot, iv, pt, Buffer.alloc(0));
    const b = seal(slot2, iv, pt, Buffer.alloc(0));
    expect(a.equals(b)).toBe(false);
    expect(a.equals(nodeSeal(key, iv, pt, Buffer.alloc(0)))).toBe(true);
    expect(b.equals(nodeSeal(key2, iv, pt, Buffer.alloc(0)))).toBe(true);
    expect(native.gcmOpen(slot2, Buffer.alloc(50), iv, a, Buffer.alloc(0))).toBe(false);
  });
});

describe('every single-bit modification is rejected', () => {
  const key = randomBytes(32);
  const slot = importKey(key);
  const pt = randomBytes(32);
  const aad = randomBytes(16);
  const iv = randomBytes(12);
  const sealed = seal(slot, iv, pt, aad);

  function opens(i: Uint8Array, s: Uint8Array, a: Uint8Array): boolean {
    const out = Buffer.alloc(pt.length).fill(0x5a);
    const ok = native.gcmOpen(slot, out, i, s, a);
    if (!ok) expect(out.equals(Buffer.alloc(out.length))).toBe(true);
    else expect(out.equals(pt)).toBe(true);
    return ok;
  }

  function countAccepted(target: Buffer, check: () => boolean, from = 0, to = target.length): number {
    let accepted = 0;
    for (let byte = from; byte < to; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        target[byte]! ^= 1 << bit;
        if (check()) accepted++;
        target[byte]! ^= 1 << bit;
      }
    }
    return accepted;
  }

  it('the unmodified message opens', () => {
    expect(opens(iv, sealed, aad)).toBe(true);
  });

  it('ciphertext: all 256 bits', () => {
    const s = Buffer.from(sealed);
    expect(countAccepted(s, () => opens(iv, s, aad), 0, 32)).toBe(0);
    expect(s.equals(sealed)).toBe(true);
  });

  it('tag: all 128 bits', () => {
    const s = Buffer.from(sealed);
    expect(countAccepted(s, () => opens(iv, s, aad), 32, 48)).toBe(0);
  });

  it('iv: all 96 bits', () => {
    const v = Buffer.from(iv);
    expect(countAccepted(v, () => opens(v, sealed, aad))).toBe(0);
  });

  it('aad: all 128 bits', () => {
    const a = Buffer.from(aad);
    expect(countAccepted(a, () => opens(iv, sealed, a))).toBe(0);
  });

  it('truncation, extension and a dropped AAD are rejected', () => {
    for (let len = 16; len < sealed.length; len++) {
      expect(native.gcmOpen(slot, Buffer.alloc(len - 16), iv, sealed.subarray(0, len), aad)).toBe(false);
    }
    const longer = Buffer.concat([sealed, Buffer.from([0])]);
    expect(native.gcmOpen(slot, Buffer.alloc(33), iv, longer, aad)).toBe(false);
    expect(native.gcmOpen(slot, Buffer.alloc(32), iv, sealed, Buffer.alloc(0))).toBe(false);
    expect(native.gcmOpen(slot, Buffer.alloc(32), iv, sealed, aad.subarray(0, 15))).toBe(false);
  });
});

describe('aeadAsync (libuv pool) with AES-256-GCM', () => {
  const key = randomBytes(32);
  const slot = importKey(key);
  const payload = randomBytes(1 << 20);
  const aad = randomBytes(32);
  const iv = randomBytes(12);

  it('1 MiB seal matches the sync output and node:crypto; open round-trips', async () => {
    const asyncOut = Buffer.alloc(payload.length + 16);
    await expect(aeadAsync('gcm', true, slot, asyncOut, iv, payload, aad)).resolves.toBe(true);
    const syncOut = seal(slot, iv, payload, aad);
    expect(asyncOut.equals(syncOut)).toBe(true);
    expect(asyncOut.equals(nodeSeal(key, iv, payload, aad))).toBe(true);

    const opened = Buffer.alloc(payload.length);
    await expect(aeadAsync('gcm', false, slot, opened, iv, asyncOut, aad)).resolves.toBe(true);
    expect(opened.equals(payload)).toBe(true);
  });

  it('async open of a modified message resolves false and wipes the output', async () => {
    const sealed = seal(slot, iv, payload, aad);
    sealed[sealed.length - 1]! ^= 0x80;
    const opened = Buffer.alloc(payload.length).fill(0xee);
    await expect(aeadAsync('gcm', false, slot, opened, iv, sealed, aad)).resolves.toBe(false);
    expect(opened.equals(Buffer.alloc(payload.length))).toBe(true);
  });

  it('many concurrent async seals all match their sync counterparts', async () => {
    const jobs = Array.from({ length: 16 }, (_, i) => {
      const pt = randomBytes(4096 + i * 1000);
      const v = randomBytes(12);
      const out = Buffer.alloc(pt.length + 16);
      return { pt, v, out, done: aeadAsync('gcm', true, slot, out, v, pt, aad) };
    });
    const results = await Promise.all(jobs.map((j) => j.done));
    expect(results.every((r) => r === true)).toBe(true);
    for (const j of jobs) expect(j.out.equals(seal(slot, j.v, j.pt, aad))).toBe(true);
  });

  it('destroying the slot while a job is in flight neither crashes nor breaks the job', async () => {
    const s = importKey(key);
    const out = Buffer.alloc(payload.length + 16);
    const job = aeadAsync('gcm', true, s, out, iv, payload, aad);
    expect(native.slotDestroy(s)).toBe(true);
    expect(native.slotValid(s)).toBe(false);
    expect(native.slotDestroy(s)).toBe(false);
    await expect(job).resolves.toBe(true);
    expect(out.equals(nodeSeal(key, iv, payload, aad))).toBe(true);
    expect(() => native.gcmSeal(s, Buffer.alloc(16), iv, Buffer.alloc(0), aad)).toThrow(/not a live key slot/);
  });
});
