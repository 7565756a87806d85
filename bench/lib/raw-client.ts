// A minimal load client of the socket protocol, built on src/rpc/codec.ts, for benchmarks only.
//
// Requests: one frame is encoded once with the real encoder (encodeFrame) with id 0xffffffff, then
// copied per request with the 4 id bytes rewritten. Ids run from 65,536 upward so that the uint32
// form (0xce) is also the shortest form, exactly what encodeFrame would have written. Frames that
// become free in one read are refilled with ONE socket.write.
//
// Responses: every frame is decoded with the real decoder (decodeMessage: structural pre-scan +
// msgpackr) and validateResponse, must be `ok: true` with an id this connection has in flight, and
// its result goes through the caller's check (e.g. plaintext and ciphertext lengths). Anything else
// rejects the run: a benchmark that counts errors as operations measures nothing.
import net from 'node:net';
import { FrameReader, decodeMessage, encodeFrame, validateResponse } from '../../src/rpc/codec.js';

const FIRST_ID = 0x10000;
const LAST_ID = 0xffffffff;

export type ResultCheck = (result: unknown) => void;

/** A request frame whose id can be rewritten in place. */
export class FrameTemplate {
  readonly frame: Buffer;
  readonly idOffset: number;

  constructor(op: string, args: Record<string, unknown>) {
    const encoded = encodeFrame({ id: LAST_ID, op, args });
    this.frame = Buffer.from(encoded); // own copy, not a view of msgpackr's slab
    // "id" (a2 69 64) followed by uint32 0xffffffff (ce ff ff ff ff)
    const marker = Buffer.from([0xa2, 0x69, 0x64, 0xce, 0xff, 0xff, 0xff, 0xff]);
    const at = this.frame.indexOf(marker, 4);
    if (at < 0) throw new Error('cannot find the id in the encoded request');
    this.idOffset = at + 4;
  }

  /** Writes `count` copies, the i-th with id ids[i], into one buffer. */
  fill(ids: number[], count: number): Buffer {
    const len = this.frame.length;
    const out = Buffer.allocUnsafe(len * count);
    for (let i = 0; i < count; i++) {
      this.frame.copy(out, i * len);
      out.writeUInt32BE(ids[i] as number, i * len + this.idOffset);
    }
    return out;
  }
}

export class RawConnection {
  private readonly reader = new FrameReader(16 * 1024 * 1024);
  private readonly inflight = new Set<number>();
  private nextId = FIRST_ID;
  private failure: Error | null = null;
  private onFailure: ((err: Error) => void) | null = null;
  private readonly idScratch: number[] = [];
  /** Called after each read's frames were checked, with their count. */
  private afterFrames: ((n: number) => void) | null = null;
  /** Responses received and checked (all of them ok). */
  responses = 0;

  private constructor(
    readonly socket: net.Socket,
    private readonly template: FrameTemplate,
    private readonly check: ResultCheck,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.fail(new Error(`connection error: ${err.message}`)));
    socket.on('close', () => this.fail(new Error('the daemon closed the connection')));
  }

  static connect(path: string, template: FrameTemplate, check: ResultCheck): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection(path);
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new RawConnection(socket, template, check));
      });
    });
  }

  get outstanding(): number {
    return this.inflight.size;
  }

  close(): void {
    this.failure ??= new Error('closed');
    this.socket.destroy();
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.onFailure?.(err);
  }

  private allocIds(count: number): number[] {
    const ids = this.idScratch;
    ids.length = count;
    for (let i = 0; i < count; i++) {
      let id = this.nextId;
      while (this.inflight.has(id)) id = id === LAST_ID ? FIRST_ID : id + 1;
      this.nextId = id === LAST_ID ? FIRST_ID : id + 1;
      this.inflight.add(id);
      ids[i] = id;
    }
    return ids;
  }

  private send(count: number): void {
    if (count <= 0) return;
    this.socket.write(this.template.fill(this.allocIds(count), count));
  }

  private onData(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    for (const body of frames) {
      if (this.failure !== null) return;
      try {
        const res = validateResponse(decodeMessage(body));
        if (!this.inflight.delete(res.id)) throw new Error(`answer for id ${res.id}, which is not in flight`);
        if (!res.ok) throw new Error(`request ${res.id} failed: ${res.error.code}: ${res.error.message}`);
        this.check(res.result);
      } catch (err) {
        this.fail(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      this.responses++;
    }
    if (frames.length > 0) this.afterFrames?.(frames.length);
  }

  /**
   * Keeps `window` requests outstanding until `keepGoing()` turns false, then lets the outstanding
   * ones finish. Resolves with the number of responses; rejects on the first bad answer.
   */
  pipeline(window: number, keepGoing: () => boolean): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.failure !== null) {
        reject(this.failure);
        return;
      }
      const start = this.responses;
      this.onFailure = reject;
      this.afterFrames = (n) => {
        if (keepGoing()) {
          this.send(n);
        } else if (this.inflight.size === 0) {
          this.afterFrames = null;
          this.onFailure = null;
          resolve(this.responses - start);
        }
      };
      this.send(window);
    });
  }

  /**
   * One request at a time: sends, waits for its answer, sends the next. Records each round trip
   * (send → answer decoded and checked) in nanoseconds into `out` (its length = request count).
   */
  roundTrips(out: Float64Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.failure !== null) {
        reject(this.failure);
        return;
      }
      let i = 0;
      let sentAt = 0n;
      this.onFailure = reject;
      this.afterFrames = () => {
        out[i++] = Number(process.hrtime.bigint() - sentAt);
        if (i < out.length) {
          sentAt = process.hrtime.bigint();
          this.send(1);
        } else {
          this.afterFrames = null;
          this.onFailure = null;
          resolve();
        }
      };
      sentAt = process.hrtime.bigint();
      this.send(1);
    });
  }
}
