// Framing and MessagePack codec of the socket protocol (DESIGN §4, docs/protocol.md). Pure functions
// and classes, no sockets: the server and the client both build on these.
//
//   frame   = u32be N ‖ N bytes holding exactly one MessagePack value
//   encode  = strict subset of MessagePack: nil, bool, int (≤ 64-bit), float 64, str (UTF-8), bin,
//             array, map with str keys. Never an extension type.
//   decode  = a fast structural pre-scan of the raw bytes (types, lengths, limits, UTF-8, keys) and,
//             when it passes, msgpackr to build the values.
import { validateContext } from '../ops/context.js';
import { isUtf8 } from 'node:buffer';
import { Packr, Unpackr, RESERVE_START_SPACE } from 'msgpackr';
import {
  DECODE_LIMITS,
  KmsError,
  MAX_OP_BYTES,
  isErrorCode,
  type ErrorCode,
  type WireContext,
  type WireErrorBody,
  type WireRequest,
  type WireResponse,
} from '../ops/protocol.js';
import type { ByteBudget } from './byte-budget.js';

// ---------------------------------------------------------------------------------------------------
// Errors

/**
 * The bytes of a frame (or the value in it) break the protocol. `code` is always `InvalidRequest`;
 * `id` is the request id when it could be read (validateRequest), 0 otherwise.
 */
export class ProtocolError extends KmsError {
  readonly id: number;

  constructor(message: string, id = 0) {
    super('InvalidRequest', message);
    this.name = 'ProtocolError';
    this.id = id;
  }
}

/**
 * A length prefix announced a frame above the limit. Thrown by {@link FrameReader.push} as soon as the
 * 4 header bytes are in, before any of the body is buffered. `code` is always `FrameTooLarge`.
 */
export class FrameTooLargeError extends KmsError {
  /** The announced body length N. */
  readonly length: number;
  readonly limit: number;
  /** Complete frame bodies that preceded the offending header in the same push (usually none). */
  readonly frames: Buffer[];

  constructor(length: number, limit: number, frames: Buffer[] = []) {
    super('FrameTooLarge', `frame is ${length} bytes; the limit is ${limit}`);
    this.name = 'FrameTooLargeError';
    this.length = length;
    this.limit = limit;
    this.frames = frames;
  }
}

// ---------------------------------------------------------------------------------------------------
// Encoding

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  structuredClone: false,
  bundleStrings: false,
  variableMapSize: true,
  encodeUndefinedAsNil: true,
  useFloat32: 0,
  useToJSON: false,
});

const INT64_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const { maxDepth: MAX_DEPTH, maxMapEntries: MAX_MAP_ENTRIES, maxArrayLength: MAX_ARRAY_LENGTH } = DECODE_LIMITS;

function describe(v: object): string {
  const proto: unknown = Object.getPrototypeOf(v);
  const ctor = proto !== null && typeof proto === 'object' ? (proto as { constructor?: { name?: unknown } }).constructor : undefined;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? ctor.name : 'object';
}

function isForbiddenKey(k: string): boolean {
  return k === '__proto__' || k === 'constructor' || k === 'prototype';
}

/**
 * Checks that `v` only holds types the protocol allows (throwing a TypeError otherwise) and reports
 * whether it must be rewritten before msgpackr sees it: object properties that are `undefined` are
 * left out of the map, and integers outside the 32-bit range must become int64 (msgpackr would write
 * them as float 64).
 */
function inspect(v: unknown, depth: number): boolean {
  switch (typeof v) {
    case 'string':
    case 'boolean':
    case 'undefined':
      return false;
    case 'number':
      return (v > 0xffffffff || v < -0x80000000) && Number.isSafeInteger(v);
    case 'bigint':
      if (v > INT64_SAFE || v < -INT64_SAFE) throw new TypeError(`cannot encode ${v}n: beyond ±(2^53-1)`);
      return false;
    case 'object': {
      if (v === null || v instanceof Uint8Array) return false;
      if (depth >= MAX_DEPTH) throw new TypeError(`cannot encode a value nested deeper than ${MAX_DEPTH} levels`);
      if (Array.isArray(v)) {
        const n = v.length;
        if (n > MAX_ARRAY_LENGTH) throw new TypeError(`cannot encode an array of ${n} elements; the limit is ${MAX_ARRAY_LENGTH}`);
        let rewrite = false;
        for (let i = 0; i < n; i++) if (inspect(v[i], depth + 1)) rewrite = true;
        return rewrite;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) throw new TypeError(`cannot encode a ${describe(v)}`);
      const o = v as Record<string, unknown>;
      let rewrite = false;
      let count = 0;
      for (const k in o) {
        count++;
        if (isForbiddenKey(k)) throw new TypeError(`cannot encode map key ${JSON.stringify(k)}`);
        const x = o[k];
        if (x === undefined || inspect(x, depth + 1)) rewrite = true;
      }
      if (count > MAX_MAP_ENTRIES) throw new TypeError(`cannot encode a map of ${count} entries; the limit is ${MAX_MAP_ENTRIES}`);
      return rewrite;
    }
    default:
      throw new TypeError(`cannot encode a ${typeof v}`);
  }
}

function rewrite(v: unknown): unknown {
  if (typeof v === 'number') {
    return (v > 0xffffffff || v < -0x80000000) && Number.isSafeInteger(v) ? BigInt(v) : v;
  }
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(rewrite);
  const o = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k in o) {
    const x = o[k];
    if (x !== undefined) out[k] = rewrite(x);
  }
  return out;
}

/**
 * Encodes one value as a complete frame (length prefix included). Allowed values: null, undefined
 * (nil; as an object property it is left out), booleans, numbers (integers within ±(2^53-1) become
 * MessagePack ints, other numbers float 64), bigints within ±(2^53-1), strings (str), Uint8Array and
 * Buffer (bin), arrays, and plain objects (maps with str keys). Anything else throws a TypeError, as
 * does a value the decoder would refuse (nesting, map/array sizes, forbidden keys).
 *
 * The returned Buffer is a view into msgpackr's write slab with the 4 header bytes reserved in front,
 * so the body is never copied; msgpackr never writes over a region it has returned, so the frame is
 * safe to keep and to hand to socket.write().
 */
export function encodeFrame(value: unknown): Buffer {
  const v = inspect(value, 0) ? rewrite(value) : value;
  const out = packr.pack(v, RESERVE_START_SPACE | 4);
  const n = out.length - 4;
  out[0] = n >>> 24;
  out[1] = (n >>> 16) & 0xff;
  out[2] = (n >>> 8) & 0xff;
  out[3] = n & 0xff;
  return out;
}

/** `{ id, ok: true, result }` as a frame. */
export function encodeOk(id: number, result: unknown): Buffer {
  return encodeFlatOk(id, result) ?? encodeFrame({ id, ok: true, result });
}

/**
 * encodeOk for an answer that holds plaintexts: the frame is the only copy the encoder leaves, so
 * zeroing it once written leaves none. msgpackr copies what it wrote so far into a bigger buffer when
 * its slab runs out, and drops the old one unzeroed; a fresh buffer sized for the worst case avoids that.
 */
export function encodeSecretOk(id: number, result: unknown): Buffer {
  const flat = encodeFlatOk(id, result);
  if (flat !== null) return flat;
  const value = { id, ok: true, result };
  packr.useBuffer(Buffer.allocUnsafeSlow(4 + packedSizeBound(value, 0) + PACKR_SLACK_BYTES));
  return encodeFrame(value);
}

/** msgpackr wants this much room past the value before it starts (it checks strings at 3 bytes a char). */
const PACKR_SLACK_BYTES = 0x1000;

/** An upper bound on the MessagePack size of v as msgpackr checks room for it. */
function packedSizeBound(v: unknown, depth: number): number {
  if (typeof v === 'string') return 5 + v.length * 3;
  if (typeof v !== 'object' || v === null) return 9;
  if (v instanceof Uint8Array) return 5 + v.length;
  if (depth > MAX_DEPTH) return 9; // encodeFrame refuses it anyway
  let size = 5;
  if (Array.isArray(v)) {
    for (const x of v) size += packedSizeBound(x, depth + 1);
    return size;
  }
  for (const k in v as Record<string, unknown>) size += 5 + k.length * 3 + packedSizeBound((v as Record<string, unknown>)[k], depth + 1);
  return size;
}

// ---------------------------------------------------------------------------------------------------
// Hot path: the data operations answer flat maps of bin, short ASCII str and uint32 values
// (generate_data_key, encrypt, decrypt, re_encrypt). Those are written directly, byte for byte what
// encodeFrame produces (a test holds the two equal); anything else goes through msgpackr.

const FLAT_HEAD = Buffer.from([0x83, 0xa2, 0x69, 0x64]); // map(3) "id"
const FLAT_OK_RESULT = Buffer.from([0xa2, 0x6f, 0x6b, 0xc3, 0xa6, 0x72, 0x65, 0x73, 0x75, 0x6c, 0x74]); // "ok" true "result"

function uintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
}

function writeUint(out: Buffer, n: number, at: number): number {
  if (n < 0x80) {
    out[at] = n;
    return at + 1;
  }
  if (n < 0x100) {
    out[at] = 0xcc;
    out[at + 1] = n;
    return at + 2;
  }
  if (n < 0x10000) {
    out[at] = 0xcd;
    out.writeUInt16BE(n, at + 1);
    return at + 3;
  }
  out[at] = 0xce;
  out.writeUInt32BE(n, at + 1);
  return at + 5;
}

function encodeFlatOk(id: number, result: unknown): Buffer | null {
  if (typeof result !== 'object' || result === null || Array.isArray(result) || result instanceof Uint8Array) return null;
  if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) return null;
  const record = result as Record<string, unknown>;
  let size = FLAT_HEAD.length + uintSize(id) + FLAT_OK_RESULT.length + 1;
  let fields = 0;
  for (const key in record) {
    const value = record[key];
    if (value === undefined) continue;
    if (key.length > 31) return null;
    size += 1 + key.length;
    if (value instanceof Uint8Array) {
      if (value.length > 0xffff) return null;
      size += (value.length < 0x100 ? 2 : 3) + value.length;
    } else if (typeof value === 'string') {
      if (value.length > 31 || Buffer.byteLength(value) !== value.length) return null;
      size += 1 + value.length;
    } else if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0xffffffff) {
      size += uintSize(value);
    } else {
      return null;
    }
    fields += 1;
  }
  if (fields > 15) return null;
  const out = Buffer.allocUnsafe(4 + size);
  out.writeUInt32BE(size, 0);
  let at = 4 + FLAT_HEAD.copy(out, 4);
  at = writeUint(out, id, at);
  at += FLAT_OK_RESULT.copy(out, at);
  out[at++] = 0x80 | fields;
  for (const key in record) {
    const value = record[key];
    if (value === undefined) continue;
    out[at++] = 0xa0 | key.length;
    at += out.write(key, at, 'latin1');
    if (value instanceof Uint8Array) {
      if (value.length < 0x100) {
        out[at] = 0xc4;
        out[at + 1] = value.length;
        at += 2;
      } else {
        out[at] = 0xc5;
        out.writeUInt16BE(value.length, at + 1);
        at += 3;
      }
      out.set(value, at);
      at += value.length;
    } else if (typeof value === 'string') {
      out[at++] = 0xa0 | value.length;
      at += out.write(value, at, 'latin1');
    } else {
      at = writeUint(out, value as number, at);
    }
  }
  return out;
}

/** `{ id, ok: false, error: { code, message } }` as a frame. */
export function encodeError(id: number, code: ErrorCode, message: string): Buffer {
  return encodeFrame({ id, ok: false, error: { code, message } });
}

/**
 * An error frame for whatever was thrown: a KmsError (ProtocolError and FrameTooLargeError included)
 * keeps its code and message; anything else becomes `Internal` with a fixed message, so that stray
 * exception text (which might quote data) never reaches the wire.
 */
export function encodeErrorFrom(id: number, err: unknown): Buffer {
  if (err instanceof KmsError) return encodeError(id, err.code, err.message);
  return encodeError(id, 'Internal', 'internal error');
}

// ---------------------------------------------------------------------------------------------------
// Framing

/**
 * Splits a byte stream into frame bodies. `push` takes each chunk as it arrives and returns the bodies
 * completed by it, in order (a zero-length frame yields an empty Buffer, which decodeMessage rejects).
 *
 * A body that lies entirely inside one pushed chunk is returned as a view of that chunk (no copy); a
 * body spread over several chunks is assembled in its own Buffer, which grows with the bytes that have
 * arrived (never to more than the announced length): a header alone costs nothing. The reader never
 * writes into a Buffer it has returned, so bodies are safe to keep as long as the caller does not modify
 * the chunks (with wipeCopied, the reader itself zeroes the chunk bytes it copied into a partial body).
 *
 * At most 4 header bytes plus one partial body (≤ maxFrameBytes) are held. A header announcing more
 * than maxFrameBytes throws FrameTooLargeError immediately, before the body arrives; the reader then
 * stays failed and every later push throws the same error (the connection is to be closed). With a
 * budget, the partial body's memory is reserved from it as it grows; when the budget is spent, push
 * throws BufferBudgetError (code Busy) and the connection is to be closed.
 */
export interface FrameReaderOptions {
  /** Shared memory budget of partial bodies (all connections of a server). */
  budget?: ByteBudget;
  /** Zero the chunk bytes copied into a partial body (they may be a plaintext; the server owns its chunks). */
  wipeCopied?: boolean;
}

export class FrameReader {
  readonly maxFrameBytes: number;
  private readonly header = Buffer.alloc(4);
  private headerFill = 0;
  /** The partial body: `body` holds bodyFill of bodyLength bytes. */
  private body: Buffer | null = null;
  private bodyFill = 0;
  private bodyLength = 0;
  private failure: KmsError | null = null;

  private readonly budget: ByteBudget | undefined;
  private readonly wipeCopied: boolean;

  constructor(maxFrameBytes: number, options: FrameReaderOptions = {}) {
    this.budget = options.budget;
    this.wipeCopied = options.wipeCopied === true;
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 0 || maxFrameBytes > 0xffffffff) {
      throw new RangeError(`maxFrameBytes must be an integer in 0..4294967295, not ${maxFrameBytes}`);
    }
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for the frame in progress (header and body). */
  get bufferedBytes(): number {
    return this.headerFill + this.bodyFill;
  }

  /** A frame has started and not completed. */
  get partial(): boolean {
    return this.headerFill > 0 || this.body !== null;
  }

  /** Drops the partial frame (zeroed) and returns its memory to the budget; the connection is done. */
  discard(): void {
    if (this.body !== null) {
      this.body.fill(0, 0, this.bodyFill);
      this.budget?.release(this.body.length);
      this.body = null;
    }
    this.bodyFill = 0;
    this.headerFill = 0;
  }

  push(chunk: Buffer): Buffer[] {
    if (this.failure !== null) throw this.failure;
    const out: Buffer[] = [];
    const len = chunk.length;
    let off = 0;
    while (off < len) {
      if (this.body !== null) {
        const take = Math.min(this.bodyLength - this.bodyFill, len - off);
        this.append(chunk, off, take);
        off += take;
        if (this.bodyFill === this.bodyLength) {
          const body = this.body;
          this.budget?.release(body.length);
          this.body = null;
          this.bodyFill = 0;
          out.push(body);
        }
        continue;
      }
      let n: number;
      if (this.headerFill === 0 && len - off >= 4) {
        n = chunk.readUInt32BE(off);
        off += 4;
      } else {
        const take = Math.min(4 - this.headerFill, len - off);
        chunk.copy(this.header, this.headerFill, off, off + take);
        this.headerFill += take;
        off += take;
        if (this.headerFill < 4) break;
        this.headerFill = 0;
        n = this.header.readUInt32BE(0);
      }
      if (n > this.maxFrameBytes) {
        this.failure = new FrameTooLargeError(n, this.maxFrameBytes, out);
        throw this.failure;
      }
      if (len - off >= n) {
        out.push(chunk.subarray(off, off + n));
        off += n;
      } else {
        this.body = EMPTY;
        this.bodyLength = n;
        this.append(chunk, off, len - off);
        off = len;
      }
    }
    return out;
  }

  /** Copies take bytes of the chunk into the partial body, growing it (within the budget) as needed. */
  private append(chunk: Buffer, off: number, take: number): void {
    const need = this.bodyFill + take;
    let body = this.body as Buffer;
    if (need > body.length) {
      const size = Math.min(this.bodyLength, Math.max(need, body.length * 2, MIN_PARTIAL_BYTES));
      try {
        this.budget?.reserve(size - body.length); // what is reserved always equals body.length
      } catch (err) {
        this.discard();
        this.failure = err as KmsError;
        throw err;
      }
      const grown = Buffer.allocUnsafe(size);
      body.copy(grown, 0, 0, this.bodyFill);
      body.fill(0, 0, this.bodyFill);
      this.body = body = grown;
    }
    chunk.copy(body, this.bodyFill, off, off + take);
    if (this.wipeCopied) chunk.fill(0, off, off + take); // the copy is the only one that stays
    this.bodyFill = need;
  }
}

const EMPTY = Buffer.alloc(0);
/** The first allocation of a partial body: small enough that a header alone costs little. */
const MIN_PARTIAL_BYTES = 1024;

// ---------------------------------------------------------------------------------------------------
// Decoding

const unpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  copyBuffers: true,
  moreTypes: false,
  int64AsType: 'number',
});

/**
 * The server's decoder: bin values are views of the frame body, so a plaintext argument has one copy,
 * off the V8 heap, that the server zeroes with the body. (Copies of 64 bytes or less would be small
 * typed arrays inside the V8 heap, which move to an off-heap store, unzeroed, when native code reads them.)
 */
const viewUnpackr = new Unpackr({
  useRecords: false,
  mapsAsObjects: true,
  copyBuffers: false,
  moreTypes: false,
  int64AsType: 'number',
});

// Scratch state of the pre-scan (decoding is synchronous, so one set serves the whole process).
const stackRemaining = new Int32Array(MAX_DEPTH + 1);
const stackIsMap = new Uint8Array(MAX_DEPTH + 1);
const stackKeyBase = new Int32Array(MAX_DEPTH + 1);
const keySets: Array<Set<string> | undefined> = new Array<Set<string> | undefined>(MAX_DEPTH + 1);
let keyStarts = new Int32Array(256);
let keyLens = new Int32Array(256);
/** Above this many keys in one map, duplicate detection switches from pairwise compares to a Set. */
const LINEAR_KEY_CHECK = 16;

const FORBIDDEN_KEYS = ['__proto__', 'constructor', 'prototype'].map((k) => Buffer.from(k, 'latin1'));

function hex(b: number): string {
  return '0x' + b.toString(16).padStart(2, '0');
}

function quoteKey(b: Buffer, s: number, len: number): string {
  const text = b.toString('utf8', s, s + Math.min(len, 64));
  return JSON.stringify(text) + (len > 64 ? '…' : '');
}

function truncated(what: string, at: number, needed: number, available: number): ProtocolError {
  return new ProtocolError(
    `truncated MessagePack: ${what} at offset ${at} needs ${needed} more bytes, ${Math.max(available, 0)} remain`,
  );
}

function extensionError(b: Buffer, at: number, t: number): ProtocolError {
  let typeAt = -1;
  if (t >= 0xd4 && t <= 0xd8) typeAt = at + 1;
  else if (t === 0xc7) typeAt = at + 2;
  else if (t === 0xc8) typeAt = at + 3;
  else if (t === 0xc9) typeAt = at + 5;
  let what = `MessagePack extension (${hex(t)})`;
  if (typeAt < b.length) {
    const type = (b[typeAt] << 24) >> 24;
    what = `MessagePack extension type ${type}${type === -1 ? ' (timestamp)' : ''} (${hex(t)})`;
  }
  return new ProtocolError(`${what} at offset ${at} is not allowed: the protocol uses no extension types`);
}

/** Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
function validUtf8(b: Buffer, s: number, e: number): boolean {
  let i = s;
  while (i < e) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      if (i + 1 >= e || (b[i + 1] & 0xc0) !== 0x80) return false;
      i += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      if (i + 2 >= e) return false;
      const c1 = b[i + 1];
      if (c === 0xe0 ? c1 < 0xa0 || c1 > 0xbf : c === 0xed ? c1 < 0x80 || c1 > 0x9f : (c1 & 0xc0) !== 0x80) return false;
      if ((b[i + 2] & 0xc0) !== 0x80) return false;
      i += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      if (i + 3 >= e) return false;
      const c1 = b[i + 1];
      if (c === 0xf0 ? c1 < 0x90 || c1 > 0xbf : c === 0xf4 ? c1 < 0x80 || c1 > 0x8f : (c1 & 0xc0) !== 0x80) return false;
      if ((b[i + 2] & 0xc0) !== 0x80 || (b[i + 3] & 0xc0) !== 0x80) return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
}

function sameBytes(b: Buffer, x: number, y: number, len: number): boolean {
  for (let i = 0; i < len; i++) if (b[x + i] !== b[y + i]) return false;
  return true;
}

function equalsAt(b: Buffer, pos: number, f: Buffer): boolean {
  for (let i = 0; i < f.length; i++) if (b[pos + i] !== f[i]) return false;
  return true;
}

/**
 * Walks the raw MessagePack bytes once, iteratively, and throws a ProtocolError naming the first
 * problem: truncation, the never-used byte 0xc1, any extension type, integers beyond ±(2^53-1),
 * invalid UTF-8 in a str, non-str map keys, the keys __proto__/constructor/prototype, duplicate keys
 * in one map, nesting deeper than 32, maps above 4096 entries, arrays above 65536 elements, and bytes
 * after the value.
 */
function prescan(b: Buffer): void {
  const end = b.length;
  if (end === 0) throw new ProtocolError('empty frame: a frame must hold one MessagePack value');
  let pos = 0;
  let depth = 0;
  let keyTop = 0;
  for (;;) {
    if (pos >= end) throw truncated('the next value', pos, 1, 0);
    const at = pos;
    const t = b[pos];
    const isKey = depth > 0 && stackIsMap[depth] === 1 && (stackRemaining[depth] & 1) === 0;
    let strLen = -1;
    let count = -1;
    let isMap = false;
    if (t <= 0x7f || t >= 0xe0) {
      pos += 1;
    } else if (t <= 0x8f) {
      count = t & 0x0f;
      isMap = true;
      pos += 1;
    } else if (t <= 0x9f) {
      count = t & 0x0f;
      pos += 1;
    } else if (t <= 0xbf) {
      strLen = t & 0x1f;
      pos += 1;
    } else {
      switch (t) {
        case 0xc0:
        case 0xc2:
        case 0xc3:
          pos += 1;
          break;
        case 0xc4:
        case 0xc5:
        case 0xc6: {
          const hl = t === 0xc4 ? 1 : t === 0xc5 ? 2 : 4;
          if (pos + 1 + hl > end) throw truncated('bin header', at, 1 + hl, end - pos);
          const n = hl === 1 ? b[pos + 1] : hl === 2 ? (b[pos + 1] << 8) | b[pos + 2] : b.readUInt32BE(pos + 1);
          pos += 1 + hl;
          if (n > end - pos) throw truncated(`bin of ${n} bytes`, at, n, end - pos);
          pos += n;
          break;
        }
        case 0xca:
        case 0xcb:
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xd0:
        case 0xd1:
        case 0xd2: {
          const size = t === 0xcb ? 8 : t === 0xcc || t === 0xd0 ? 1 : t === 0xcd || t === 0xd1 ? 2 : 4;
          if (pos + 1 + size > end) throw truncated('number', at, 1 + size, end - pos);
          pos += 1 + size;
          break;
        }
        case 0xcf:
        case 0xd3: {
          if (pos + 9 > end) throw truncated('64-bit integer', at, 9, end - pos);
          const hi = b.readInt32BE(pos + 1);
          const lo = b.readUInt32BE(pos + 5);
          const safe =
            t === 0xcf
              ? hi >= 0 && hi <= 0x1fffff
              : hi <= 0x1fffff && (hi > -0x200000 || (hi === -0x200000 && lo > 0));
          if (!safe) throw new ProtocolError(`integer at offset ${at} is beyond ±(2^53-1)`);
          pos += 9;
          break;
        }
        case 0xd9:
        case 0xda:
        case 0xdb: {
          const hl = t === 0xd9 ? 1 : t === 0xda ? 2 : 4;
          if (pos + 1 + hl > end) throw truncated('str header', at, 1 + hl, end - pos);
          strLen = hl === 1 ? b[pos + 1] : hl === 2 ? (b[pos + 1] << 8) | b[pos + 2] : b.readUInt32BE(pos + 1);
          pos += 1 + hl;
          break;
        }
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf: {
          const hl = t === 0xdc || t === 0xde ? 2 : 4;
          if (pos + 1 + hl > end) throw truncated(t >= 0xde ? 'map header' : 'array header', at, 1 + hl, end - pos);
          count = hl === 2 ? (b[pos + 1] << 8) | b[pos + 2] : b.readUInt32BE(pos + 1);
          isMap = t >= 0xde;
          pos += 1 + hl;
          break;
        }
        case 0xc1:
          throw new ProtocolError(`byte 0xc1 at offset ${at} is not valid MessagePack`);
        default:
          // 0xc7–0xc9 ext 8/16/32, 0xd4–0xd8 fixext
          throw extensionError(b, at, t);
      }
    }
    if (isKey && strLen < 0) {
      throw new ProtocolError(`map key at offset ${at} is not a string (type byte ${hex(t)})`);
    }
    if (strLen >= 0) {
      if (strLen > end - pos) throw truncated(`str of ${strLen} bytes`, at, strLen, end - pos);
      const strEnd = pos + strLen;
      if (strLen >= 64) {
        if (!isUtf8(b.subarray(pos, strEnd))) throw new ProtocolError(`invalid UTF-8 in string at offset ${at}`);
      } else {
        let i = pos;
        while (i < strEnd && b[i] < 0x80) i++;
        if (i < strEnd && !validUtf8(b, i, strEnd)) throw new ProtocolError(`invalid UTF-8 in string at offset ${at}`);
      }
      if (isKey) {
        if (strLen === 9 || strLen === 11) {
          for (const f of FORBIDDEN_KEYS) {
            if (f.length === strLen && equalsAt(b, pos, f)) {
              throw new ProtocolError(`map key ${JSON.stringify(f.toString('latin1'))} at offset ${at} is not allowed`);
            }
          }
        }
        const base = stackKeyBase[depth];
        const set = keySets[depth];
        if (set !== undefined) {
          const k = b.toString('latin1', pos, pos + strLen);
          if (set.has(k)) throw new ProtocolError(`duplicate map key ${quoteKey(b, pos, strLen)} at offset ${at}`);
          set.add(k);
        } else {
          for (let i = base; i < keyTop; i++) {
            if (keyLens[i] === strLen && sameBytes(b, keyStarts[i], pos, strLen)) {
              throw new ProtocolError(`duplicate map key ${quoteKey(b, pos, strLen)} at offset ${at}`);
            }
          }
          if (keyTop - base >= LINEAR_KEY_CHECK) {
            const s = new Set<string>();
            for (let i = base; i < keyTop; i++) s.add(b.toString('latin1', keyStarts[i], keyStarts[i] + keyLens[i]));
            s.add(b.toString('latin1', pos, pos + strLen));
            keySets[depth] = s;
            keyTop = base;
          } else {
            if (keyTop === keyStarts.length) {
              const grownStarts = new Int32Array(keyTop * 2);
              grownStarts.set(keyStarts);
              keyStarts = grownStarts;
              const grownLens = new Int32Array(keyTop * 2);
              grownLens.set(keyLens);
              keyLens = grownLens;
            }
            keyStarts[keyTop] = pos;
            keyLens[keyTop] = strLen;
            keyTop++;
          }
        }
      }
      pos += strLen;
    } else if (count >= 0) {
      if (depth >= MAX_DEPTH) throw new ProtocolError(`nesting deeper than ${MAX_DEPTH} levels at offset ${at}`);
      if (isMap) {
        if (count > MAX_MAP_ENTRIES) {
          throw new ProtocolError(`map at offset ${at} has ${count} entries; the limit is ${MAX_MAP_ENTRIES}`);
        }
        if (count * 2 > end - pos) throw truncated(`map of ${count} entries`, at, count * 2, end - pos);
      } else {
        if (count > MAX_ARRAY_LENGTH) {
          throw new ProtocolError(`array at offset ${at} has ${count} elements; the limit is ${MAX_ARRAY_LENGTH}`);
        }
        if (count > end - pos) throw truncated(`array of ${count} elements`, at, count, end - pos);
      }
      if (count > 0) {
        depth++;
        stackRemaining[depth] = isMap ? count * 2 : count;
        stackIsMap[depth] = isMap ? 1 : 0;
        if (isMap) {
          stackKeyBase[depth] = keyTop;
          keySets[depth] = undefined;
        }
        continue;
      }
    }
    // One value is complete: close every container it completes.
    while (depth > 0) {
      if (--stackRemaining[depth] > 0) break;
      if (stackIsMap[depth] === 1) {
        keyTop = stackKeyBase[depth];
        keySets[depth] = undefined;
      }
      depth--;
    }
    if (depth === 0) break;
  }
  if (pos !== end) throw new ProtocolError(`${end - pos} trailing bytes after the MessagePack value (offset ${pos})`);
}

/**
 * Decodes the body of one frame into a value: maps become plain objects, bin becomes a Buffer (a
 * copy, never a view of `body`; with binsAsViews, a view of `body`), str a string, ints numbers. Throws ProtocolError (naming the problem)
 * for anything outside the protocol's subset of MessagePack; never throws anything else.
 */
export function decodeMessage(body: Buffer, binsAsViews = false): unknown {
  try {
    prescan(body);
  } catch (err) {
    for (let d = 1; d < keySets.length; d++) keySets[d] = undefined;
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`malformed MessagePack: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return (binsAsViews ? viewUnpackr : unpackr).unpack(body) as unknown;
  } catch (err) {
    throw new ProtocolError(`malformed MessagePack: ${err instanceof Error ? err.message : String(err)}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Request and response shape

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function isUint32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}


/**
 * Checks the envelope of a decoded request and returns it in canonical form: `id` a uint32, `op` a
 * str of 1..64 bytes (known or not: unknown operations are the server's UnknownOperation), `args` a
 * map (absent or nil → {}), `ctx` absent, nil or a map of the known string fields plus `extra` (map
 * str → str, ≤ 32 pairs), every string ≤ 1024 bytes; nil ctx fields count as absent. Any other
 * top-level field is refused. Throws ProtocolError carrying the id when it could be read (else 0).
 * The argument values themselves are the server's to check, per operation.
 */
export function validateRequest(value: unknown): WireRequest {
  if (!isMap(value)) throw new ProtocolError('a request must be a map');
  const rawId = value.id;
  if (!isUint32(rawId)) throw new ProtocolError('request id must be an unsigned 32-bit integer');
  const id = rawId;
  let op: unknown;
  let args: unknown;
  let rawCtx: unknown;
  for (const k in value) {
    switch (k) {
      case 'id':
        break;
      case 'op':
        op = value.op;
        break;
      case 'args':
        args = value.args;
        break;
      case 'ctx':
        rawCtx = value.ctx;
        break;
      default:
        throw new ProtocolError(`unknown request field ${JSON.stringify(k.slice(0, 64))}`, id);
    }
  }
  if (typeof op !== 'string' || op.length === 0) throw new ProtocolError('request op must be a non-empty string', id);
  if (op.length > MAX_OP_BYTES || Buffer.byteLength(op, 'utf8') > MAX_OP_BYTES) {
    throw new ProtocolError(`request op is longer than ${MAX_OP_BYTES} bytes`, id);
  }
  if (args === undefined || args === null) args = {};
  else if (!isMap(args)) throw new ProtocolError('request args must be a map', id);
  let ctx: WireContext | undefined;
  try {
    ctx = validateContext(rawCtx);
  } catch (err) {
    throw new ProtocolError((err as Error).message, id);
  }
  const req: WireRequest = { id, op, args: args as Record<string, unknown> };
  if (ctx !== undefined) req.ctx = ctx;
  return req;
}

/**
 * Checks a decoded response (the client's side): `id` uint32, `ok` bool, then `result` (any value;
 * absent or nil → null) or `error` with str `code` and `message`. An error code this version does not
 * know becomes `Internal` (the message is kept). Throws ProtocolError for anything else.
 */
export function validateResponse(value: unknown): WireResponse {
  if (!isMap(value)) throw new ProtocolError('a response must be a map');
  const id = value.id;
  if (!isUint32(id)) throw new ProtocolError('response id must be an unsigned 32-bit integer');
  const ok = value.ok;
  if (ok === true) {
    const result = value.result;
    return { id, ok: true, result: result === undefined ? null : result };
  }
  if (ok !== false) throw new ProtocolError('response ok must be a boolean', id);
  const error = value.error;
  if (!isMap(error) || typeof error.code !== 'string' || typeof error.message !== 'string') {
    throw new ProtocolError('response error must be a map with str code and message', id);
  }
  const body: WireErrorBody = {
    code: isErrorCode(error.code) ? error.code : 'Internal',
    message: error.message,
  };
  return { id, ok: false, error: body };
}
