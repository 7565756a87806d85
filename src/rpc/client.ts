// KmsClient: the TypeScript client of the socket protocol (docs/protocol.md). One connection, many
// calls in flight (pipelined, answers matched by id), a deadline per call, lazy reconnection with
// exponential back-off after the connection is lost.
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  FrameReader,
  FrameTooLargeError,
  decodeMessage,
  encodeFrame,
  validateResponse,
} from './codec.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  KmsError,
  type ErrorCode,
  type OpArgs,
  type OpName,
  type OpResult,
  type WireContext,
  type WireResponse,
} from '../ops/protocol.js';
import { KmsOperations, mergeCtx, type CallOptions, type Converter, type KmsClientOptions, type ReconnectOptions } from '../ops/api.js';

export * from '../ops/api.js';

class PendingCall {
  constructor(
    readonly resolve: (value: unknown) => void,
    readonly reject: (err: Error) => void,
    readonly deadline: number,
    readonly timeoutMs: number,
    readonly op: string,
    readonly convert: Converter | undefined,
  ) {}
}

type State = 'idle' | 'connecting' | 'connected' | 'closed';

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
const MAX_ID = 0xffffffff;

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class KmsClient extends KmsOperations {
  readonly path: string;
  private readonly timeoutMs: number;
  private readonly reconnectOpts: Required<ReconnectOptions> | false;
  private readonly ctx: WireContext | undefined;
  private readonly maxFrameBytes: number;
  private readonly maxResponseBytes: number;

  private state: State = 'idle';
  private socket: net.Socket | undefined;
  private readonly pending = new Map<number, PendingCall>();
  private nextId = 1;
  /** Frames of calls made while there was no connection, sent once there is one. */
  private queuedIds: number[] = [];
  private queuedFrames: Buffer[] = [];
  private corkedSocket: net.Socket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Infinity;
  private backoffTimer: NodeJS.Timeout | undefined;
  private backoffWake: (() => void) | undefined;

  private constructor(path: string, options: KmsClientOptions) {
    super();
    this.path = path;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const r = options.reconnect;
    this.reconnectOpts =
      r === false
        ? false
        : {
            initialDelayMs: r?.initialDelayMs ?? 50,
            maxDelayMs: r?.maxDelayMs ?? 2000,
            maxAttempts: r?.maxAttempts ?? 10,
          };
    this.ctx = options.ctx;
    this.maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /**
   * Connects to the daemon's socket (one attempt: a daemon that is not there fails fast with
   * BackendUnavailable). Later losses of the connection are repaired lazily by the next call.
   */
  static async connect(path: string, options: KmsClientOptions = {}): Promise<KmsClient> {
    const client = new KmsClient(path, options);
    client.state = 'connecting';
    try {
      await client.open();
    } catch (err) {
      client.state = 'idle';
      throw new KmsError('BackendUnavailable', `cannot connect to ${path}: ${errorText(err)}`);
    }
    return client;
  }

  /** True while a connection is up. */
  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Calls waiting for an answer (sent or waiting for a connection). */
  get inFlight(): number {
    return this.pending.size;
  }

  /**
   * Sends one request and resolves with its wire result (snake_case, binaries as Buffers), or rejects
   * with a KmsError: the server's error code; BackendUnavailable when the connection is lost, cannot be
   * re-established, or no answer came within the deadline; FrameTooLarge when the request exceeds
   * `maxFrameBytes` (not sent) or the server refused a frame.
   */
  call<Op extends OpName>(op: Op, args: OpArgs<Op>, options?: CallOptions): Promise<OpResult<Op>> {
    return this.invoke(op, args, options, undefined) as Promise<OpResult<Op>>;
  }

  /** Fails every outstanding call with BackendUnavailable and closes the connection. Idempotent. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Infinity;
    this.wakeBackoff();
    this.queuedIds = [];
    this.queuedFrames = [];
    this.rejectAll('BackendUnavailable', `client for ${this.path} was closed`);
    const s = this.socket;
    this.socket = undefined;
    if (s !== undefined && !s.destroyed) {
      await new Promise<void>((resolve) => {
        s.once('close', () => resolve());
        s.destroy();
      });
    }
  }

  // -------------------------------------------------------------------------------------------------

  protected invoke(op: string, args: object, options: CallOptions | undefined, convert: Converter | undefined): Promise<unknown> {
    if (this.state === 'closed') {
      return Promise.reject(new KmsError('BackendUnavailable', `client for ${this.path} was closed`));
    }
    if (this.state === 'idle' && this.reconnectOpts === false) {
      return Promise.reject(
        new KmsError('BackendUnavailable', `not connected to ${this.path} (the connection was lost; reconnect is disabled)`),
      );
    }
    let timeoutMs = this.timeoutMs;
    let ctx = this.ctx;
    if (options !== undefined) {
      if (options.timeoutMs !== undefined) timeoutMs = options.timeoutMs;
      if (options.ctx !== undefined) ctx = mergeCtx(ctx, options.ctx);
    }
    const id = this.allocId();
    let frame: Buffer;
    try {
      frame = encodeFrame(ctx === undefined ? { id, op, args } : { id, op, args, ctx });
    } catch (err) {
      return Promise.reject(new KmsError('InvalidRequest', `cannot encode the ${op} request: ${errorText(err)}`));
    }
    if (frame.length - 4 > this.maxFrameBytes) {
      return Promise.reject(
        new KmsError('FrameTooLarge', `${op} request is ${frame.length - 4} bytes; the limit is ${this.maxFrameBytes}`),
      );
    }
    return new Promise<unknown>((resolve, reject) => {
      const deadline = performance.now() + timeoutMs;
      this.pending.set(id, new PendingCall(resolve, reject, deadline, timeoutMs, op, convert));
      if (deadline < this.timerAt) this.armTimer(deadline);
      if (this.state === 'connected') {
        this.write(frame);
      } else {
        this.queuedIds.push(id);
        this.queuedFrames.push(frame);
        if (this.state === 'idle') void this.reconnect();
      }
    });
  }

  private allocId(): number {
    let id = this.nextId;
    while (this.pending.has(id)) id = id === MAX_ID ? 1 : id + 1;
    this.nextId = id === MAX_ID ? 1 : id + 1;
    return id;
  }

  private write(frame: Buffer): void {
    const s = this.socket as net.Socket;
    if (this.corkedSocket === undefined) {
      // Everything written in this tick leaves in one writev.
      this.corkedSocket = s;
      s.cork();
      process.nextTick(this.uncork);
    }
    s.write(frame);
  }

  private readonly uncork = (): void => {
    const s = this.corkedSocket;
    this.corkedSocket = undefined;
    s?.uncork();
  };

  // -- deadlines: one timer for all calls, armed for the earliest deadline --------------------------

  private armTimer(deadline: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = deadline;
    // setTimeout takes at most 2^31-1 ms; a later deadline is simply re-armed when that fires.
    this.timer = setTimeout(this.onTimer, Math.min(0x7fffffff, Math.max(0, Math.ceil(deadline - performance.now()))));
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [id, p] of this.pending) {
      if (p.deadline <= now) {
        this.pending.delete(id);
        p.reject(new KmsError('BackendUnavailable', `no answer within ${p.timeoutMs} ms (${p.op})`));
      } else if (p.deadline < next) {
        next = p.deadline;
      }
    }
    if (next !== Infinity) this.armTimer(next);
  };

  // -- connection -----------------------------------------------------------------------------------

  private open(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const s = net.createConnection({ path: this.path });
      const onError = (err: Error): void => {
        s.destroy();
        reject(err);
      };
      s.once('error', onError);
      s.once('connect', () => {
        s.off('error', onError);
        if (this.state === 'closed') {
          s.destroy();
          reject(new Error('client was closed'));
          return;
        }
        this.attach(s);
        resolve();
      });
    });
  }

  private attach(s: net.Socket): void {
    const reader = new FrameReader(this.maxResponseBytes);
    this.socket = s;
    this.state = 'connected';
    let lastError: Error | undefined;
    s.on('data', (chunk: Buffer) => this.onData(s, reader, chunk));
    s.on('error', (err: Error) => {
      lastError = err;
    });
    s.on('close', () => {
      if (this.socket !== s) return;
      this.socket = undefined;
      if (this.state === 'closed') return;
      this.state = 'idle';
      const why = lastError !== undefined ? lastError.message : 'the server closed the connection';
      this.rejectAll('BackendUnavailable', `connection to ${this.path} lost: ${why}`);
    });
    // Calls made while there was no connection.
    const ids = this.queuedIds;
    const frames = this.queuedFrames;
    this.queuedIds = [];
    this.queuedFrames = [];
    for (let i = 0; i < ids.length; i++) {
      if (this.pending.has(ids[i])) this.write(frames[i]);
    }
  }

  private onData(s: net.Socket, reader: FrameReader, chunk: Buffer): void {
    if (this.socket !== s) return;
    let bodies: Buffer[];
    try {
      bodies = reader.push(chunk);
    } catch (err) {
      if (err instanceof FrameTooLargeError) {
        for (const body of err.frames) if (!this.handleBody(s, body)) return;
      }
      this.drop(s, `answer frame refused: ${errorText(err)}`);
      return;
    }
    for (let i = 0; i < bodies.length; i++) if (!this.handleBody(s, bodies[i])) return;
  }

  /** Returns false when the connection was dropped. */
  private handleBody(s: net.Socket, body: Buffer): boolean {
    let resp: WireResponse;
    try {
      resp = validateResponse(decodeMessage(body));
    } catch (err) {
      this.drop(s, `malformed answer: ${errorText(err)}`);
      return false;
    }
    const id = resp.id;
    if (!resp.ok && id === 0) {
      // A connection-level refusal (FrameTooLarge, Busy, or a request the server could not read):
      // it cannot be matched to a call, so every call in flight fails with it.
      this.rejectAll(resp.error.code, resp.error.message);
      if (resp.error.code === 'FrameTooLarge') {
        this.drop(s, resp.error.message);
        return false;
      }
      return true;
    }
    const p = this.pending.get(id);
    if (p === undefined) return true; // late answer to a call that timed out
    this.pending.delete(id);
    if (!resp.ok) {
      p.reject(new KmsError(resp.error.code, resp.error.message));
      return true;
    }
    if (p.convert === undefined) {
      p.resolve(resp.result);
      return true;
    }
    let value: unknown;
    try {
      value = p.convert(resp.result);
    } catch (err) {
      p.reject(err instanceof KmsError ? err : new KmsError('Internal', `malformed ${p.op} result: ${errorText(err)}`));
      return true;
    }
    p.resolve(value);
    return true;
  }

  /** Abandons a connection that cannot be trusted any more; in-flight calls fail with `reason`. */
  private drop(s: net.Socket, reason: string): void {
    if (this.socket === s) {
      this.socket = undefined;
      if (this.state !== 'closed') this.state = 'idle';
      this.rejectAll('BackendUnavailable', `connection to ${this.path} lost: ${reason}`);
    }
    s.destroy();
  }

  private rejectAll(code: ErrorCode, message: string): void {
    if (this.pending.size === 0) return;
    const calls = [...this.pending.values()];
    this.pending.clear();
    for (const p of calls) p.reject(new KmsError(code, message));
  }

  private async reconnect(): Promise<void> {
    const opts = this.reconnectOpts;
    if (opts === false) return;
    this.state = 'connecting';
    let delay = opts.initialDelayMs;
    let lastError: unknown;
    for (let attempt = 1; attempt <= opts.maxAttempts; attempt++) {
      if (this.state !== 'connecting') return;
      try {
        await this.open();
        return;
      } catch (err) {
        lastError = err;
      }
      if (attempt < opts.maxAttempts) {
        await this.backoff(delay);
        delay = Math.min(delay * 2, opts.maxDelayMs);
      }
    }
    if (this.state !== 'connecting') return;
    this.state = 'idle';
    const message = `cannot reconnect to ${this.path} after ${opts.maxAttempts} attempts: ${errorText(lastError)}`;
    const ids = this.queuedIds;
    this.queuedIds = [];
    this.queuedFrames = [];
    for (const id of ids) {
      const p = this.pending.get(id);
      if (p === undefined) continue;
      this.pending.delete(id);
      p.reject(new KmsError('BackendUnavailable', message));
    }
  }

  private backoff(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.backoffWake = resolve;
      this.backoffTimer = setTimeout(() => {
        this.backoffTimer = undefined;
        this.backoffWake = undefined;
        resolve();
      }, ms);
    });
  }

  private wakeBackoff(): void {
    if (this.backoffTimer !== undefined) clearTimeout(this.backoffTimer);
    this.backoffTimer = undefined;
    const wake = this.backoffWake;
    this.backoffWake = undefined;
    wake?.();
  }
}

