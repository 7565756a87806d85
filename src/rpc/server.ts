// The Unix-socket RPC server. Like ssh-agent it checks the peer on every accept and refuses when
// in doubt, caps frame sizes, connections and requests in flight, and stops reading rather than
// buffer without bound.
import { createServer, type Server, type Socket } from 'node:net';
import { native } from '../native/index.js';
import { peerCaller, type Caller } from '../access/identity.js';
import { KmsError, type ErrorCode } from '../errors.js';
import { FrameReader, ProtocolError, decodeMessage, encodeError, encodeOk, encodeSecretOk, validateRequest } from './codec.js';
import { ByteBudget } from './byte-budget.js';
import { Refusals } from './refusals.js';
import type { Pipeline } from '../ops/pipeline.js';
import type { Logger as ServerLogger } from '../logging.js';

export interface ServerLimits {
  maxFrameBytes: number;
  maxConnections: number;
  maxInflightPerConnection: number;
  idleTimeoutMs: number;
  /** Bytes of partial frames all connections together may hold (limits.max_buffered_bytes). */
  maxBufferedBytes: number;
  /** A frame that has started must complete within this (limits.frame_timeout_s). */
  frameTimeoutMs: number;
}

export type { Logger as ServerLogger } from '../logging.js';

const SHUTTING_DOWN = 'the daemon is shutting down; retry on another instance or after restart';
/** In-flight at shutdown: started, so it may have taken effect; the caller must check, not blindly retry. */
const OUTCOME_UNKNOWN = 'the daemon shut down before this request finished; it may or may not have taken effect';
/**
 * Answers waiting in a connection's socket buffer beyond this stop it from starting more requests
 * (a batch answer is ~150 KB, and a peer that never reads must not make us hold them without bound).
 */
const WRITE_BUDGET_BYTES = 256 * 1024;
/** After the drain, how long answers may take to reach peers before their connections are cut. */
const SHUTDOWN_GRACE_MS = 2000;
/** A refused connection (Busy, FrameTooLarge, …) is cut this long after its last answer, read or not. */
const REFUSAL_DEADLINE_MS = 1000;
/** Refusals waiting for their peer at once; past this, refused connections are cut without an answer. */
const MAX_PENDING_REFUSALS = 64;

export class SocketServer {
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  /** Every accepted socket, served or being refused, so shutdown can cut what lingers. */
  private readonly sockets = new Set<Socket>();
  private readonly budget: ByteBudget;
  private readonly refusals: Refusals;
  private accepting = true;

  constructor(
    private readonly pipeline: Pipeline,
    readonly limits: ServerLimits,
    private readonly logger: ServerLogger,
  ) {
    this.budget = new ByteBudget(limits.maxBufferedBytes);
    this.refusals = new Refusals(logger, REFUSAL_DEADLINE_MS, MAX_PENDING_REFUSALS);
    this.server = createServer({ pauseOnConnect: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.logger.error({ err: err.message }, 'socket server error'));
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get inflight(): number {
    let total = 0;
    for (const c of this.connections) total += c.inflight.size;
    return total;
  }

  listen(target: string | { fd: number }): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(target, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  /** Bytes of partial frames held across all connections. */
  get bufferedBytes(): number {
    return this.budget.usedBytes;
  }

  private accept(socket: Socket): void {
    // First of all: a peer that vanished (EPIPE, ECONNRESET) must never become an unhandled 'error'.
    socket.on('error', () => socket.destroy());
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (!this.accepting) {
      socket.destroy();
      return;
    }
    let caller: Caller;
    try {
      caller = peerCaller(native.peerCredentials(socketFd(socket)));
    } catch (err) {
      // No kernel-vouched identity, no service: never fall back to a guess.
      this.logger.warn({ err: (err as Error).message }, 'refused a connection whose peer could not be identified');
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.limits.maxConnections) {
      // Drained, not cut at once: a client that wrote its first request must still read this answer
      // (closing with its bytes unread would fail its write with EPIPE before it sees Busy).
      this.refusals.refuse(socket, encodeError(0, 'Busy', `too many connections; the limit is ${this.limits.maxConnections}`), REFUSAL_DEADLINE_MS);
      return;
    }
    const connection = new Connection(socket, caller, this.pipeline, this.limits, this.budget, this.refusals, () => {
      this.connections.delete(connection);
    });
    this.connections.add(connection);
    socket.resume();
  }

  /**
   * Stops accepting, lets requests in flight finish for up to timeoutMs, answers the rest with
   * Busy, and closes every connection.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.accepting = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.stopReading(SHUTTING_DOWN);
    const deadline = Date.now() + timeoutMs;
    while (this.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    for (const c of this.connections) c.close();
    // A peer that does not read its answers must not hold the exit: cut what is left after a grace
    // period. (Ref'd on purpose: with every socket paused, nothing else keeps the loop alive.)
    const grace = setTimeout(() => {
      for (const s of this.sockets) s.destroy();
    }, SHUTDOWN_GRACE_MS);
    await closed;
    clearTimeout(grace);
  }
}

function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the connection has no file descriptor to ask the kernel about');
  return fd;
}

class Connection {
  /** Request ids awaiting an answer. */
  readonly inflight = new Set<number>();
  private readonly reader: FrameReader;
  /** Frames read while at the in-flight limit; at most one read chunk's worth. */
  private readonly queued: Buffer[] = [];
  private corked = false;
  private readPaused = false;
  private closing = false;
  /** Shutdown began: reading stays stopped even when answers free in-flight capacity. */
  private draining = false;
  /** When the frame in progress started (ms since the epoch), 0 when none is. */
  private partialSince = 0;
  private frameTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly caller: Caller,
    private readonly pipeline: Pipeline,
    private readonly limits: ServerLimits,
    budget: ByteBudget,
    private readonly refusals: Refusals,
    onClose: () => void,
  ) {
    this.reader = new FrameReader(limits.maxFrameBytes, { budget, wipeCopied: true });
    socket.setNoDelay?.(true);
    socket.setTimeout(limits.idleTimeoutMs, () => {
      if (this.inflight.size === 0) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.afterReply());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closing = true;
      this.reader.discard(); // its bytes go back to the shared budget
      clearTimeout(this.frameTimer);
      onClose();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.draining) return; // paused for shutdown (defensive): nothing read after that is started
    if (this.closing) return; // refused (FrameTooLarge, …): the rest of the stream is discarded, unanswered
    let frames: Buffer[];
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      // FrameTooLarge from the header, or Busy when the shared budget of partial frames is spent.
      this.refuseConnection(err instanceof KmsError ? err.code : 'InvalidRequest', err instanceof KmsError ? err.message : 'malformed frame');
      return;
    }
    this.trackFrameDeadline(frames.length > 0);
    if (frames.length === 0) return;
    this.cork();
    for (const body of frames) {
      if (this.queued.length > 0 || !this.canStart()) this.queued.push(body);
      else this.handle(body);
    }
    this.updateFlow();
  }

  /** Answers once (id 0), stops serving, and leaves the socket to be cut when the peer closes or after a deadline. */
  private refuseConnection(code: ErrorCode, message: string): void {
    this.closing = true;
    this.reader.discard();
    clearTimeout(this.frameTimer);
    // Read and drop what the peer still sends until it closes, for frame_timeout_s at most.
    this.refusals.refuse(this.socket, encodeError(0, code, message), this.limits.frameTimeoutMs);
    this.socket.resume();
  }

  /**
   * A started frame must complete within frame_timeout_s, however slowly its bytes trickle in (each
   * byte renews the idle timer, not this deadline). One timer per connection, armed only while a
   * frame is partial; completed frames just restart the clock.
   */
  private trackFrameDeadline(completedSome: boolean): void {
    if (!this.reader.partial) {
      this.partialSince = 0;
      return;
    }
    if (completedSome || this.partialSince === 0) this.partialSince = Date.now();
    if (this.frameTimer === undefined) this.armFrameTimer(this.limits.frameTimeoutMs);
  }

  private armFrameTimer(delayMs: number): void {
    this.frameTimer = setTimeout(() => {
      this.frameTimer = undefined;
      if (this.closing || !this.reader.partial || this.partialSince === 0) return;
      const left = this.partialSince + this.limits.frameTimeoutMs - Date.now();
      if (left > 0) {
        this.armFrameTimer(left);
        return;
      }
      const seconds = this.limits.frameTimeoutMs / 1000;
      this.refuseConnection('InvalidRequest',
        `a frame was still incomplete after ${seconds} s (${this.reader.bufferedBytes} bytes received); the limit is ${seconds} s (limits.frame_timeout_s)`);
    }, delayMs);
    this.frameTimer.unref();
  }

  private handle(body: Buffer): void {
    let value: unknown;
    try {
      value = decodeMessage(body, true); // bin arguments are views of body: zeroed with it once answered
    } catch (err) {
      // Not a MessagePack value we accept: there is no request to record, only an answer to give.
      body.fill(0);
      this.write(encodeError(0, 'InvalidRequest', err instanceof KmsError ? err.message : 'malformed request'));
      return;
    }
    let request: ReturnType<typeof validateRequest>;
    try {
      request = validateRequest(value);
    } catch (err) {
      // A readable value that is not a valid request: refused, and recorded like any refusal.
      const message = err instanceof KmsError ? err.message : 'malformed request';
      this.refuse(value, err instanceof ProtocolError ? err.id : 0, message);
      body.fill(0);
      return;
    }
    const id = request.id;
    if (this.inflight.has(id)) {
      this.refuse(value, id, `request id ${id} is already in flight on this connection`);
      body.fill(0);
      return;
    }
    this.inflight.add(id);
    // The pipeline zeroes the parsed plaintexts (views of body) after this reply; body goes with them.
    this.pipeline.run(request.op, request.args, this.caller, request.ctx, 'socket', (error, result, secret) => {
      if (!this.inflight.has(id)) {
        body.fill(0);
        return; // already failed by shutdown
      }
      // May throw (an answer the encoder refuses): the pipeline then logs, audits and calls again with Internal.
      const frame = error !== null ? encodeError(id, error.code, error.message) : secret === true ? encodeSecretOk(id, result) : encodeOk(id, result);
      body.fill(0);
      this.inflight.delete(id);
      this.write(frame, secret === true && error === null);
      if (this.queued.length > 0 || this.readPaused) this.afterReply();
    }, true);
  }

  /** Answers InvalidRequest and writes the refusal to the audit log (op as claimed, if any). */
  private refuse(value: unknown, id: number, message: string): void {
    const op = (value as { op?: unknown } | null)?.op;
    this.pipeline.auditRefusal(typeof op === 'string' ? op.slice(0, 64) : '(invalid)', this.caller, 'socket', 'InvalidRequest');
    this.write(encodeError(id, 'InvalidRequest', message));
  }

  /** Under the in-flight limit, and the answers already waiting fit the write budget. */
  private canStart(): boolean {
    return this.inflight.size < this.limits.maxInflightPerConnection && this.socket.writableLength < WRITE_BUDGET_BYTES;
  }

  private afterReply(): void {
    if (this.draining || this.closing) return;
    this.cork();
    while (this.queued.length > 0 && this.canStart()) {
      this.handle(this.queued.shift() as Buffer);
    }
    this.updateFlow();
  }

  /** secret: the frame holds plaintexts and is zeroed once the kernel has taken it (or the write failed). */
  private write(frame: Buffer, secret = false): void {
    if (this.closing) {
      if (secret) frame.fill(0);
      return;
    }
    this.cork();
    if (secret) this.socket.write(frame, () => frame.fill(0));
    else this.socket.write(frame);
  }

  /** Batches the writes of one tick into one syscall. */
  private cork(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      try {
        this.pipeline.flushAudit();
      } catch {
        // The audit lines of these answers are not on disk: they must not leave. Cut the connection.
        this.closing = true;
        this.socket.destroy();
        return;
      }
      this.socket.uncork();
    });
  }

  /** Reads only while under the in-flight limit and while the peer keeps up with our answers. */
  private updateFlow(): void {
    if (this.closing || this.draining) return;
    const full = this.queued.length > 0 || this.inflight.size >= this.limits.maxInflightPerConnection;
    const backlogged = this.socket.writableNeedDrain || this.socket.writableLength >= WRITE_BUDGET_BYTES;
    if ((full || backlogged) && !this.readPaused) {
      this.readPaused = true;
      this.socket.pause();
    } else if (!full && !backlogged && this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
  }

  /** Shutdown: read nothing more; frames read but not started are answered Busy now. */
  stopReading(message: string): void {
    this.draining = true;
    this.readPaused = true;
    this.socket.pause();
    for (const body of this.queued) {
      try {
        this.write(encodeError(validateRequest(decodeMessage(body)).id, 'Busy', message));
      } catch {
        // unreadable frames never had an id to answer
      }
    }
    this.queued.length = 0;
  }

  /**
   * Answers whatever is still in flight (started, outcome unknown) with BackendUnavailable, then
   * closes. Requests never started were answered Busy by stopReading().
   */
  close(): void {
    for (const id of this.inflight) this.socket.write(encodeError(id, 'BackendUnavailable', OUTCOME_UNKNOWN));
    this.inflight.clear();
    this.closing = true;
    // Half-close after the answers, then keep reading (and discarding) until the peer closes: a
    // peer still writing would otherwise hit a reset and lose the answers it had not read yet. The
    // server's grace timer cuts peers that never close.
    this.socket.once('end', () => this.socket.destroy());
    this.socket.end();
    this.socket.resume();
  }
}
