// Connection budget of the admin HTTP API. A hostile local process can open connections faster than
// any deadline closes them, and on loopback every process shares 127.0.0.1, so refusing newcomers at a
// cap locks the real admin out. Instead a newcomer over a cap evicts someone who is doing nothing
// useful: the longest-idle connection that never carried a verified request (no request in progress:
// just opened, or answered), then the oldest request that has not yet proved its signature, then the
// longest-idle connection of a verified client (its keep-alive). A request with a verified signature
// is never evicted; only when every slot holds one is the newcomer closed.
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  /** Connections held at once, all sources together. */
  maxConnections: number;
  /** Connections held at once from one source address (all Unix-socket clients are one source). */
  maxConnectionsPerSource: number;
  /** A connection with no request in progress (just opened, or answered) is closed after this. */
  idleTimeoutMs: number;
}

interface Tracked {
  readonly socket: Socket;
  readonly source: string;
  /** Requests received and not yet answered on this connection. */
  active: number;
  /** The request in progress carries a verified signature. */
  verified: boolean;
  /** Some request on this connection carried a verified signature. */
  everVerified: boolean;
  /** Order of the last change between idle and busy: lower is older. */
  since: number;
  idleTimer: NodeJS.Timeout | undefined;
}

export class ConnectionGuard {
  private readonly tracked = new Map<Socket, Tracked>();
  private readonly perSource = new Map<string, number>();
  private clock = 0;
  private evictions = 0;

  constructor(private readonly limits: ConnectionLimits) {}

  get size(): number {
    return this.tracked.size;
  }

  /** Connections closed to make room for newer ones since start. */
  get evicted(): number {
    return this.evictions;
  }

  /** A new connection: counted, given its idle deadline, and room made for it if a cap is passed. */
  admit(socket: Socket): void {
    socket.on('error', () => undefined); // a reset peer must never become an uncaught exception
    const t: Tracked = { socket, source: socket.remoteAddress ?? 'unix', active: 0, verified: false, everVerified: false, since: ++this.clock, idleTimer: undefined };
    this.tracked.set(socket, t);
    this.perSource.set(t.source, (this.perSource.get(t.source) ?? 0) + 1);
    socket.once('close', () => this.forget(t));
    this.startIdle(t);
    if ((this.perSource.get(t.source) ?? 0) > this.limits.maxConnectionsPerSource) this.evict(this.victim(t.source) ?? t);
    else if (this.tracked.size > this.limits.maxConnections) this.evict(this.victim(this.busiestSource()) ?? this.victim() ?? t);
  }

  requestStarted(socket: Socket): void {
    const t = this.tracked.get(socket);
    if (t === undefined) return;
    if (t.active++ === 0) t.since = ++this.clock;
    clearTimeout(t.idleTimer);
    t.idleTimer = undefined;
  }

  /** The request in progress on `socket` passed signature verification. */
  requestVerified(socket: Socket): void {
    const t = this.tracked.get(socket);
    if (t === undefined) return;
    t.verified = true;
    t.everVerified = true;
  }

  requestEnded(socket: Socket): void {
    const t = this.tracked.get(socket);
    if (t === undefined || t.active === 0) return;
    if (--t.active > 0) return;
    t.verified = false;
    t.since = ++this.clock;
    this.startIdle(t);
  }

  private startIdle(t: Tracked): void {
    t.idleTimer = setTimeout(() => t.socket.destroy(), this.limits.idleTimeoutMs);
    t.idleTimer.unref();
  }

  /** The eviction candidate (of `source`, if given): see the order at the top of this file. */
  private victim(source?: string): Tracked | undefined {
    let idle: Tracked | undefined;
    let unverified: Tracked | undefined;
    let keepAlive: Tracked | undefined;
    const older = (a: Tracked, b: Tracked | undefined): boolean => b === undefined || a.since < b.since;
    for (const t of this.tracked.values()) {
      if (source !== undefined && t.source !== source) continue;
      if (t.active === 0 && !t.everVerified) {
        if (older(t, idle)) idle = t;
      } else if (t.active === 0) {
        if (older(t, keepAlive)) keepAlive = t;
      } else if (!t.verified && older(t, unverified)) {
        unverified = t;
      }
    }
    return idle ?? unverified ?? keepAlive;
  }

  private busiestSource(): string | undefined {
    let best: string | undefined;
    let most = 0;
    for (const [source, n] of this.perSource) {
      if (n > most) {
        best = source;
        most = n;
      }
    }
    return best;
  }

  private evict(t: Tracked): void {
    this.evictions++;
    this.forget(t);
    t.socket.destroy();
  }

  private forget(t: Tracked): void {
    if (this.tracked.get(t.socket) !== t) return;
    clearTimeout(t.idleTimer);
    this.tracked.delete(t.socket);
    const n = (this.perSource.get(t.source) ?? 1) - 1;
    if (n === 0) this.perSource.delete(t.source);
    else this.perSource.set(t.source, n);
  }
}
