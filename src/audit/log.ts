// The audit log: one hash-chained JSON line per operation, allowed or denied, succeeded or failed,
// written through pino's destination (SonicBoom, synchronous, so lines land in order). The lines of
// one tick are joined and written once, before the answers of that tick leave (the server calls
// flush() before it uncorks), and fsynced per the configured policy (the interval policy fsyncs
// on the libuv pool). The chain continues across
// restarts and across size-based rotation (audit.log → audit.log.000001, …). A write that fails
// makes every later operation fail closed: nothing is answered as done that was not recorded.
import { closeSync, existsSync, fstatSync, fsync, fsyncSync, openSync, readSync, readdirSync, renameSync, constants as fsc } from 'node:fs';
import { basename, dirname } from 'node:path';
import { pino } from 'pino';
import type { AuditEvent, AuditSink } from './event.js';
import { GENESIS, lineHash } from './chain.js';
import { formatEvent, formatLifecycle } from './record.js';

export interface AuditLogOptions {
  path: string;
  /** always: fsync every line; interval: every fsyncIntervalMs; never: leave it to the kernel. */
  fsync: 'always' | 'interval' | 'never';
  fsyncIntervalMs: number;
  /** Rotate once the file reaches this size; 0 = never. */
  maxBytes: number;
  onError?: (err: Error) => void;
}

export interface AuditHead {
  seq: number;
  hash: string;
  path: string;
}

type Destination = ReturnType<typeof pino.destination>;

const TAIL_BYTES = 1 << 20;

export class AuditLog implements AuditSink {
  private dest: Destination;
  private seq: number;
  private prev: string;
  private bytes: number;
  private broken: Error | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Lines of this tick, written to the file as one string by flush(). */
  private batch: string[] = [];
  /** Lines written to the file but not yet fsynced. */
  private dirty = false;
  private flushScheduled = false;
  private fsyncInFlight = false;

  private constructor(private readonly options: AuditLogOptions, head: { seq: number; prev: string; bytes: number }) {
    this.seq = head.seq;
    this.prev = head.prev;
    this.bytes = head.bytes;
    this.dest = this.openDestination();
    if (options.fsync === 'interval') {
      this.timer = setInterval(() => this.syncInBackground(), Math.max(10, options.fsyncIntervalMs));
      this.timer.unref();
    }
  }

  /** Opens (or creates, 0600) the log and picks the chain up where the last line left it. */
  static open(options: AuditLogOptions): AuditLog {
    return new AuditLog(options, readHead(options.path));
  }

  get head(): AuditHead {
    return { seq: this.seq, hash: this.prev, path: this.options.path };
  }

  record(event: AuditEvent): void {
    if (this.broken !== null) throw this.broken;
    this.seq += 1;
    this.append(formatEvent(this.seq, Date.now(), event));
  }

  lifecycle(op: string, detail: Record<string, string | number>, outcome: 'success' | 'failure' = 'success'): void {
    if (this.broken !== null) throw this.broken;
    this.seq += 1;
    this.append(formatLifecycle(this.seq, Date.now(), op, detail, outcome));
  }

  /**
   * Writes this tick's lines to the file in one write (no fsync). Cheap when there are none.
   * Throws when lines could not be written: the answers they describe must not leave.
   */
  flush(): void {
    if (this.batch.length === 0) return;
    const text = this.batch.length === 1 ? this.batch[0] + '\n' : this.batch.join('\n') + '\n';
    this.batch = [];
    if (this.broken === null) {
      try {
        this.dest.write(text); // synchronous destination: this is the write(2)
      } catch (err) {
        this.fail(err as Error);
      }
    }
    if (this.broken !== null) throw this.broken; // SonicBoom reports write errors as events, caught by fail()
    this.dirty = true;
    this.bytes += Buffer.byteLength(text);
    if (this.options.maxBytes > 0 && this.bytes >= this.options.maxBytes) {
      try {
        this.rotate();
      } catch (err) {
        this.fail(err as Error); // the lines are written; what comes next is refused
      }
    }
  }

  /** Writes and fsyncs everything, blocking (fsync: always, rotation, shutdown). */
  syncNow(): void {
    this.flush();
    if (!this.dirty || this.broken !== null) return;
    try {
      fsyncSync(this.fd());
      this.dirty = false;
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /** fsync on the libuv pool, so the interval policy never stalls the event loop. */
  private syncInBackground(): void {
    try {
      this.flush();
    } catch {
      return; // fail() has recorded it; operations now fail closed
    }
    if (!this.dirty || this.fsyncInFlight || this.broken !== null) return;
    this.fsyncInFlight = true;
    this.dirty = false;
    fsync(this.fd(), (err) => {
      this.fsyncInFlight = false;
      if (err !== null) this.fail(err);
    });
  }

  private fd(): number {
    return (this.dest as unknown as { fd: number }).fd;
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.syncNow();
    await new Promise<void>((resolve) => {
      this.dest.once('close', () => resolve());
      this.dest.end();
    });
  }

  private append(body: string): void {
    const line = `${body},"prev":"${this.prev}"}`;
    this.prev = lineHash(line);
    this.batch.push(line);
    if (this.options.fsync === 'always') {
      this.syncNow();
    } else if (!this.flushScheduled) {
      // The socket server flushes before its answers leave; this catches every other caller.
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        try {
          this.flush();
        } catch {
          // fail() has recorded it; operations now fail closed
        }
      });
    }
    if (this.broken !== null) throw this.broken;
  }

  /** audit.log → audit.log.NNNNNN (next number); the chain runs on in the fresh file. */
  private rotate(): void {
    fsyncSync(this.fd());
    this.dirty = false;
    const target = `${this.options.path}.${String(lastRotation(this.options.path) + 1).padStart(6, '0')}`;
    renameSync(this.options.path, target);
    this.dest.reopen(this.options.path);
    this.bytes = 0;
  }

  private openDestination(): Destination {
    // Synchronous and unbuffered: our batch is the buffer, and each flush is exactly one write.
    const dest = pino.destination({ dest: this.options.path, sync: true, maxWrite: 1 << 24, mkdir: false, append: true, mode: 0o600 });
    dest.on('error', (err: Error) => this.fail(err));
    return dest;
  }

  private fail(err: Error): void {
    if (this.broken !== null) return;
    this.broken = new Error(`audit log ${this.options.path} cannot be written: ${err.message}`);
    this.options.onError?.(this.broken);
  }
}

/** Highest NNNNNN among audit.log.NNNNNN beside the log; 0 when none. */
function lastRotation(path: string): number {
  const prefix = basename(path) + '.';
  let last = 0;
  for (const name of readdirSync(dirname(path))) {
    if (!name.startsWith(prefix)) continue;
    const n = Number(name.slice(prefix.length));
    if (Number.isInteger(n) && n > last) last = n;
  }
  return last;
}

/** seq and hash of the newest complete line: in the log itself, else in the newest rotated file. */
function readHead(path: string): { seq: number; prev: string; bytes: number } {
  const size = existsSync(path) ? fstatSize(path) : 0;
  if (size > 0) {
    const tail = readTail(path);
    if (!tail.complete) {
      // A torn last line (crash mid-write): set the damaged file aside; the chain resumes from
      // its last complete line and `audit verify` still reports the torn line in that file.
      renameSync(path, `${path}.${String(lastRotation(path) + 1).padStart(6, '0')}`);
      return { ...headOf(tail.last), bytes: 0 };
    }
    return { ...headOf(tail.last), bytes: size };
  }
  const rotated = lastRotation(path);
  if (rotated > 0) {
    const tail = readTail(`${path}.${String(rotated).padStart(6, '0')}`);
    return { ...headOf(tail.last), bytes: 0 };
  }
  return { seq: 0, prev: GENESIS, bytes: 0 };
}

function fstatSize(path: string): number {
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    return fstatSync(fd).size;
  } finally {
    closeSync(fd);
  }
}

function headOf(line: string | undefined): { seq: number; prev: string } {
  if (line === undefined) return { seq: 0, prev: GENESIS };
  let seq: unknown;
  try {
    seq = (JSON.parse(line) as { seq?: unknown }).seq;
  } catch {
    seq = undefined;
  }
  if (typeof seq !== 'number' || !Number.isInteger(seq)) {
    throw new Error('the last audit line is not a valid audit record; run "rustfs-kms audit verify" and move the damaged log aside');
  }
  return { seq, prev: lineHash(line) };
}

function readTail(path: string): { last: string | undefined; complete: boolean } {
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const text = buffer.toString('utf8');
    const complete = text.endsWith('\n');
    const lines = text.split('\n').filter((l) => l.length > 0);
    if (!complete) lines.pop();
    return { last: lines[lines.length - 1], complete };
  } finally {
    closeSync(fd);
  }
}

