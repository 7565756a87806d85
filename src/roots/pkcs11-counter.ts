// Seal counters for on-token master-key versions. AES-256-GCM with random 96-bit nonces stays safe
// for at most 2^32 seals under one key (NIST SP 800-38D, 8.3), so every version counts its seals
// and is rotated well before that. Counts are persisted in reserved blocks: the file records, per
// version, how many seals have been *reserved*; a crash can lose at most one block of unused
// reservations and never under-counts. The file is rewritten atomically (temp → fsync → rename →
// fsync dir) once per block, never per seal.
import { constants as fsc, existsSync, readFileSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { KmsError } from '../errors.js';

/** Rotate at 2^31 seals: half the bound, so a lost counter block can never push a version past it. */
export const DEFAULT_SEAL_LIMIT = 2 ** 31;
/** Reserve 2^20 seals per write of the counter file. */
export const DEFAULT_RESERVE_BLOCK = 2 ** 20;
/** Refuse to seal at all past this (a version whose rotation keeps failing). */
export const HARD_SEAL_LIMIT = 2 ** 32 - 2 ** 24;

const FILE_FORMAT = 1;

export interface SealCounterOptions {
  /** Seals after which a version is due for rotation. */
  limit: number;
  /** Seals reserved per file write. */
  block: number;
}

interface Counter {
  used: number;
  /** Reserved on disk: seals up to here need no write. */
  reserved: number;
  /** What the write in progress reserves (≥ reserved). */
  target: number;
}

export class SealCounters {
  private readonly counters = new Map<string, Counter>();
  private readonly reserving = new Map<string, Promise<void>>();
  private writeChain: Promise<void> = Promise.resolve();
  private dirty = false;
  readonly limit: number;
  readonly block: number;
  readonly hardLimit: number;

  /** Reads the counter file (if any): every version starts at what it had reserved. */
  constructor(readonly path: string, options: SealCounterOptions) {
    if (!Number.isSafeInteger(options.limit) || options.limit < 1) throw new RangeError('seal limit must be a positive integer');
    this.limit = options.limit;
    this.block = Math.max(1, Math.min(options.block, options.limit));
    this.hardLimit = Math.max(HARD_SEAL_LIMIT, options.limit);
    if (existsSync(path)) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(readFileSync(path, 'utf8'));
      } catch (err) {
        throw new Error(`seal counter file ${path} is not valid JSON (${(err as Error).message}); restore it or remove it (every on-token key then rotates once)`);
      }
      const doc = parsed as { format?: unknown; reserved?: unknown };
      if (doc.format !== FILE_FORMAT || typeof doc.reserved !== 'object' || doc.reserved === null) {
        throw new Error(`seal counter file ${path} has an unknown format`);
      }
      for (const [key, value] of Object.entries(doc.reserved as Record<string, unknown>)) {
        if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
          throw new Error(`seal counter file ${path}: bad count for ${key}`);
        }
        // What was reserved may have been used: start from there.
        this.counters.set(key, { used: value, reserved: value, target: value });
      }
    }
  }

  static key(keyId: string, version: number): string {
    return `${keyId}#${version}`;
  }

  /** A new version: counted from zero, with its first block reserved on disk. */
  async register(keyId: string, version: number): Promise<void> {
    const key = SealCounters.key(keyId, version);
    const counter: Counter = { used: 0, reserved: 0, target: this.block };
    this.counters.set(key, counter);
    await this.persist();
    counter.reserved = Math.max(counter.reserved, counter.target);
  }

  /** Seals so far (an upper bound after a restart); undefined when the version is unknown. */
  used(keyId: string, version: number): number | undefined {
    return this.counters.get(SealCounters.key(keyId, version))?.used;
  }

  /**
   * Counts one seal. Returns undefined when the seal is covered by the reservation (the fast
   * path), or a promise that settles once a new block is on disk.
   */
  take(keyId: string, version: number): Promise<void> | undefined {
    const key = SealCounters.key(keyId, version);
    let counter = this.counters.get(key);
    if (counter === undefined) {
      // No record of this version (counter file lost): assume it is used up so that it rotates.
      counter = { used: this.limit, reserved: this.limit, target: this.limit };
      this.counters.set(key, counter);
    }
    if (counter.used >= this.hardLimit) {
      throw new KmsError('Internal', `key ${keyId} version ${version} has sealed ${counter.used} times and must be rotated before it seals again`);
    }
    if (counter.used < counter.reserved) {
      counter.used++;
      return undefined;
    }
    return this.reserve(key, counter).then(() => {
      const again = this.take(keyId, version);
      return again;
    });
  }

  /** Whether a version should be replaced: over the limit, or never counted (counter file lost). */
  rotationDue(keyId: string, version: number): boolean {
    const counter = this.counters.get(SealCounters.key(keyId, version));
    return counter === undefined || counter.used >= this.limit;
  }

  /** A destroyed version: its count is dropped with the next write. */
  forget(keyId: string, version: number): Promise<void> {
    if (!this.counters.delete(SealCounters.key(keyId, version))) return Promise.resolve();
    return this.persist();
  }

  /** Waits for pending writes. */
  async flush(): Promise<void> {
    await this.writeChain;
  }

  private reserve(key: string, counter: Counter): Promise<void> {
    const pending = this.reserving.get(key);
    if (pending !== undefined) return pending;
    const target = Math.max(counter.reserved, counter.used) + this.block;
    counter.target = target;
    const promise = this.persist()
      .then(() => {
        counter.reserved = Math.max(counter.reserved, target);
      })
      .finally(() => this.reserving.delete(key));
    this.reserving.set(key, promise);
    return promise;
  }

  /** Coalesces writes: one write after the current one covers every change made meanwhile. */
  private persist(): Promise<void> {
    this.dirty = true;
    const next = this.writeChain.then(async () => {
      if (!this.dirty) return;
      this.dirty = false;
      const reserved: Record<string, number> = {};
      for (const [key, counter] of this.counters) reserved[key] = Math.max(counter.reserved, counter.target);
      await writeAtomic(this.path, JSON.stringify({ format: FILE_FORMAT, reserved }) + '\n');
    });
    this.writeChain = next.catch(() => undefined);
    return next.catch((err: unknown) => {
      this.dirty = true;
      throw new KmsError('BackendUnavailable', `cannot record seal counts in ${this.path}: ${(err as Error).message}`);
    });
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fh = await open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  await rename(tmp, path);
  const dir = await open(dirname(path), fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
