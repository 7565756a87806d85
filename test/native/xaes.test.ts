// XAES-256-GCM through the addon: the C2SP vectors and intermediates, the accumulated SHAKE-128
// test, the envelope API, batched data keys, and wrapping one slot under another.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';

import { NodeXaes } from '../../bench/lib/xaes-node.js';
import { aeadAsync, native, WRAPPED_KEY_BYTES, type SlotHandle } from '../../src/native/index.js';
import { hex, readVectorJson } from '../helpers/vectors.js';

interface XaesVector {
  key: string;
  nonce_ascii: string;
  L: string;
  K1: string;
  derived_key: string;
  derived_nonce: string;
  plaintext_ascii: string;
  aad_ascii: string;
  ciphertext_and_tag: string;
}
interface XaesFile {
  algorithm: string;
  tests: XaesVector[];
  accumulated: { description: string; iterations_10000: string; iterations_1000000: string };
}

const vectors = readVectorJson<XaesFile>('xaes_256_gcm.json');

const slots: SlotHandle[] = [];
function importKey(key: Uint8Array): SlotHandle {
  const buf = native.secureBuffer(32);
  buf.set(key);
  const slot = native.slotImport(buf);
  native.secureRelease(buf);
  slots.push(slot);
  return slot;
}
function generate(): SlotHandle {
  const s = native.slotGenerate();
  slots.push(s);
  return s;
}
afterAll(() => {
  for (const s of slots) native.slotDestroy(s);
});

function xaesSeal(slot: SlotHandle, nonce: Uint8Array, pt: Uint8Array, aad: Uint8Array): Buffer {
  const out = Buffer.alloc(pt.length + 16);
  native.xaesSeal(slot, out, nonce, pt, aad);
  return out;
}
function isZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

describe('C2SP XAES-256-GCM vectors', () => {
  it('has exactly the two published vectors', () => {
    expect(vectors.algorithm).toBe('XAES-256-GCM');
    expect(vectors.tests).toHaveLength(2);
  });

  it.each(vectors.tests.map((v, i) => [i, v] as const))('vector %i: ciphertext, intermediates, open', (_i, v) => {
    const key = hex(v.key);
    const nonce = Buffer.from(v.nonce_ascii, 'ascii');
    const pt = Buffer.from(v.plaintext_ascii, 'ascii');
    const aad = Buffer.from(v.aad_ascii, 'ascii');
    const slot = importKey(key);

    const sealed = xaesSeal(slot, nonce, pt, aad);
    expect(sealed.toString('hex')).toBe(v.ciphertext_and_tag);

    const mid = native.xaesIntermediates(slot, nonce);
    expect(mid.L.toString('hex')).toBe(v.L);
    expect(mid.K1.toString('hex')).toBe(v.K1);
    expect(mid.derivedKey.toString('hex')).toBe(v.derived_key);
    expect(nonce.subarray(12).toString('hex')).toBe(v.derived_nonce);

    const out = Buffer.alloc(pt.length);
    expect(native.xaesOpen(slot, out, nonce, hex(v.ciphertext_and_tag), aad)).toBe(true);
    expect(out.equals(pt)).toBe(true);

    // The node:crypto reference agrees on every intermediate (it is what the bench compares with).
    const ref = new NodeXaes(key);
    expect(ref.L.toString('hex')).toBe(v.L);
    expect(ref.K1.toString('hex')).toBe(v.K1);
    expect(ref.deriveKey(nonce).toString('hex')).toBe(v.derived_key);
    expect(ref.seal(nonce, pt, aad).toString('hex')).toBe(v.ciphertext_and_tag);
  });

  it('a wrong key, nonce, aad or tag does not open a vector', () => {
    const v = vectors.tests[1]!;
    const nonce = Buffer.from(v.nonce_ascii, 'ascii');
    const aad = Buffer.from(v.aad_ascii, 'ascii');
    const sealed = hex(v.ciphertext_and_tag);
    const right = importKey(hex(v.key));
    const wrong = importKey(hex(vectors.tests[0]!.key));
    const out = Buffer.alloc(sealed.length - 16);
    expect(native.xaesOpen(wrong, out, nonce, sealed, aad)).toBe(false);
    const n2 = Buffer.from(nonce);
    n2[23]! ^= 1; // only the GCM half of the nonce
    expect(native.xaesOpen(right, out, n2, sealed, aad)).toBe(false);
    const n3 = Buffer.from(nonce);
    n3[0]! ^= 1; // only the derivation half
    expect(native.xaesOpen(right, out, n3, sealed, aad)).toBe(false);
    expect(native.xaesOpen(right, out, nonce, sealed, Buffer.alloc(0))).toBe(false);
    const s2 = Buffer.from(sealed);
    s2[s2.length - 1]! ^= 1;
    expect(native.xaesOpen(right, out, nonce, s2, aad)).toBe(false);
    expect(isZero(out)).toBe(true);
  });

  it('agrees with the node:crypto reference on random inputs, both directions', () => {
    for (let i = 0; i < 200; i++) {
      const key = randomBytes(32);
      const slot = importKey(key);
      const ref = new NodeXaes(key);
      const nonce = randomBytes(24);
      const pt = randomBytes(i * 7);
      const aad = randomBytes(i % 37);
      const sealed = xaesSeal(slot, nonce, pt, aad);
      expect(sealed.equals(ref.seal(nonce, pt, aad))).toBe(true);
      const back = ref.open(nonce, sealed, aad);
      expect(back?.equals(pt)).toBe(true);
      const out = Buffer.alloc(pt.length);
      expect(native.xaesOpen(slot, out, nonce, ref.seal(nonce, pt, aad), aad)).toBe(true);
      expect(out.equals(pt)).toBe(true);
      native.slotDestroy(slot);
    }
  });
});

describe('accumulated SHAKE-128 test', () => {
  it('describes the procedure this test implements', () => {
    const d = vectors.accumulated.description;
    expect(d).toMatch(/SHAKE-128/);
    expect(d).toMatch(/key\[32\], nonce\[24\]/);
    expect(d).toMatch(/1-byte length/);
  });

  it('10,000 iterations hash to iterations_10000', () => {
    const iterations = 10_000;
    // Each iteration reads at most 32 + 24 + 1 + 255 + 1 + 255 = 568 bytes of the XOF stream; one
    // long output of the empty-input SHAKE-128 is the same stream read incrementally.
    const stream = createHash('shake128', { outputLength: iterations * 568 }).update('').digest();
    expect(stream.subarray(0, 16).toString('hex')).toBe('7f9c2ba4e88f827d616045507605853e');
    let pos = 0;
    const read = (n: number): Buffer => {
      if (pos + n > stream.length) throw new Error('XOF stream exhausted');
      const b = stream.subarray(pos, pos + n);
      pos += n;
      return b;
    };
    const digest = createHash('shake128', { outputLength: 32 });
    const keyBuf = native.secureBuffer(32);
    let opened = 0;
    try {
      for (let i = 0; i < iterations; i++) {
        const key = read(32);
        const nonce = read(24);
        const pt = read(read(1)[0]!);
        const aad = read(read(1)[0]!);
        keyBuf.set(key);
        const slot = native.slotImport(keyBuf);
        const sealed = xaesSeal(slot, nonce, pt, aad);
        digest.update(sealed);
        const out = Buffer.alloc(pt.length);
        if (native.xaesOpen(slot, out, nonce, sealed, aad) && out.equals(pt)) opened++;
        expect(native.slotDestroy(slot)).toBe(true);
      }
    } finally {
      native.secureRelease(keyBuf);
    }
    expect(opened).toBe(iterations);
    expect(digest.digest('hex')).toBe(vectors.accumulated.iterations_10000);
  });
});

describe('envelope API', () => {
  const slot = generate();
  const headerLength = 16;
  const header = randomBytes(headerLength);
  const pt = randomBytes(32);
  const aad = randomBytes(16);

  function sealEnvelope(plaintext: Uint8Array = pt, a: Uint8Array = aad, h: Uint8Array = header): Buffer {
    const out = Buffer.alloc(h.length + 24 + plaintext.length + 16);
    out.set(h, 0);
    const written = native.xaesSealEnvelope(slot, out, h.length, plaintext, a);
    expect(written).toBe(out.length);
    return out;
  }
  function openEnvelope(env: Uint8Array, a: Uint8Array = aad, h = headerLength, capacity = pt.length): [boolean, Buffer] {
    const out = Buffer.alloc(capacity).fill(0x77);
    const ok = native.xaesOpenEnvelope(slot, out, env, h, a);
    return [ok, out];
  }

  it('round-trips, keeps the header, and uses a fresh nonce every time', () => {
    const env = sealEnvelope();
    expect(env.subarray(0, headerLength).equals(header)).toBe(true);
    const [ok, out] = openEnvelope(env);
    expect(ok).toBe(true);
    expect(out.equals(pt)).toBe(true);
    const env2 = sealEnvelope();
    expect(env2.subarray(headerLength, headerLength + 24).equals(env.subarray(headerLength, headerLength + 24))).toBe(false);
    expect(env2.equals(env)).toBe(false);
  });

  it('is detached XAES-256-GCM with AAD = header ‖ nonce ‖ aad', () => {
    const env = sealEnvelope();
    const nonce = env.subarray(headerLength, headerLength + 24);
    const sealed = env.subarray(headerLength + 24);
    const out = Buffer.alloc(pt.length);
    expect(native.xaesOpen(slot, out, nonce, sealed, Buffer.concat([header, nonce, aad]))).toBe(true);
    expect(out.equals(pt)).toBe(true);
  });

  it('round-trips with an empty header, empty plaintext and empty aad', () => {
    const env = sealEnvelope(Buffer.alloc(0), Buffer.alloc(0), Buffer.alloc(0));
    expect(env.length).toBe(40);
    expect(native.xaesOpenEnvelope(slot, Buffer.alloc(0), env, 0, Buffer.alloc(0))).toBe(true);
    expect(native.xaesOpenEnvelope(slot, Buffer.alloc(0), env, 0, Buffer.alloc(1))).toBe(false);
  });

  it('a larger out buffer is fine and only the plaintext prefix is written', () => {
    const env = sealEnvelope();
    const [ok, out] = openEnvelope(env, aad, headerLength, pt.length + 10);
    expect(ok).toBe(true);
    expect(out.subarray(0, pt.length).equals(pt)).toBe(true);
    expect(out.subarray(pt.length).equals(Buffer.alloc(10, 0x77))).toBe(true);
  });

  it('every single-bit flip in header, nonce, ciphertext, tag and aad is rejected (out wiped)', () => {
    const env = sealEnvelope();
    const regions = {
      header: [0, headerLength],
      nonce: [headerLength, headerLength + 24],
      ciphertext: [headerLength + 24, headerLength + 24 + pt.length],
      tag: [headerLength + 24 + pt.length, env.length],
    } as const;
    let flips = 0;
    for (const [name, [from, to]] of Object.entries(regions)) {
      for (let byte = from; byte < to; byte++) {
        for (let bit = 0; bit < 8; bit++) {
          env[byte]! ^= 1 << bit;
          const [ok, out] = openEnvelope(env);
          env[byte]! ^= 1 << bit;
          expect(ok, `${name} byte ${byte} bit ${bit}`).toBe(false);
          expect(isZero(out), `${name} byte ${byte} bit ${bit} wipes out`).toBe(true);
          flips++;
        }
      }
    }
    const a = Buffer.from(aad);
    for (let byte = 0; byte < a.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        a[byte]! ^= 1 << bit;
        const [ok, out] = openEnvelope(env, a);
        a[byte]! ^= 1 << bit;
        expect(ok, `aad byte ${byte} bit ${bit}`).toBe(false);
        expect(isZero(out)).toBe(true);
        flips++;
      }
    }
    expect(flips).toBe((env.length + aad.length) * 8);
    // Untouched, it still opens.
    expect(openEnvelope(env)[0]).toBe(true);
  });

  it('truncated, extended or mis-framed envelopes return false without throwing', () => {
    const env = sealEnvelope();
    for (let len = 0; len < env.length; len++) {
      let ok: boolean | undefined;
      expect(() => {
        ok = native.xaesOpenEnvelope(slot, Buffer.alloc(pt.length), env.subarray(0, len), headerLength, aad);
      }).not.toThrow();
      expect(ok, `length ${len}`).toBe(false);
    }
    expect(openEnvelope(Buffer.concat([env, Buffer.from([0])]), aad, headerLength, pt.length + 1)[0]).toBe(false);
    expect(openEnvelope(env, aad, headerLength - 1, pt.length + 1)[0]).toBe(false);
    expect(openEnvelope(env, aad, headerLength + 1)[0]).toBe(false);
    expect(openEnvelope(env.subarray(1), aad, headerLength - 1)[0]).toBe(false);
  });

  it('another slot cannot open it', () => {
    const env = sealEnvelope();
    const other = generate();
    expect(native.xaesOpenEnvelope(other, Buffer.alloc(pt.length), env, headerLength, aad)).toBe(false);
  });
});

describe('generateDataKeys and xaesOpenEnvelopeBatch', () => {
  const slot = generate();
  const headerLength = 8;
  const keyBytes = 32;
  const record = headerLength + 24 + keyBytes + 16;
  const aad = Buffer.from('bucket/object-key');

  function generateKeys(count: number): { keys: Buffer; envs: Buffer; header: Buffer } {
    const header = randomBytes(headerLength);
    const keys = Buffer.alloc(count * keyBytes);
    const envs = Buffer.alloc(count * record);
    envs.set(header, 0);
    native.generateDataKeys(slot, keys, envs, headerLength, keyBytes, count, aad);
    return { keys, envs, header };
  }

  it.each([1, 16])('count %i: every key opens from its own envelope', (count) => {
    const { keys, envs, header } = generateKeys(count);
    const seen = new Set<string>();
    for (let i = 0; i < count; i++) {
      const env = envs.subarray(i * record, (i + 1) * record);
      const key = keys.subarray(i * keyBytes, (i + 1) * keyBytes);
      expect(env.subarray(0, headerLength).equals(header)).toBe(true);
      expect(isZero(key)).toBe(false);
      seen.add(key.toString('hex'));
      seen.add('nonce:' + env.subarray(headerLength, headerLength + 24).toString('hex'));
      const out = Buffer.alloc(keyBytes);
      expect(native.xaesOpenEnvelope(slot, out, env, headerLength, aad)).toBe(true);
      expect(out.equals(key)).toBe(true);
      expect(native.xaesOpenEnvelope(slot, Buffer.alloc(keyBytes), env, headerLength, Buffer.from('other'))).toBe(false);
    }
    // Fresh randomness for every key and every nonce.
    expect(seen.size).toBe(2 * count);
  });

  it.each([1, 16])('count %i: the batch opens all; one flipped bit fails the whole batch and wipes out', (count) => {
    const { keys, envs } = generateKeys(count);
    const out = Buffer.alloc(count * keyBytes);
    expect(native.xaesOpenEnvelopeBatch(slot, out, envs, record, headerLength, count, aad)).toBe(true);
    expect(out.equals(keys)).toBe(true);

    const positions = [0, headerLength + 3, envs.length - 1, Math.floor(count / 2) * record + headerLength + 24 + 5];
    for (const pos of positions) {
      const bad = Buffer.from(envs);
      bad[pos]! ^= 0x10;
      const wiped = Buffer.alloc(count * keyBytes).fill(0xcc);
      expect(native.xaesOpenEnvelopeBatch(slot, wiped, bad, record, headerLength, count, aad), `flip at ${pos}`).toBe(false);
      expect(isZero(wiped), `out wiped after flip at ${pos}`).toBe(true);
    }
    const wiped = Buffer.alloc(count * keyBytes).fill(0xcc);
    expect(native.xaesOpenEnvelopeBatch(slot, wiped, envs, record, headerLength, count, Buffer.from('x'))).toBe(false);
    expect(isZero(wiped)).toBe(true);
  });

  it('a batch of envelopes from xaesSealEnvelope with differing headers opens record by record', () => {
    const count = 5;
    const pt = Array.from({ length: count }, () => randomBytes(20));
    const envLen = headerLength + 24 + 20 + 16;
    const envs = Buffer.alloc(count * envLen);
    for (let i = 0; i < count; i++) {
      const rec = envs.subarray(i * envLen, (i + 1) * envLen);
      rec.set(randomBytes(headerLength));
      expect(native.xaesSealEnvelope(slot, rec, headerLength, pt[i]!, aad)).toBe(envLen);
    }
    const out = Buffer.alloc(count * 20);
    expect(native.xaesOpenEnvelopeBatch(slot, out, envs, envLen, headerLength, count, aad)).toBe(true);
    expect(out.equals(Buffer.concat(pt))).toBe(true);
  });
});

describe('wrapSlot / unwrapSlot', () => {
  const a = generate();
  const b = generate();
  const aad = Buffer.from('rustfs-kms/root-key/v1');

  function wrap(): Buffer {
    const wrapped = Buffer.alloc(WRAPPED_KEY_BYTES);
    native.wrapSlot(a, b, wrapped, aad);
    return wrapped;
  }

  it('B wrapped under A unwraps to C that interoperates with B (GCM and XAES)', () => {
    const wrapped = wrap();
    expect(wrapped.length).toBe(72);
    const c = native.unwrapSlot(a, wrapped, aad);
    expect(c).not.toBeNull();
    slots.push(c!);
    expect(c).not.toBe(b);
    expect(native.slotValid(c!)).toBe(true);

    const iv = randomBytes(12);
    const msg = randomBytes(100);
    const sealed = Buffer.alloc(116);
    native.gcmSeal(b, sealed, iv, msg, aad);
    const out = Buffer.alloc(100);
    expect(native.gcmOpen(c!, out, iv, sealed, aad)).toBe(true);
    expect(out.equals(msg)).toBe(true);

    const nonce = randomBytes(24);
    const xs = xaesSeal(c!, nonce, msg, Buffer.alloc(0));
    expect(xs.equals(xaesSeal(b, nonce, msg, Buffer.alloc(0)))).toBe(true);
    // and A is a different key
    expect(native.gcmOpen(a, out, iv, sealed, aad)).toBe(false);
  });

  it('the wrapped blob is nonce ‖ XAES(A, material, aad) ‖ tag', () => {
    // Export B's material (secure buffer) and compare with a detached open of the blob under A.
    const wrapped = wrap();
    const material = native.secureBuffer(32);
    const opened = native.secureBuffer(32);
    try {
      native.slotExport(b, material);
      expect(native.xaesOpen(a, opened, wrapped.subarray(0, 24), wrapped.subarray(24), aad)).toBe(true);
      expect(Buffer.from(opened).equals(Buffer.from(material))).toBe(true);
    } finally {
      native.secureRelease(material);
      native.secureRelease(opened);
    }
    expect(wrap().subarray(0, 24).equals(wrapped.subarray(0, 24))).toBe(false);
  });

  it('wrong aad, a flipped bit or the wrong wrapping slot gives null and leaks no slot', () => {
    const wrapped = wrap();
    const before = native.stats().slotsInUse;
    expect(native.unwrapSlot(a, wrapped, Buffer.from('rustfs-kms/root-key/v2'))).toBeNull();
    expect(native.unwrapSlot(a, wrapped, Buffer.alloc(0))).toBeNull();
    expect(native.unwrapSlot(b, wrapped, aad)).toBeNull();
    for (let byte = 0; byte < wrapped.length; byte++) {
      wrapped[byte]! ^= 0x01;
      expect(native.unwrapSlot(a, wrapped, aad), `flip at byte ${byte}`).toBeNull();
      wrapped[byte]! ^= 0x01;
    }
    expect(native.stats().slotsInUse).toBe(before);
    const c = native.unwrapSlot(a, wrapped, aad);
    expect(c).not.toBeNull();
    expect(native.slotDestroy(c!)).toBe(true);
  });
});

describe('aeadAsync with XAES-256-GCM', () => {
  it('1 MiB async seal equals the sync seal and opens back', async () => {
    const slot = generate();
    const nonce = randomBytes(24);
    const pt = randomBytes(1 << 20);
    const aad = randomBytes(9);
    const out = Buffer.alloc(pt.length + 16);
    await expect(aeadAsync('xaes', true, slot, out, nonce, pt, aad)).resolves.toBe(true);
    expect(out.equals(xaesSeal(slot, nonce, pt, aad))).toBe(true);
    const back = Buffer.alloc(pt.length);
    await expect(aeadAsync('xaes', false, slot, back, nonce, out, aad)).resolves.toBe(true);
    expect(back.equals(pt)).toBe(true);
    out[5]! ^= 4;
    await expect(aeadAsync('xaes', false, slot, back, nonce, out, aad)).resolves.toBe(false);
    expect(isZero(back)).toBe(true);
  });
});
