// Tools of a hostile local process, for the test/hostile suite: raw Unix-socket floods, the daemon's
// fds and RSS from /proc, a health prober that measures how long `health` takes during an attack,
// and a scan of the daemon's whole memory (/proc/PID/maps + /proc/PID/mem, needs root) for secrets.
import net from 'node:net';
import { closeSync, openSync, readFileSync, readSync, readdirSync } from 'node:fs';
import { RawConn } from '../integration/wire.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

/** Opens a connection and resolves once connected (or failed: then null). Errors never escape. */
export function openRaw(path: string): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const s = net.createConnection({ path });
    s.on('error', () => resolve(null));
    s.once('connect', () => resolve(s));
  });
}

/** `count` connections that connect and close at once, `parallel` at a time. */
export async function connectAndClose(path: string, count: number, parallel = 100): Promise<void> {
  for (let done = 0; done < count; done += parallel) {
    await Promise.all(Array.from({ length: Math.min(parallel, count - done) }, async () => (await openRaw(path))?.destroy()));
  }
}

/**
 * Calls `health` on its own connection every `everyMs` until stopped and records the slowest answer
 * and every failure (no answer within deadlineMs, an error answer, a closed connection).
 */
export class HealthWatch {
  slowestMs = 0;
  calls = 0;
  readonly failures: string[] = [];
  private running = true;
  private readonly loop: Promise<void>;

  private constructor(private readonly conn: RawConn, everyMs: number, deadlineMs: number) {
    this.loop = (async () => {
      let id = 1;
      while (this.running) {
        const started = Date.now();
        try {
          conn.send(requestHealth(id));
          const answer = (await conn.next(deadlineMs)).value as { id: number; ok: boolean };
          if (answer.id !== id || answer.ok !== true) this.failures.push(`health answer ${JSON.stringify(answer)}`);
        } catch (err) {
          this.failures.push((err as Error).message);
          return;
        }
        this.slowestMs = Math.max(this.slowestMs, Date.now() - started);
        this.calls += 1;
        id += 1;
        await sleep(everyMs);
      }
    })();
  }

  static async start(path: string, everyMs = 100, deadlineMs = 5000): Promise<HealthWatch> {
    return new HealthWatch(await RawConn.open(path), everyMs, deadlineMs);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.conn.close();
  }
}

function requestHealth(id: number): Buffer {
  // {id, op: "health", args: {}} written by hand: 0x83, "id", id (uint32), "op", "health", "args", {}
  const body = Buffer.concat([
    Buffer.from([0x83, 0xa2, 0x69, 0x64, 0xce]), u32(id),
    Buffer.from([0xa2, 0x6f, 0x70, 0xa6]), Buffer.from('health'),
    Buffer.from([0xa4]), Buffer.from('args'), Buffer.from([0x80]),
  ]);
  return Buffer.concat([u32(body.length), body]);
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

/**
 * How many of `needles` (each ≥ 8 bytes) occur anywhere in the readable memory of process `pid`.
 * Reads every readable mapping through /proc/PID/mem (root, or ptrace rights over the process).
 */
export function findInMemory(pid: number, needles: readonly Buffer[]): { found: number; scannedMiB: number; where: Map<string, number> } {
  const byPrefix = new Map<number, Buffer[]>();
  const first2 = new Uint8Array(65536);
  for (const n of needles) {
    const key = n.readUInt32LE(0);
    byPrefix.set(key, [...(byPrefix.get(key) ?? []), n]);
    first2[n[0]! | (n[1]! << 8)] = 1;
  }
  const maxLen = Math.max(...needles.map((n) => n.length));
  const found = new Set<Buffer>();
  /** Mapping (its path, `[heap]`, or `anonymous`) → needles first found there. */
  const where = new Map<string, number>();
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  let scanned = 0;
  const block = Buffer.alloc(8 << 20);
  try {
    for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+)/.exec(line);
      if (m === null || m[3]![0] !== 'r' || /\[(vvar|vsyscall|vvar_vclock)\]/.test(line)) continue;
      const region = line.split(/\s+/).slice(5).join(' ') || 'anonymous';
      const start = BigInt(`0x${m[1]}`);
      const end = BigInt(`0x${m[2]}`);
      for (let at = start; at < end; ) {
        const want = Number(end - at < BigInt(block.length) ? end - at : BigInt(block.length));
        let got: number;
        try {
          got = readSync(fd, block, 0, want, at);
        } catch {
          break; // an unreadable range (guard pages and the like)
        }
        if (got <= 0) break;
        scanned += got;
        for (let i = 0; i + 8 <= got; i++) {
          if (first2[block[i]! | (block[i + 1]! << 8)] === 0) continue;
          const candidates = byPrefix.get(block.readUInt32LE(i));
          if (candidates === undefined) continue;
          for (const c of candidates) {
            if (i + c.length > got || block.compare(c, 0, c.length, i, i + c.length) !== 0 || found.has(c)) continue;
            found.add(c);
            where.set(region, (where.get(region) ?? 0) + 1);
          }
        }
        // Step back by maxLen so a needle across the block boundary is seen.
        at += BigInt(got > maxLen ? got - maxLen : got);
      }
    }
  } finally {
    closeSync(fd);
  }
  return { found: found.size, scannedMiB: Math.round(scanned / 1048576), where };
}
