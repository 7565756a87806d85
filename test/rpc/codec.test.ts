import { prng } from '../../fuzz/frames.js';
import { describe, expect, it } from 'vitest';
import { Unpackr } from 'msgpackr';
import {
  FrameReader,
  FrameTooLargeError,
  ProtocolError,
  decodeMessage,
  encodeError,
  encodeErrorFrom,
  encodeFrame,
  encodeOk,
  validateRequest,
  validateResponse,
} from '../../src/rpc/codec.js';
import { KmsError as ErrorsKmsError } from '../../src/errors.js';
import { DEFAULT_MAX_FRAME_BYTES, KmsError, isKmsError } from '../../src/ops/protocol.js';

// ------------------------------------------------------------------------------------------------------
// Helpers

function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

/** Body of a frame (everything after the 4-byte length). */
function body(value: unknown): Buffer {
  return Buffer.from(encodeFrame(value).subarray(4));
}

function rejects(b: Buffer): ProtocolError {
  try {
    decodeMessage(b);
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    return err as ProtocolError;
  }
  throw new Error(`decodeMessage accepted ${b.toString('hex')}`);
}

function fixstr(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length > 31) throw new Error('fixstr only');
  return Buffer.concat([Buffer.from([0xa0 | b.length]), b]);
}

/** `depth` arrays nested in each other, the innermost empty. */
function nestedArrays(depth: number): Buffer {
  return Buffer.concat([Buffer.alloc(depth - 1, 0x91), Buffer.from([0x90])]);
}

const sampleRequest = {
  id: 7,
  op: 'generate_data_key',
  args: { key_id: 'rustfs-default', bytes: 32, context: { bucket: 'photos', object: 'a/b/ü.jpg' } },
  ctx: { principal: 'alice', request_id: 'r-1', extra: { trace: 'x' } },
};

// ------------------------------------------------------------------------------------------------------
// Encoding

describe('encodeFrame', () => {
  it('prefixes the body with its big-endian length', () => {
    const f = encodeFrame({ id: 1, op: 'health', args: {} });
    expect(f.readUInt32BE(0)).toBe(f.length - 4);
    expect(f.toString('hex')).toBe('0000001583a2696401a26f70a66865616c7468a46172677380');
  });

  it('round-trips requests and responses', () => {
    const values: unknown[] = [
      sampleRequest,
      { id: 4294967295, ok: true, result: { plaintext: Buffer.alloc(32, 7), ciphertext: Buffer.alloc(93, 9), key_id: 'k', key_version: 1 } },
      { id: 2, ok: false, error: { code: 'KeyNotFound', message: 'key nope does not exist' } },
      { n: [0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, -1, -32, -33, -128, -129, -32768, -32769, -2147483648] },
      { big: [4294967296, 1_700_000_000_000, Number.MAX_SAFE_INTEGER, -2147483649, -Number.MAX_SAFE_INTEGER] },
      { f: [0.5, -1.25, 1e300, Number.NaN, Infinity] },
      { s: ['', 'ascii', 'ünïcödé', '🔑 key', 'x'.repeat(300), 'é'.repeat(40_000)] },
      { b: [Buffer.alloc(0), Buffer.alloc(300, 1), Buffer.alloc(70_000, 2)] },
      { nested: { a: [{ b: { c: [null, true, false] } }] } },
      [],
      'top-level string',
      null,
    ];
    for (const v of values) {
      const frame = encodeFrame(v);
      expect(decodeMessage(frame.subarray(4))).toEqual(v);
    }
  });

  it('writes Buffers and Uint8Arrays as bin and strings as str', () => {
    expect(body(Buffer.from([1, 2, 3])).toString('hex')).toBe('c403010203');
    expect(body(new Uint8Array([4])).toString('hex')).toBe('c40104');
    expect(body('hi').toString('hex')).toBe('a26869');
    expect(body('x'.repeat(40))[0]).toBe(0xd9);
    const decoded = decodeMessage(body({ b: new Uint8Array([1, 2]) })) as { b: unknown };
    expect(Buffer.isBuffer(decoded.b)).toBe(true);
  });

  it('writes plain objects as standard maps and small integers as ints', () => {
    expect(body({ a: 1 }).toString('hex')).toBe('81a16101');
    expect(body(Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])))[0]).toBe(0xde);
    expect(body(200).toString('hex')).toBe('ccc8');
    expect(body(4294967295).toString('hex')).toBe('ceffffffff');
    expect(body(-1).toString('hex')).toBe('ff');
  });

  it('writes integers beyond 32 bits (times in ms) as int64, never as float', () => {
    const b = body({ created_at: 1_700_000_000_000 });
    expect(b.toString('hex')).toBe('81aa637265617465645f6174d30000018bcfe56800');
    expect(decodeMessage(b)).toEqual({ created_at: 1_700_000_000_000 });
    expect(body(-4294967296)[0]).toBe(0xd3);
    expect(body(1.5)[0]).toBe(0xcb);
  });

  it('leaves undefined properties out of maps and does not modify the input', () => {
    const input = { a: 1, b: undefined, c: { d: undefined, t: 1_700_000_000_000 } };
    expect(decodeMessage(body(input))).toEqual({ a: 1, c: { t: 1_700_000_000_000 } });
    expect(body(input).subarray(0, 1).toString('hex')).toBe('82');
    expect(input).toEqual({ a: 1, b: undefined, c: { d: undefined, t: 1_700_000_000_000 } });
    expect(body([undefined]).toString('hex')).toBe('91c0');
  });

  it('never produces an extension type and refuses values outside the protocol', () => {
    class Thing {
      x = 1;
    }
    const bad: unknown[] = [
      new Date(0),
      new Map([['a', 1]]),
      new Set([1]),
      new Thing(),
      /re/,
      new Error('e'),
      new Float32Array(2),
      new ArrayBuffer(4),
      () => 1,
      Symbol('s'),
      2n ** 60n,
      JSON.parse('{"__proto__": 1}'),
      { constructor: 'x' },
      nestedValue(33),
      new Array(65_537).fill(0),
      Object.fromEntries(Array.from({ length: 4097 }, (_, i) => [`k${i}`, 0])),
    ];
    for (const v of bad) expect(() => encodeFrame({ v }), String(v)).toThrow(TypeError);
    expect(() => encodeFrame(nestedValue(32))).not.toThrow();
  });

  it('frames are independent: later encodes never overwrite earlier frames', () => {
    const frames = Array.from({ length: 2000 }, (_, i) => encodeFrame({ id: i, pad: 'p'.repeat(i % 50) }));
    const copies = frames.map((f) => Buffer.from(f));
    encodeFrame({ big: Buffer.alloc(200_000) });
    frames.forEach((f, i) => expect(f.equals(copies[i] as Buffer)).toBe(true));
  });

  it('builds ok and error responses', () => {
    expect(decodeMessage(encodeOk(5, { healthy: true }).subarray(4))).toEqual({ id: 5, ok: true, result: { healthy: true } });
    expect(decodeMessage(encodeError(6, 'Busy', 'slow down').subarray(4))).toEqual({
      id: 6,
      ok: false,
      error: { code: 'Busy', message: 'slow down' },
    });
    expect(decodeMessage(encodeErrorFrom(7, new KmsError('KeyDisabled', 'key k is disabled')).subarray(4))).toEqual({
      id: 7,
      ok: false,
      error: { code: 'KeyDisabled', message: 'key k is disabled' },
    });
    expect(decodeMessage(encodeErrorFrom(8, new Error('secret detail')).subarray(4))).toEqual({
      id: 8,
      ok: false,
      error: { code: 'Internal', message: 'internal error' },
    });
  });
});

function nestedValue(depth: number): unknown {
  let v: unknown = [];
  for (let i = 1; i < depth; i++) v = [v];
  return v;
}

// ------------------------------------------------------------------------------------------------------
// Framing

describe('FrameReader', () => {
  const values = [sampleRequest, { id: 1, op: 'health', args: {} }, { id: 2, big: Buffer.alloc(5000, 3) }, 'x', []];
  const stream = Buffer.concat(values.map((v) => encodeFrame(v)));

  it('returns every frame of one chunk, in order', () => {
    const r = new FrameReader(DEFAULT_MAX_FRAME_BYTES);
    expect(r.push(stream).map((b) => decodeMessage(b))).toEqual(values);
    expect(r.bufferedBytes).toBe(0);
  });

  it('reassembles frames pushed one byte at a time', () => {
    const r = new FrameReader(DEFAULT_MAX_FRAME_BYTES);
    const out: Buffer[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...r.push(stream.subarray(i, i + 1)));
    expect(out.map((b) => decodeMessage(b))).toEqual(values);
  });

  it('reassembles frames across arbitrary chunk boundaries', () => {
    const rand = prng(42);
    for (let round = 0; round < 60; round++) {
      const r = new FrameReader(DEFAULT_MAX_FRAME_BYTES);
      const out: Buffer[] = [];
      for (let off = 0; off < stream.length; ) {
        const n = 1 + Math.floor(rand() * (rand() < 0.5 ? 8 : 6000));
        out.push(...r.push(stream.subarray(off, off + n)));
        off += n;
      }
      expect(out.map((b) => decodeMessage(b))).toEqual(values);
    }
  });

  it('returns bodies that stay intact when the pushed chunks are reused afterwards', () => {
    const r = new FrameReader(1024);
    const frame = encodeFrame({ id: 9, op: 'health' });
    const chunk = Buffer.from(frame.subarray(0, 5));
    const first = r.push(chunk);
    chunk.fill(0);
    const rest = r.push(Buffer.from(frame.subarray(5)));
    expect(first).toEqual([]);
    expect(decodeMessage(rest[0] as Buffer)).toEqual({ id: 9, op: 'health' });
  });

  it('yields zero-length frames as empty bodies, which decodeMessage rejects', () => {
    const r = new FrameReader(1024);
    const bodies = r.push(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, 0xc0]));
    expect(bodies.map((b) => b.length)).toEqual([0, 1]);
    expect(rejects(bodies[0] as Buffer).message).toMatch(/empty frame/);
    expect(decodeMessage(bodies[1] as Buffer)).toBeNull();
  });

  it('throws FrameTooLargeError from the header alone, before the body arrives', () => {
    const r = new FrameReader(DEFAULT_MAX_FRAME_BYTES);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(2_000_000);
    let caught: unknown;
    try {
      r.push(header);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FrameTooLargeError);
    const e = caught as FrameTooLargeError;
    expect(e.length).toBe(2_000_000);
    expect(e.limit).toBe(1_048_576);
    expect(e.code).toBe('FrameTooLarge');
    expect(e.message).toBe('frame is 2000000 bytes; the limit is 1048576');
    expect(isKmsError(e)).toBe(true);
    // The reader stays failed: the connection is to be closed.
    expect(() => r.push(Buffer.from([1]))).toThrow(FrameTooLargeError);
  });

  it('detects an oversized header split over chunks and keeps the frames before it', () => {
    const r = new FrameReader(100);
    const ok = encodeFrame('fine');
    const chunk = Buffer.concat([ok, Buffer.from([0, 0])]);
    expect(r.push(chunk).map((b) => decodeMessage(b))).toEqual(['fine']);
    try {
      r.push(Buffer.from([0, 101]));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FrameTooLargeError);
      expect((err as FrameTooLargeError).length).toBe(101);
    }
    const r2 = new FrameReader(100);
    try {
      r2.push(Buffer.concat([ok, Buffer.from([0, 0, 1, 0])]));
      expect.unreachable();
    } catch (err) {
      expect((err as FrameTooLargeError).frames.map((b) => decodeMessage(b))).toEqual(['fine']);
    }
  });

  it('accepts a frame of exactly the limit and never holds more than limit + 4 bytes', () => {
    const limit = 1000;
    const r = new FrameReader(limit);
    const frame = encodeFrame(Buffer.alloc(limit - 3)); // c5 + u16 length + bytes = limit
    expect(frame.length).toBe(limit + 4);
    let max = 0;
    const out: Buffer[] = [];
    for (let i = 0; i < frame.length; i += 7) {
      out.push(...r.push(frame.subarray(i, i + 7)));
      max = Math.max(max, r.bufferedBytes);
    }
    expect(out).toHaveLength(1);
    expect(max).toBeLessThanOrEqual(limit + 4);
  });
});

// ------------------------------------------------------------------------------------------------------
// Decoding

describe('decodeMessage rejects', () => {
  it('every extension type, naming it', () => {
    const cases = [
      'd40100', // fixext 1
      'd5010000', // fixext 2
      'd60100000000', // fixext 4
      'd701' + '00'.repeat(8), // fixext 8
      'd801' + '00'.repeat(16), // fixext 16
      'c7010500', // ext 8
      'c8000105' + '00', // ext 16
      'c90000000105' + '00', // ext 32
      'd40000', // msgpackr's "undefined"
      'd47201', // msgpackr record definition
      '81a161d6690000000001', // inside a map
    ];
    for (const c of cases) {
      expect(rejects(hex(c)).message, c).toMatch(/extension type -?\d+ .*not allowed/);
    }
    expect(rejects(hex('d6')).message).toMatch(/extension \(0xd6\).*not allowed/);
  });

  it('timestamps', () => {
    const ts32 = hex('d6ff00000001');
    const ts64 = hex('d7ff' + '00'.repeat(8));
    const ts96 = hex('c70cff' + '00'.repeat(12));
    for (const b of [ts32, ts64, ts96]) expect(rejects(b).message).toMatch(/extension type -1 \(timestamp\)/);
  });

  it('nesting deeper than 32 (and accepts 32)', () => {
    expect(decodeMessage(nestedArrays(32))).toEqual(nestedValue(32));
    expect(rejects(nestedArrays(33)).message).toMatch(/nesting deeper than 32 levels/);
    // maps count as levels too
    const maps = Buffer.concat([...Array.from({ length: 32 }, () => Buffer.concat([Buffer.from([0x81]), fixstr('a')])), Buffer.from([0x80])]);
    expect(rejects(maps).message).toMatch(/nesting deeper than 32/);
  });

  it('maps above 4096 entries and arrays above 65536 elements, before reading them', () => {
    expect(rejects(hex('de1388')).message).toBe('map at offset 0 has 5000 entries; the limit is 4096');
    expect(rejects(hex('dfffffffff')).message).toMatch(/has 4294967295 entries; the limit is 4096/);
    expect(rejects(hex('dd00011171')).message).toBe('array at offset 0 has 70001 elements; the limit is 65536');
    const map4096 = Buffer.concat([hex('de1000'), ...Array.from({ length: 4096 }, (_, i) => Buffer.concat([fixstr(`k${i}`), Buffer.from([i & 0x7f])]))]);
    expect(Object.keys(decodeMessage(map4096) as object)).toHaveLength(4096);
  });

  it('invalid UTF-8 in strings (which msgpackr alone would accept)', () => {
    const bad = [
      'a1ff', // invalid lead byte
      'a2c080', // overlong
      'a3eda080', // surrogate
      'a4f4908080', // above U+10FFFF
      'a2e282', // truncated sequence
      'a180', // lone continuation
      'd940' + '61'.repeat(62) + 'c328', // long-string path
    ];
    const lenient = new Unpackr({ useRecords: false, mapsAsObjects: true });
    for (const c of bad) {
      expect(() => lenient.unpack(hex(c)), c).not.toThrow();
      expect(rejects(hex(c)).message, c).toBe('invalid UTF-8 in string at offset 0');
    }
    // ... and in map keys
    expect(rejects(hex('81a1ff01')).message).toBe('invalid UTF-8 in string at offset 1');
    expect(decodeMessage(hex('a3e282ac'))).toBe('€');
  });

  it('trailing bytes after the value', () => {
    expect(rejects(hex('c0c0')).message).toBe('1 trailing bytes after the MessagePack value (offset 1)');
    expect(rejects(Buffer.concat([body(sampleRequest), Buffer.alloc(3)])).message).toMatch(/3 trailing bytes/);
  });

  it('__proto__, constructor and prototype keys', () => {
    for (const k of ['__proto__', 'constructor', 'prototype']) {
      const b = Buffer.concat([hex('81'), fixstr(k), hex('80')]);
      expect(rejects(b).message).toBe(`map key "${k}" at offset 1 is not allowed`);
    }
    const nested = Buffer.concat([hex('81'), fixstr('args'), hex('81'), fixstr('__proto__'), hex('81'), fixstr('polluted'), hex('c3')]);
    expect(rejects(nested).message).toMatch(/"__proto__"/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('non-string map keys and duplicate keys', () => {
    expect(rejects(hex('810101')).message).toBe('map key at offset 1 is not a string (type byte 0x01)');
    expect(rejects(hex('81c40161' + '01')).message).toMatch(/not a string \(type byte 0xc4\)/);
    expect(rejects(Buffer.concat([hex('82'), fixstr('a'), hex('01'), fixstr('a'), hex('02')])).message).toBe(
      'duplicate map key "a" at offset 4',
    );
    // Large maps use a set; same key names in different (nested) maps are fine.
    const entries = Array.from({ length: 40 }, (_, i) => Buffer.concat([fixstr(`key${i}`), hex('81'), fixstr('x'), hex('01')]));
    const okMap = Buffer.concat([hex('de0028'), ...entries]);
    expect(Object.keys(decodeMessage(okMap) as object)).toHaveLength(40);
    const dup = Buffer.concat([hex('de0029'), ...entries, fixstr('key3'), hex('c0')]);
    expect(rejects(dup).message).toMatch(/duplicate map key "key3"/);
  });

  it('truncated values at every cut of a valid message', () => {
    const full = body({ ...sampleRequest, bin: Buffer.alloc(300, 1), n: [1_700_000_000_000, 1.5, 70000, -70000] });
    for (let cut = 0; cut < full.length; cut++) {
      const e = rejects(full.subarray(0, cut));
      expect(e.message, `cut ${cut}`).toMatch(cut === 0 ? /empty frame/ : /truncated MessagePack/);
    }
    expect(rejects(hex('c5ffff00')).message).toBe('truncated MessagePack: bin of 65535 bytes at offset 0 needs 65535 more bytes, 1 remain');
    expect(rejects(hex('81a161')).message).toBe('truncated MessagePack: the next value at offset 3 needs 1 more bytes, 0 remain');
    expect(rejects(hex('92c0')).message).toBe('truncated MessagePack: array of 2 elements at offset 0 needs 2 more bytes, 1 remain');
  });

  it('the never-used byte 0xc1 and integers beyond ±(2^53-1)', () => {
    expect(rejects(hex('c1')).message).toBe('byte 0xc1 at offset 0 is not valid MessagePack');
    expect(rejects(hex('cf0020000000000000')).message).toBe('integer at offset 0 is beyond ±(2^53-1)');
    expect(rejects(hex('d3ffe00000' + '00000000')).message).toMatch(/beyond/);
    expect(decodeMessage(hex('cf001fffffffffffff'))).toBe(Number.MAX_SAFE_INTEGER);
    expect(decodeMessage(hex('d3ffe00000' + '00000001'))).toBe(-Number.MAX_SAFE_INTEGER);
    expect(decodeMessage(hex('d3ffffffffffffffff'))).toBe(-1);
  });

  it('errors are ProtocolErrors with code InvalidRequest, KmsErrors of the one shared class', () => {
    const e = rejects(hex('c1'));
    expect(e.code).toBe('InvalidRequest');
    expect(e.id).toBe(0);
    expect(e).toBeInstanceOf(ErrorsKmsError);
    expect(KmsError).toBe(ErrorsKmsError);
  });
});

describe('decodeMessage accepts', () => {
  it('every MessagePack encoding of the allowed types, from any encoder', () => {
    const cases: Array<[string, unknown]> = [
      ['c0', null],
      ['c2', false],
      ['c3', true],
      ['7f', 127],
      ['e0', -32],
      ['cc80', 128],
      ['cd0100', 256],
      ['ce00010000', 65536],
      ['cf0000000100000000', 4294967296],
      ['d080', -128],
      ['d18000', -32768],
      ['d280000000', -2147483648],
      ['d3ffffffff00000000', -4294967296],
      ['ca3fc00000', 1.5],
      ['cb3ff8000000000000', 1.5],
      ['d90161', 'a'],
      ['da000161', 'a'],
      ['db0000000161', 'a'],
      ['c40101', Buffer.from([1])],
      ['c5000101', Buffer.from([1])],
      ['c600000001' + '01', Buffer.from([1])],
      ['dc000101', [1]],
      ['dd0000000101', [1]],
      ['de0001a16101', { a: 1 }],
      ['df00000001a16101', { a: 1 }],
      ['80', {}],
      ['90', []],
    ];
    for (const [h, v] of cases) expect(decodeMessage(hex(h)), h).toEqual(v);
  });

  it('returns bin values as Buffers that do not share memory with the frame', () => {
    const b = body({ k: Buffer.from('secret') });
    const v = decodeMessage(b) as { k: Buffer };
    b.fill(0);
    expect(v.k.toString()).toBe('secret');
    expect(Buffer.isBuffer(v.k)).toBe(true);
  });
});

// ------------------------------------------------------------------------------------------------------
// Request and response envelopes

describe('validateRequest', () => {
  const base = { id: 12, op: 'describe_key', args: { key_id: 'k' } };

  function fails(value: unknown): ProtocolError {
    try {
      validateRequest(value);
    } catch (err) {
      expect(err).toBeInstanceOf(ProtocolError);
      return err as ProtocolError;
    }
    throw new Error(`accepted ${JSON.stringify(value)}`);
  }

  it('accepts a well-formed request and returns it', () => {
    expect(validateRequest(base)).toEqual(base);
    expect(validateRequest(decodeMessage(body(sampleRequest)))).toEqual(sampleRequest);
    expect(validateRequest({ id: 0, op: 'x', args: {} }).id).toBe(0);
    expect(validateRequest({ id: 4294967295, op: 'x' }).id).toBe(4294967295);
  });

  it('treats absent or nil args as {} and nil ctx (fields) as absent', () => {
    expect(validateRequest({ id: 1, op: 'health' })).toEqual({ id: 1, op: 'health', args: {} });
    expect(validateRequest({ id: 1, op: 'health', args: null, ctx: null })).toEqual({ id: 1, op: 'health', args: {} });
    expect(validateRequest({ id: 1, op: 'health', ctx: { principal: null, request_id: 'r' } }).ctx).toEqual({ request_id: 'r' });
  });

  it('passes unknown operations through (the server answers UnknownOperation)', () => {
    expect(validateRequest({ id: 3, op: 'frobnicate', args: {} }).op).toBe('frobnicate');
  });

  it('refuses a bad id with id 0', () => {
    for (const id of [undefined, -1, 1.5, 4294967296, '1', null, Number.NaN]) {
      const e = fails({ ...base, id });
      expect(e.id).toBe(0);
      expect(e.message).toBe('request id must be an unsigned 32-bit integer');
    }
    expect(fails([1, 2]).message).toBe('a request must be a map');
    expect(fails(Buffer.from('x')).message).toBe('a request must be a map');
  });

  it('refuses everything else with the request id', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ id: 12 }, /op must be a non-empty string/],
      [{ id: 12, op: '' }, /op must be a non-empty string/],
      [{ id: 12, op: 5 }, /op must be a non-empty string/],
      [{ id: 12, op: 'x'.repeat(65) }, /op is longer than 64 bytes/],
      [{ id: 12, op: 'é'.repeat(33) }, /op is longer than 64 bytes/],
      [{ ...base, args: [] }, /args must be a map/],
      [{ ...base, args: 'x' }, /args must be a map/],
      [{ ...base, args: Buffer.alloc(1) }, /args must be a map/],
      [{ ...base, extra_field: 1 }, /unknown request field "extra_field"/],
      [{ ...base, ctx: 'alice' }, /ctx must be a map/],
      [{ ...base, ctx: { principal: 5 } }, /ctx.principal must be a string/],
      [{ ...base, ctx: { principal: 'p'.repeat(1025) } }, /ctx.principal is 1025 bytes; the limit is 1024/],
      [{ ...base, ctx: { user_agent: 'é'.repeat(513) } }, /ctx.user_agent is 1026 bytes/],
      [{ ...base, ctx: { role: 'admin' } }, /unknown ctx field "role"/],
      [{ ...base, ctx: { extra: 'x' } }, /ctx.extra must be a map/],
      [{ ...base, ctx: { extra: { a: 1 } } }, /ctx.extra\["a"\] must be a string/],
      [{ ...base, ctx: { extra: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'])) } }, /more than 32 pairs/],
      [{ ...base, ctx: { extra: { ['k'.repeat(1025)]: 'v' } } }, /ctx.extra key is longer than 1024 bytes/],
      [{ ...base, ctx: { extra: { k: 'v'.repeat(1025) } } }, /ctx.extra\["k"\] is longer than 1024 bytes/],
    ];
    for (const [value, re] of cases) {
      const e = fails(value);
      expect(e.id, String(re)).toBe(12);
      expect(e.message).toMatch(re);
      expect(e.code).toBe('InvalidRequest');
    }
    expect(validateRequest({ ...base, ctx: { extra: Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v'.repeat(1024)])) } }).ctx?.extra).toBeDefined();
  });
});

describe('validateResponse', () => {
  it('accepts ok and error responses, mapping unknown codes to Internal', () => {
    expect(validateResponse({ id: 1, ok: true, result: { a: 1 } })).toEqual({ id: 1, ok: true, result: { a: 1 } });
    expect(validateResponse({ id: 1, ok: true })).toEqual({ id: 1, ok: true, result: null });
    expect(validateResponse({ id: 2, ok: false, error: { code: 'KeyDisabled', message: 'm' } })).toEqual({
      id: 2,
      ok: false,
      error: { code: 'KeyDisabled', message: 'm' },
    });
    expect(validateResponse({ id: 2, ok: false, error: { code: 'Brand New', message: 'm' } })).toEqual({
      id: 2,
      ok: false,
      error: { code: 'Internal', message: 'm' },
    });
  });

  it('refuses malformed responses', () => {
    for (const v of [null, [], { ok: true }, { id: -1, ok: true }, { id: 1 }, { id: 1, ok: 'yes' }, { id: 1, ok: false }, { id: 1, ok: false, error: { code: 1, message: 'm' } }]) {
      expect(() => validateResponse(v), JSON.stringify(v)).toThrow(ProtocolError);
    }
  });
});

// ------------------------------------------------------------------------------------------------------
// Fuzzing

const INTERESTING = [0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xc7, 0xc9, 0xcb, 0xcf, 0xd3, 0xd4, 0xd6, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xed, 0xf4, 0xff];

function randomValue(rand: () => number, depth: number): unknown {
  const pick = Math.floor(rand() * (depth > 4 ? 7 : 10));
  switch (pick) {
    case 0:
      return null;
    case 1:
      return rand() < 0.5;
    case 2:
      return Math.floor((rand() - 0.5) * 2 ** Math.floor(rand() * 53));
    case 3:
      return rand() * 1e6;
    case 4:
      return String.fromCharCode(...Array.from({ length: Math.floor(rand() * 40) }, () => 32 + Math.floor(rand() * (rand() < 0.8 ? 95 : 0x2000))));
    case 5:
      return Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
    case 6:
      return 'k';
    case 7:
      return Array.from({ length: Math.floor(rand() * 5) }, () => randomValue(rand, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(rand() * 6);
      for (let i = 0; i < n; i++) o[`f${Math.floor(rand() * 20)}`] = randomValue(rand, depth + 1);
      return o;
    }
  }
}

function mutate(rand: () => number, frame: Buffer): Buffer {
  const b = Buffer.from(frame);
  const kind = Math.floor(rand() * 6);
  const at = () => Math.floor(rand() * b.length);
  switch (kind) {
    case 0: // flip bits
      for (let i = 0; i < 1 + rand() * 4; i++) b[at()] ^= 1 << Math.floor(rand() * 8);
      return b;
    case 1: // interesting bytes
      for (let i = 0; i < 1 + rand() * 3; i++) b[at()] = INTERESTING[Math.floor(rand() * INTERESTING.length)] as number;
      return b;
    case 2: // truncate the body but keep the announced length honest
      {
        const cut = 4 + Math.floor(rand() * (b.length - 4));
        const out = b.subarray(0, cut);
        out.writeUInt32BE(cut - 4, 0);
        return out;
      }
    case 3: // insert random bytes into the body, fix the length
      {
        const pos = 4 + Math.floor(rand() * (b.length - 4));
        const extra = Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 8) }, () => Math.floor(rand() * 256)));
        const out = Buffer.concat([b.subarray(0, pos), extra, b.subarray(pos)]);
        out.writeUInt32BE(out.length - 4, 0);
        return out;
      }
    case 4: // random garbage
      return Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
    default: // random garbage with a plausible header
      {
        const n = Math.floor(rand() * 48);
        const out = Buffer.alloc(4 + n);
        out.writeUInt32BE(n, 0);
        for (let i = 4; i < out.length; i++) out[i] = rand() < 0.3 ? (INTERESTING[Math.floor(rand() * INTERESTING.length)] as number) : Math.floor(rand() * 256);
        return out;
      }
  }
}

/** Equality that treats -0 as 0 (encoders write -0 as the int 0). */
function same(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return a === b || (Number.isNaN(a) && Number.isNaN(b));
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  if (a !== null && b !== null && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    return ka.length === kb.length && ka.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return a === b;
}

describe('fuzz', () => {
  it('random values round-trip', () => {
    const rand = prng(7);
    for (let i = 0; i < 2000; i++) {
      const v = randomValue(rand, 0);
      const decoded = decodeMessage(encodeFrame(v).subarray(4));
      expect(same(decoded, v), JSON.stringify(v)).toBe(true);
    }
  });

  it('20,000 random and mutated buffers only ever raise FrameTooLargeError or ProtocolError', () => {
    const rand = prng(20_000);
    const seeds = [
      encodeFrame(sampleRequest),
      encodeFrame({ id: 1, op: 'health', args: {} }),
      encodeFrame({ id: 3, ok: true, result: { plaintext: Buffer.alloc(32, 1), ciphertext: Buffer.alloc(90, 2), key_id: 'k', key_version: 1 } }),
      encodeFrame({ id: 4, op: 'list_keys', args: { limit: 1000 }, ctx: { extra: { a: 'b' } } }),
      encodeFrame(Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`key${i}`, [i, `v${i}`, { x: 1_700_000_000_000 }]]))),
    ];
    const counts = { frames: 0, decoded: 0, protocol: 0, tooLarge: 0, validRequests: 0 };
    for (let i = 0; i < 20_000; i++) {
      const input = rand() < 0.2 ? encodeFrame(randomValue(rand, 0)) : mutate(rand, seeds[Math.floor(rand() * seeds.length)] as Buffer);
      const reader = new FrameReader(rand() < 0.5 ? 256 : 4096);
      try {
        for (let off = 0; off < input.length; ) {
          const n = 1 + Math.floor(rand() * 32);
          for (const b of reader.push(input.subarray(off, off + n))) {
            counts.frames++;
            try {
              const value = decodeMessage(b);
              counts.decoded++;
              validateRequest(value);
              counts.validRequests++;
            } catch (err) {
              if (!(err instanceof ProtocolError)) throw err;
              counts.protocol++;
            }
          }
          off += n;
        }
      } catch (err) {
        if (!(err instanceof FrameTooLargeError)) throw err;
        counts.tooLarge++;
      }
    }
    // The fuzzer reached every outcome.
    expect(counts.decoded).toBeGreaterThan(1000);
    expect(counts.protocol).toBeGreaterThan(1000);
    expect(counts.tooLarge).toBeGreaterThan(100);
    expect(counts.validRequests).toBeGreaterThan(10);
  });
});
