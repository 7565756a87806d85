// The audit log: one hash-chained JSON line per operation, allowed or denied, succeeded or failed.
// The lines of one tick are joined and written once, before the answers of that tick leave (the
// server calls flush() before it uncorks), and fsynced per the configured policy (the interval
// policy fsyncs on the libuv pool). The chain continues across restarts and across size-based
// rotation (audit.log → audit.log.000001, …).
//
// A write that fails (a full disk) fails closed without ending the service: the bytes not written
// are kept, already chained, and retried first on the next request or flush; until they land, new
// work is refused (ensureWritable) with a distinct error, and when they land the log is whole again
// and verifies. A failed fsync or rotation cannot be retried safely: refused until restart.
// Unidentified callers' refusals are aggregated (refusals.ts) so they cannot fill the disk.
import { closeSync, existsSync, fstatSync, fsync, fsyncSync, openSync, readSync, readdirSync, renameSync, constants as fsc } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { AuditEvent, AuditSink } from './event.js';
import { GENESIS, lineHash } from './chain.js';
import { AppendFile } from './file.js';
import { formatEvent, formatLifecycle, formatSummary } from './record.js';
import { RefusalAggregator } from './refusals.js';
import { AuditUnavailableError, describeWriteError } from './unavailable.js';

export interface AuditLogOptions {
  path: string;
  /** always: fsync every line; interval: every fsyncIntervalMs; never: leave it to the kernel. */
  fsync: 'always' | 'interval' | 'never';
  fsyncIntervalMs: number;
  /** Rotate once the file reaches this size; 0 = never. */
  maxBytes: number;
  /** Aggregated refusals: one summary line per key per interval. Default 60 s. */
  refusalIntervalMs?: number;
  /** Called once when the log stops taking lines (not once per failed retry). */
  onError?: (err: Error) => void;
  /** Called once when a failed log takes lines again. */
  onRecover?: (info: { downMs: number; writeFailures: number }) => void;
}

export interface AuditHead {
  seq: number;
  hash: string;
  path: string;
}

export interface AuditHealth {
  writable: boolean;
  /** Writes and fsyncs that failed since start (retries included). */
  writeFailures: number;
}

const TAIL_BYTES = 1 << 20;
/** Chained lines held in memory while the disk refuses them; past this, record() refuses too. */
const MAX_UNWRITTEN_BYTES = 1 << 20;
/** Refusal windows (sources) tracked at once; more share one overflow window. */
const MAX_REFUSAL_KEYS = 256;
const DEFAULT_REFUSAL_INTERVAL_MS = 60_000;

export class AuditLog implements AuditSink {
  private readonly file: AppendFile;
  private seq: number;
  private prev: string;
  private bytes: number;
  private timer: NodeJS.Timeout | null = null;
  private readonly refusalTimer: NodeJS.Timeout;
  private readonly refusals: RefusalAggregator;
  /** Lines of this tick, written to the file as one string by flush(). */
  private batch: string[] = [];
  /** Chained bytes a failed write left behind; written before anything else. */
  private unwritten: Buffer | null = null;
  /** The write failure in progress, if any (recoverable). */
  private outage: { error: AuditUnavailableError; since: number } | null = null;
  /** A failure that cannot be retried (fsync, rotation): refused until restart. */
  private fatal: AuditUnavailableError | null = null;
  private writeFailures = 0;
  /** Lines written to the file but not yet fsynced. */
  private dirty = false;
  private flushScheduled = false;
  private fsyncInFlight = false;

  private constructor(private readonly options: AuditLogOptions, head: { seq: number; prev: string; bytes: number }) {
    this.seq = head.seq;
    this.prev = head.prev;
    this.bytes = head.bytes;
    this.file = new AppendFile(options.path);
    if (options.fsync === 'interval') {
      this.timer = setInterval(() => this.syncInBackground(), Math.max(10, options.fsyncIntervalMs));
      this.timer.unref();
    }
    this.refusals = new RefusalAggregator((event, summary) => this.writeRefusal(event, summary), MAX_REFUSAL_KEYS);
    this.refusalTimer = setInterval(() => this.refusals.tick(), options.refusalIntervalMs ?? DEFAULT_REFUSAL_INTERVAL_MS);
    this.refusalTimer.unref();
  }

  /** Opens (or creates, 0600, never through a symlink) the log and picks the chain up where the last line left it. */
  static open(options: AuditLogOptions): AuditLog {
    return new AuditLog(options, readHead(options.path));
  }

  get head(): AuditHead {
    return { seq: this.seq, hash: this.prev, path: this.options.path };
  }

  get health(): AuditHealth {
    return { writable: this.fatal === null && this.outage === null, writeFailures: this.writeFailures };
  }

  record(event: AuditEvent): void {
    this.admitLine();
    this.seq += 1;
    this.append(formatEvent(this.seq, Date.now(), event));
  }

  lifecycle(op: string, detail: Record<string, string | number>, outcome: 'success' | 'failure' = 'success'): void {
    this.admitLine();
    this.seq += 1;
    this.append(formatLifecycle(this.seq, Date.now(), op, detail, outcome));
  }

  /** A refusal of a caller nobody identified: the first per key and interval is written, the rest counted. */
  recordRefusal(key: string, event: AuditEvent): void {
    this.refusals.refuse(key, event, Date.now());
  }

  /**
   * Before new work: retries what a failed write left behind, and throws AuditUnavailableError
   * while the log still cannot be written.
   */
  ensureWritable(): void {
    if (this.fatal !== null) throw this.fatal;
    if (this.outage === null) return;
    this.retryUnwritten();
    if (this.outage !== null) throw this.outage.error;
    if (this.options.fsync === 'always') this.syncNow();
  }

  /**
   * Writes this tick's lines to the file in one write (no fsync). Throws when they could not be
   * written: the answers they describe must not leave. With no lines of its own it only retries
   * earlier unwritten bytes, and never throws (answers of this tick need nothing from the disk).
   */
  flush(): void {
    if (this.batch.length === 0) {
      if (this.unwritten !== null && this.fatal === null) this.retryUnwritten();
      return;
    }
    const text = this.batch.length === 1 ? this.batch[0] + '\n' : this.batch.join('\n') + '\n';
    this.batch = [];
    if (this.fatal !== null) throw this.fatal;
    const fresh = Buffer.from(text);
    const data = this.unwritten === null ? fresh : Buffer.concat([this.unwritten, fresh]);
    this.unwritten = null;
    if (!this.writeOut(data)) throw (this.outage as { error: AuditUnavailableError }).error;
  }

  /** Writes and fsyncs everything, blocking (fsync: always, rotation, shutdown). */
  syncNow(): void {
    this.flush();
    if (!this.dirty || this.fatal !== null) return;
    try {
      fsyncSync(this.file.fd);
      this.dirty = false;
    } catch (err) {
      this.setFatal('fsync', err as NodeJS.ErrnoException);
    }
  }

  /** fsync on the libuv pool, so the interval policy never stalls the event loop. */
  private syncInBackground(): void {
    try {
      this.flush();
    } catch {
      return; // the outage is recorded; new work is refused until the bytes land
    }
    if (!this.dirty || this.fsyncInFlight || this.fatal !== null) return;
    this.fsyncInFlight = true;
    this.dirty = false;
    fsync(this.file.fd, (err) => {
      this.fsyncInFlight = false;
      if (err !== null) this.setFatal('fsync', err);
    });
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    clearInterval(this.refusalTimer);
    try {
      this.refusals.drain();
      this.syncNow();
    } finally {
      this.file.close();
    }
  }

  /** New lines are refused when they could never be written, or when too much is held already. */
  private admitLine(): void {
    if (this.fatal !== null) throw this.fatal;
    if (this.outage !== null && (this.unwritten?.length ?? 0) >= MAX_UNWRITTEN_BYTES) throw this.outage.error;
  }

  private writeRefusal(event: AuditEvent, summary?: { count: number; since: number }): boolean {
    if (this.fatal !== null || this.outage !== null) return false;
    this.seq += 1;
    const now = Date.now();
    try {
      this.append(summary === undefined ? formatEvent(this.seq, now, event) : formatSummary(this.seq, now, event, summary.count, summary.since));
    } catch {
      // chained and held as unwritten: it lands with the rest once the disk takes it
    }
    return true;
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
          // the outage is recorded; new work is refused until the bytes land
        }
      });
    }
  }

  private retryUnwritten(): void {
    const data = this.unwritten;
    if (data === null) return;
    this.unwritten = null;
    this.writeOut(data);
  }

  /** One write of chained bytes; what does not land is kept for the next try. True when all landed. */
  private writeOut(data: Buffer): boolean {
    const failed = this.file.write(data);
    const written = data.length - (failed?.rest.length ?? 0);
    if (written > 0) {
      this.dirty = true;
      this.bytes += written;
    }
    if (failed !== null) {
      this.unwritten = Buffer.from(failed.rest); // a copy: `data` may be a large concatenation
      this.writeFailures += 1;
      if (this.outage === null) {
        const error = new AuditUnavailableError(
          `audit log cannot be written: ${describeWriteError(failed.error)}; new requests are refused until it can be`, true);
        this.outage = { error, since: Date.now() };
        this.options.onError?.(new Error(`${error.message} (${this.options.path}: ${failed.error.message})`));
      }
      return false;
    }
    if (this.outage !== null) {
      const downMs = Date.now() - this.outage.since;
      this.outage = null;
      this.options.onRecover?.({ downMs, writeFailures: this.writeFailures });
    }
    if (this.options.maxBytes > 0 && this.bytes >= this.options.maxBytes) {
      try {
        this.rotate();
      } catch (err) {
        this.setFatal('rotation', err as NodeJS.ErrnoException); // the lines are written; what comes next is refused
      }
    }
    return true;
  }

  private setFatal(what: string, err: NodeJS.ErrnoException): void {
    this.writeFailures += 1;
    if (this.fatal !== null) return;
    this.fatal = new AuditUnavailableError(
      `audit log cannot be written: ${what} failed, ${describeWriteError(err)}; requests are refused until the daemon is restarted`, false);
    this.options.onError?.(new Error(`${this.fatal.message} (${this.options.path}: ${err.message})`));
  }

  /** audit.log → audit.log.NNNNNN (next number); the chain runs on in the fresh file. */
  private rotate(): void {
    fsyncSync(this.file.fd);
    this.dirty = false;
    const target = `${this.options.path}.${String(lastRotation(this.options.path) + 1).padStart(6, '0')}`;
    renameSync(this.options.path, target);
    this.file.reopen();
    this.bytes = 0;
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
