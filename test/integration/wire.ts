// Hand-made wire tools for the integration tests, independent of the project's codec and client:
// a tiny MessagePack encoder written from the spec, frames (u32be length ‖ body), and a raw
// connection over node:net that reads answers frame by frame. Answers are decoded with msgpackr
// (an independent implementation), integers as plain numbers, bin as Buffer.
import net from 'node:net';
import { Unpackr } from 'msgpackr';

/** A value already encoded (to send unusual but legal widths, or illegal bytes on purpose). */
export class Encoded {
  constructor(readonly bytes: Buffer) {}
}

export type MpValue = null | boolean | number | bigint | string | Buffer | Encoded | MpValue[] | { [key: string]: MpValue | undefined };

function u8(n: number): Buffer {
  return Buffer.from([n & 0xff]);
}
function be16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function be32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function encodeInt(n: number | bigint): Buffer {
  const v = BigInt(n);
  if (v >= 0n) {
    if (v <= 0x7fn) return u8(Number(v));
    if (v <= 0xffn) return Buffer.from([0xcc, Number(v)]);
    if (v <= 0xffffn) return Buffer.concat([u8(0xcd), be16(Number(v))]);
    if (v <= 0xffffffffn) return Buffer.concat([u8(0xce), be32(Number(v))]);
    const b = Buffer.alloc(9);
    b[0] = 0xcf;
    b.writeBigUInt64BE(v, 1);
    return b;
  }
  if (v >= -32n) return u8(Number(v) & 0xff);
  if (v >= -128n) return Buffer.from([0xd0, Number(v) & 0xff]);
  if (v >= -32768n) {
    const b = Buffer.alloc(3);
    b[0] = 0xd1;
    b.writeInt16BE(Number(v), 1);
    return b;
  }
  if (v >= -2147483648n) {
    const b = Buffer.alloc(5);
    b[0] = 0xd2;
    b.writeInt32BE(Number(v), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xd3;
  b.writeBigInt64BE(v, 1);
  return b;
}

function encodeStr(s: string): Buffer {
  const data = Buffer.from(s, 'utf8');
  const n = data.length;
  let head: Buffer;
  if (n <= 31) head = u8(0xa0 | n);
  else if (n <= 0xff) head = Buffer.from([0xd9, n]);
  else if (n <= 0xffff) head = Buffer.concat([u8(0xda), be16(n)]);
  else head = Buffer.concat([u8(0xdb), be32(n)]);
  return Buffer.concat([head, data]);
}

function encodeBin(data: Buffer): Buffer {
  const n = data.length;
  let head: Buffer;
  if (n <= 0xff) head = Buffer.from([0xc4, n]);
  else if (n <= 0xffff) head = Buffer.concat([u8(0xc5), be16(n)]);
  else head = Buffer.concat([u8(0xc6), be32(n)]);
  return Buffer.concat([head, data]);
}

/** Shortest-form MessagePack of `v` (undefined map values are left out, like absent fields). */
export function mp(v: MpValue): Buffer {
  if (v instanceof Encoded) return v.bytes;
  if (v === null) return u8(0xc0);
  if (v === true) return u8(0xc3);
  if (v === false) return u8(0xc2);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new TypeError('this test encoder writes integers only');
    return encodeInt(v);
  }
  if (typeof v === 'bigint') return encodeInt(v);
  if (typeof v === 'string') return encodeStr(v);
  if (Buffer.isBuffer(v)) return encodeBin(v);
  if (Array.isArray(v)) {
    const n = v.length;
    const head = n <= 15 ? u8(0x90 | n) : n <= 0xffff ? Buffer.concat([u8(0xdc), be16(n)]) : Buffer.concat([u8(0xdd), be32(n)]);
    return Buffer.concat([head, ...v.map(mp)]);
  }
  const entries = Object.entries(v).filter(([, x]) => x !== undefined) as [string, MpValue][];
  const n = entries.length;
  const head = n <= 15 ? u8(0x80 | n) : n <= 0xffff ? Buffer.concat([u8(0xde), be16(n)]) : Buffer.concat([u8(0xdf), be32(n)]);
  return Buffer.concat([head, ...entries.flatMap(([k, x]) => [encodeStr(k), mp(x)])]);
}

/** A map written with the map16 header even when it is small (decoders must accept any width). */
export function map16(entries: [string, MpValue][]): Encoded {
  return new Encoded(Buffer.concat([u8(0xde), be16(entries.length), ...entries.flatMap(([k, x]) => [str8(k).bytes, mp(x)])]));
}
/** A string written as str8 even when short. */
export function str8(s: string): Encoded {
  const data = Buffer.from(s, 'utf8');
  return new Encoded(Buffer.concat([Buffer.from([0xd9, data.length]), data]));
}
/** An unsigned integer written as uint64. */
export function uint64(n: number): Encoded {
  const b = Buffer.alloc(9);
  b[0] = 0xcf;
  b.writeBigUInt64BE(BigInt(n), 1);
  return new Encoded(b);
}

/** u32be length ‖ body. */
export function frame(body: Buffer): Buffer {
  return Buffer.concat([be32(body.length), body]);
}

/** A request frame `{ id, op, args[, ctx] }`. */
export function request(id: number, op: string, args?: Record<string, MpValue | undefined>, ctx?: Record<string, MpValue>): Buffer {
  const value: Record<string, MpValue | undefined> = { id, op };
  if (args !== undefined) value.args = args;
  if (ctx !== undefined) value.ctx = ctx;
  return frame(mp(value));
}

const unpackr = new Unpackr({ int64AsType: 'number', useRecords: false, mapsAsObjects: true });

export function unpack(body: Buffer): any {
  return unpackr.unpack(body);
}

export interface RawFrame {
  /** The whole frame as received, length prefix included. */
  raw: Buffer;
  body: Buffer;
  value: any;
}

/** A bare socket connection that reads answers frame by frame. */
export class RawConn {
  private buffer = Buffer.alloc(0);
  private readonly frames: RawFrame[] = [];
  private waiters: Array<() => void> = [];
  closed = false;
  readonly whenClosed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      while (this.buffer.length >= 4) {
        const n = this.buffer.readUInt32BE(0);
        if (this.buffer.length < 4 + n) break;
        const raw = this.buffer.subarray(0, 4 + n);
        const body = raw.subarray(4);
        this.frames.push({ raw: Buffer.from(raw), body: Buffer.from(body), value: unpack(Buffer.from(body)) });
        this.buffer = this.buffer.subarray(4 + n);
      }
      this.wake();
    });
    socket.on('error', () => undefined);
    this.whenClosed = new Promise((resolve) => {
      socket.once('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      });
    });
  }

  static open(path: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new RawConn(s));
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** The next answer frame; rejects if the connection closes first or nothing comes in time. */
  async next(timeoutMs = 15_000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.frames.shift();
      if (f !== undefined) return f;
      if (this.closed) throw new Error('connection closed before an answer came');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** `n` answer frames. */
  async collect(n: number, timeoutMs = 30_000): Promise<RawFrame[]> {
    const out: RawFrame[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < n) out.push(await this.next(Math.max(1, deadline - Date.now())));
    return out;
  }

  /** Sends one request and returns the next answer (use on a connection with nothing else in flight). */
  async call(id: number, op: string, args?: Record<string, MpValue | undefined>, ctx?: Record<string, MpValue>): Promise<any> {
    this.send(request(id, op, args, ctx));
    return (await this.next()).value;
  }

  /** Resolves true once the peer has closed the connection, false if it is still open after timeoutMs. */
  async closedWithin(timeoutMs = 10_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      this.whenClosed.then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return result;
  }

  /** Frames received and not yet taken. */
  get pending(): number {
    return this.frames.length;
  }

  close(): void {
    this.socket.destroy();
  }
}
