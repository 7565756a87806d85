// Vault KV v2 keystore, shared by every host: one secret per key at <mount>/data/<prefix>/<key_id>.
//
// - The record's revision IS the KV version. Every write is check-and-set (options.cas = the revision
//   it replaces; 0 for a new key), so concurrent writers never overwrite each other: the loser gets
//   RevisionConflict, and the key service re-reads and decides again.
// - Removal writes a tombstone with check-and-set, then deletes the secret's metadata (all versions).
//   A tombstone reads as "no such key" everywhere.
// - Sync: every successful write also bumps <prefix>/.generation, a marker whose versions each name
//   the key that changed. Every sync interval each host reads the marker's metadata (one small read);
//   when it moved, the host reads the marker versions since its last poll and re-reads just those
//   records, or (too many changes, or every FULL_SCAN_EVERY polls regardless, to catch writes from
//   other tools) lists <prefix>/, reads each secret's current_version and re-reads what changed.
//   Changes are reported through watch().
import { hostname } from 'node:os';
import { type KeyOrigin, type KeyRecord, type KeyState, type Keystore, RevisionConflict, cloneRecord, copyTags } from './types.js';
import {
  VaultResponseError, objectAt, vaultKmsError, type CallOptions, type VaultClient, type VaultLogger,
} from '../vault/client.js';

export interface VaultKvKeystoreOptions {
  client: VaultClient;
  /** Called by close() (releases the shared client). */
  release?: () => void;
  /** KV v2 mount path, e.g. "secret". */
  mount: string;
  /** Path prefix under the mount, e.g. "rustfs-kms". */
  prefix: string;
  syncIntervalMs: number;
  logger?: VaultLogger;
  /** Full scan every N polls even when the generation marker did not move (default 30). */
  fullScanEvery?: number;
}

const SCHEMA = 'rustfs-kms/key-record/v1';
/** Not a valid key id (ids start with a letter or digit), so it never collides with a key. */
const GENERATION = '.generation';
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SCAN_CONCURRENCY = 8;
/** Marker versions read one by one before a full scan is cheaper (KV keeps 10 by default). */
const MARKER_HISTORY = 8;
/** Polls between full scans when the marker does not say otherwise. */
const FULL_SCAN_EVERY = 30;
const HEALTH_TIMEOUT_MS = 5000;
const STATES: ReadonlySet<string> = new Set(['Enabled', 'Disabled', 'PendingDeletion']);
const ORIGINS: ReadonlySet<string> = new Set(['local', 'pkcs11', 'vault']);

/** A check-and-set write that lost. */
class CasMismatch extends Error {}

/** A secret under the prefix that is not a key record this code understands. */
class RecordFormatError extends Error {}

interface Stored {
  version: number;
  data: Record<string, unknown>;
  tombstone: boolean;
}

export class VaultKvKeystore implements Keystore {
  readonly type = 'vault-kv' as const;
  private readonly client: VaultClient;
  private readonly log: VaultLogger | undefined;
  /** KV version last seen or written per key (tombstones included). */
  private readonly known = new Map<string, number>();
  /** Keys with a write of ours in flight: the poller leaves them alone. */
  private readonly inflight = new Map<string, number>();
  /** Records read by listIds() for the key service's start-up, handed out once by get(). */
  private prefetched = new Map<string, KeyRecord | undefined>();
  private onChange: ((keyId: string, record: KeyRecord | undefined) => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastGeneration = -1;
  private pollsSinceScan = 0;
  private polling: Promise<void> | null = null;
  private syncError: string | null = null;
  private lastSyncAt: number | null = null;
  private closed = false;

  constructor(private readonly options: VaultKvKeystoreOptions) {
    this.client = options.client;
    this.log = options.logger;
  }

  // ---- paths ----------------------------------------------------------------------------------

  private dataPath(keyId: string): string {
    return `${this.options.mount}/data/${this.options.prefix}/${keyId}`;
  }

  private metadataPath(keyId: string): string {
    return `${this.options.mount}/metadata/${this.options.prefix}/${keyId}`;
  }

  private where(keyId: string): string {
    return `Vault KV ${this.dataPath(keyId)}`;
  }

  // ---- Keystore -------------------------------------------------------------------------------

  async open(): Promise<void> {
    try {
      this.lastGeneration = await this.generation();
    } catch (err) {
      throw vaultKmsError(err, `opening the key records at Vault KV ${this.options.mount}/${this.options.prefix}`);
    }
  }

  async get(keyId: string): Promise<KeyRecord | undefined> {
    if (this.prefetched.has(keyId)) {
      const record = this.prefetched.get(keyId);
      this.prefetched.delete(keyId);
      return record === undefined ? undefined : cloneRecord(record);
    }
    const stored = await this.read(keyId);
    if (stored === undefined) {
      this.known.delete(keyId);
      return undefined;
    }
    this.known.set(keyId, stored.version);
    return stored.tombstone ? undefined : decodeRecord(stored.data, stored.version, this.where(keyId));
  }

  /** Key ids in byte order; also reads every record (a few at a time) for the start-up that follows. */
  async listIds(): Promise<string[]> {
    const ids = await this.listKeyIds();
    this.prefetched = new Map();
    await forEachLimit(ids, SCAN_CONCURRENCY, async (id) => {
      const stored = await this.read(id);
      if (stored === undefined) return;
      this.known.set(id, stored.version);
      this.prefetched.set(id, stored.tombstone ? undefined : decodeRecord(stored.data, stored.version, this.where(id)));
    });
    return ids;
  }

  async create(record: KeyRecord): Promise<KeyRecord> {
    return this.writing(record.keyId, async () => {
      const data = encodeRecord(record);
      let version: number;
      try {
        version = await this.writeCas(record.keyId, data, 0);
      } catch (err) {
        if (!(err instanceof CasMismatch)) throw err;
        const current = await this.read(record.keyId);
        // A retried write whose first attempt landed (its answer was lost) finds its own record.
        if (current !== undefined && !current.tombstone && current.version === 1 && canonicalJson(current.data) === canonicalJson(data)) {
          this.known.set(record.keyId, 1);
          await this.bumpGeneration(record.keyId);
          return { ...cloneRecord(record), revision: 1 };
        }
        if (current === undefined || !current.tombstone) throw new RevisionConflict(record.keyId, 0, current?.version);
        // The id was removed but its tombstone is still there: the new key follows it.
        try {
          version = await this.writeCas(record.keyId, data, current.version);
        } catch (again) {
          if (again instanceof CasMismatch) throw new RevisionConflict(record.keyId, 0, undefined);
          throw again;
        }
      }
      this.known.set(record.keyId, version);
      await this.bumpGeneration(record.keyId);
      return { ...cloneRecord(record), revision: version };
    });
  }

  async update(record: KeyRecord, expectedRevision: number): Promise<KeyRecord> {
    return this.writing(record.keyId, async () => {
      const data = encodeRecord(record);
      let version: number;
      try {
        version = await this.writeCas(record.keyId, data, expectedRevision);
      } catch (err) {
        if (!(err instanceof CasMismatch)) throw err;
        const current = await this.read(record.keyId);
        // A retried write whose first attempt landed (its answer was lost) finds its own record.
        if (current !== undefined && !current.tombstone && current.version === expectedRevision + 1 &&
            canonicalJson(current.data) === canonicalJson(data)) {
          version = current.version;
        } else {
          throw new RevisionConflict(record.keyId, expectedRevision, current === undefined || current.tombstone ? undefined : current.version);
        }
      }
      this.known.set(record.keyId, version);
      await this.bumpGeneration(record.keyId);
      return { ...cloneRecord(record), revision: version };
    });
  }

  async remove(keyId: string, expectedRevision: number): Promise<void> {
    await this.writing(keyId, async () => {
      const tombstone = { schema: SCHEMA, key_id: keyId, tombstone: true, removed_at: Date.now(), removed_by: hostname() };
      try {
        await this.writeCas(keyId, tombstone, expectedRevision);
      } catch (err) {
        if (!(err instanceof CasMismatch)) throw err;
        const current = await this.read(keyId);
        // Another host purged it first: the key is gone either way.
        if (current !== undefined && !current.tombstone) throw new RevisionConflict(keyId, expectedRevision, current.version);
      }
      // The tombstone stays as the latest version: deleting the metadata would reset KV versions
      // (revisions would repeat, so a stale host's check-and-set could hit a re-created key) and an
      // unconditional delete could erase a key another host re-created meanwhile. What remains is
      // wrapped material, useless without the Transit key.
      this.known.delete(keyId);
      await this.bumpGeneration(keyId);
    });
  }

  watch(onChange: (keyId: string, record: KeyRecord | undefined) => void): void {
    this.onChange = onChange;
    this.prefetched = new Map(); // start-up is over; get() reads Vault from now on
    this.schedulePoll();
  }

  async health(): Promise<{ healthy: boolean; detail?: string }> {
    try {
      await this.generation({ timeoutMs: Math.min(HEALTH_TIMEOUT_MS, 60_000), attempts: 1 });
      return { healthy: true };
    } catch (err) {
      return { healthy: false, detail: vaultKmsError(err, `key records at Vault KV ${this.options.mount}/${this.options.prefix}`).message };
    }
  }

  describe(): Record<string, unknown> {
    return {
      type: this.type,
      address: this.client.address,
      namespace: this.client.namespace,
      kv_mount: this.options.mount,
      prefix: this.options.prefix,
      sync_interval_s: this.options.syncIntervalMs / 1000,
      ...(this.lastSyncAt !== null ? { last_sync: new Date(this.lastSyncAt).toISOString() } : {}),
      ...(this.syncError !== null ? { sync_error: this.syncError } : {}),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.polling?.catch(() => undefined);
    this.onChange = null;
    this.options.release?.();
  }

  /** One poll now (tests and the first sync); resolves when it is done. */
  syncNow(): Promise<void> {
    if (this.polling === null) {
      this.polling = this.poll().finally(() => {
        this.polling = null;
      });
    }
    return this.polling;
  }

  // ---- sync -----------------------------------------------------------------------------------

  private schedulePoll(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.syncNow().finally(() => this.schedulePoll());
    }, this.options.syncIntervalMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    try {
      const generation = await this.generation();
      this.pollsSinceScan += 1;
      const fullScanDue = this.pollsSinceScan >= (this.options.fullScanEvery ?? FULL_SCAN_EVERY);
      if (generation !== this.lastGeneration || fullScanDue) {
        // Each marker version names the key its writer changed: read just those records when every
        // version since the last poll is still there (KV keeps 10), else scan everything.
        const changed = fullScanDue ? null : await this.changedSince(this.lastGeneration, generation);
        if (changed === null) {
          await this.scan();
          this.pollsSinceScan = 0;
        } else {
          await forEachLimit(changed, SCAN_CONCURRENCY, (keyId) => this.refreshOne(keyId));
        }
        this.lastGeneration = generation; // read before the reads: a later bump triggers the next poll
      }
      if (this.syncError !== null) this.log?.info({ vault: this.client.address }, 'key record sync works again');
      this.syncError = null;
      this.lastSyncAt = Date.now();
    } catch (err) {
      const message = vaultKmsError(err, 'key record sync').message;
      if (this.syncError === null) this.log?.warn({ vault: this.client.address, err: message }, 'key record sync failed; retrying every sync interval');
      this.syncError = message;
    }
  }

  private async scan(): Promise<void> {
    // Only keys known before the LIST, and not written since, can be missing from it for real: one
    // this host created while the LIST ran is simply newer than the answer.
    const before = new Map(this.known);
    const ids = await this.listKeyIds();
    const listed = new Set(ids);
    for (const keyId of [...this.known.keys()]) {
      const unchanged = before.has(keyId) && before.get(keyId) === this.known.get(keyId);
      if (!listed.has(keyId) && unchanged && !this.inflight.has(keyId)) {
        this.known.delete(keyId);
        this.emit(keyId, undefined);
      }
    }
    await forEachLimit(ids, SCAN_CONCURRENCY, async (keyId) => {
      if (this.inflight.has(keyId) || this.closed) return;
      let current: number | undefined;
      try {
        const body = await this.client.read(this.metadataPath(keyId));
        const v = objectAt(body, 'data')?.current_version;
        current = typeof v === 'number' ? v : undefined;
      } catch (err) {
        if (!(err instanceof VaultResponseError && err.status === 404)) throw err;
      }
      if (current !== undefined && current === this.known.get(keyId)) return;
      await this.refreshOne(keyId);
    });
  }

  /** Key ids named by marker versions from+1..to, or null when that cannot be told. */
  private async changedSince(from: number, to: number): Promise<string[] | null> {
    if (from < 0 || to <= from || to - from > MARKER_HISTORY) return null;
    const ids = new Set<string>();
    for (let v = from + 1; v <= to; v++) {
      let body: Record<string, unknown> | undefined;
      try {
        body = await this.client.read(`${this.dataPath(GENERATION)}?version=${v}`);
      } catch (err) {
        if (err instanceof VaultResponseError && err.status === 404) return null;
        throw err;
      }
      const keyId = objectAt(objectAt(body, 'data'), 'data')?.key_id;
      if (typeof keyId !== 'string' || !KEY_ID.test(keyId)) return null;
      ids.add(keyId);
    }
    return [...ids];
  }

  private async refreshOne(keyId: string): Promise<void> {
    if (this.inflight.has(keyId) || this.closed) return;
    let record: KeyRecord | undefined;
    try {
      record = await this.get(keyId);
    } catch (err) {
      if (!(err instanceof RecordFormatError)) throw err;
      this.log?.error({ key_id: keyId, err: (err as Error).message }, 'skipping a key record that does not parse');
      return;
    }
    if (this.inflight.has(keyId)) return;
    this.emit(keyId, record);
  }

  private emit(keyId: string, record: KeyRecord | undefined): void {
    try {
      this.onChange?.(keyId, record);
    } catch (err) {
      this.log?.error({ key_id: keyId, err: (err as Error).message }, 'applying a remote key change failed');
    }
  }

  // ---- Vault I/O ------------------------------------------------------------------------------

  private async writing<T>(keyId: string, fn: () => Promise<T>): Promise<T> {
    this.inflight.set(keyId, (this.inflight.get(keyId) ?? 0) + 1);
    try {
      return await fn();
    } finally {
      const n = (this.inflight.get(keyId) ?? 1) - 1;
      if (n === 0) this.inflight.delete(keyId);
      else this.inflight.set(keyId, n);
    }
  }

  private async listKeyIds(): Promise<string[]> {
    let names: string[];
    try {
      names = await this.client.list(`${this.options.mount}/metadata/${this.options.prefix}/`);
    } catch (err) {
      throw vaultKmsError(err, `listing key records at Vault KV ${this.options.mount}/metadata/${this.options.prefix}/`);
    }
    return names.filter((n) => KEY_ID.test(n)).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  }

  /** The stored secret, or undefined when there is none. */
  private async read(keyId: string): Promise<Stored | undefined> {
    let body: Record<string, unknown> | undefined;
    try {
      body = await this.client.read(this.dataPath(keyId));
    } catch (err) {
      if (err instanceof VaultResponseError && err.status === 404) return undefined;
      throw vaultKmsError(err, `reading key record ${keyId} from ${this.where(keyId)}`);
    }
    const outer = objectAt(body, 'data');
    const data = objectAt(outer, 'data');
    const version = objectAt(outer, 'metadata')?.version;
    if (data === undefined || typeof version !== 'number') return undefined; // latest version deleted
    return { version, data, tombstone: data.tombstone === true };
  }

  /** A check-and-set write; the new KV version, or CasMismatch. */
  private async writeCas(keyId: string, data: Record<string, unknown>, cas: number): Promise<number> {
    let body: Record<string, unknown> | undefined;
    try {
      body = await this.client.write(this.dataPath(keyId), { data, options: { cas } });
    } catch (err) {
      if (err instanceof VaultResponseError && err.status === 400 && err.errors.some((e) => e.includes('check-and-set'))) {
        throw new CasMismatch();
      }
      throw vaultKmsError(err, `writing key record ${keyId} to ${this.where(keyId)}`);
    }
    const version = objectAt(body, 'data')?.version;
    if (typeof version !== 'number') throw vaultKmsError(new Error('the answer names no version'), `writing key record ${keyId}`);
    return version;
  }

  private async generation(options: CallOptions = {}): Promise<number> {
    try {
      const body = await this.client.read(this.metadataPath(GENERATION), options);
      const v = objectAt(body, 'data')?.current_version;
      return typeof v === 'number' ? v : 0;
    } catch (err) {
      if (err instanceof VaultResponseError && err.status === 404) return 0;
      throw err;
    }
  }

  /**
   * Tells the other hosts to look: a new version of the marker. Written with check-and-set like
   * everything else (so mounts with cas_required work); a lost race is retried on the newer version,
   * because the marker must move after this host's own write.
   */
  private async bumpGeneration(keyId: string): Promise<void> {
    try {
      for (let attempt = 1; ; attempt++) {
        const current = await this.generation();
        try {
          await this.client.write(this.dataPath(GENERATION), { data: { key_id: keyId, at: Date.now(), by: hostname() }, options: { cas: current } });
          return;
        } catch (err) {
          const lost = err instanceof VaultResponseError && err.status === 400 && err.errors.some((e) => e.includes('check-and-set'));
          if (!lost || attempt >= 5) throw err;
        }
      }
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'could not bump the sync marker; other hosts see this change at their next full scan');
    }
  }
}

// ---- the stored form ---------------------------------------------------------------------------

function encodeRecord(r: KeyRecord): Record<string, unknown> {
  return {
    schema: SCHEMA,
    key_id: r.keyId,
    state: r.state,
    origin: r.origin,
    description: r.description,
    tags: copyTags(r.tags),
    created_at: r.createdAt,
    ...(r.rotatedAt !== undefined ? { rotated_at: r.rotatedAt } : {}),
    ...(r.deletionDate !== undefined ? { deletion_date: r.deletionDate } : {}),
    ...(r.rotationPeriodDays !== undefined ? { rotation_period_days: r.rotationPeriodDays } : {}),
    current_version: r.currentVersion,
    versions: r.versions.map((v) => ({
      version: v.version, created_at: v.createdAt, wrapped_material: v.wrappedMaterial, root_ref: v.rootRef,
    })),
  };
}

function decodeRecord(d: Record<string, unknown>, revision: number, where: string): KeyRecord {
  const bad = (what: string): never => {
    throw new RecordFormatError(`key record at ${where} (version ${revision}) is not a rustfs-kms record: ${what}`);
  };
  if (d.schema !== SCHEMA) bad(`schema is ${JSON.stringify(d.schema)}, expected "${SCHEMA}"`);
  const str = (k: string): string => (typeof d[k] === 'string' ? (d[k] as string) : bad(`${k} is not a string`));
  const int = (v: unknown, k: string): number => (typeof v === 'number' && Number.isSafeInteger(v) ? v : bad(`${k} is not an integer`));
  const optInt = (k: string): number | undefined => (d[k] === undefined || d[k] === null ? undefined : int(d[k], k));
  const state = str('state');
  if (!STATES.has(state)) bad(`state ${JSON.stringify(state)}`);
  const origin = str('origin');
  if (!ORIGINS.has(origin)) bad(`origin ${JSON.stringify(origin)}`);
  const tagsRaw = d.tags;
  // Names are not judged here: the key service keeps the valid tags and logs the rest.
  const tags: Record<string, string> = copyTags({});
  if (tagsRaw !== undefined && tagsRaw !== null) {
    if (typeof tagsRaw !== 'object' || Array.isArray(tagsRaw)) bad('tags is not a map');
    for (const [k, v] of Object.entries(tagsRaw as Record<string, unknown>)) {
      tags[k] = v as string; // a non-string value is dropped by the key service, with the others
    }
  }
  if (!Array.isArray(d.versions) || d.versions.length === 0) bad('versions is not a non-empty list');
  const versions = (d.versions as unknown[]).map((raw, i) => {
    if (typeof raw !== 'object' || raw === null) bad(`versions[${i}] is not a map`);
    const v = raw as Record<string, unknown>;
    if (typeof v.wrapped_material !== 'string' || typeof v.root_ref !== 'string') bad(`versions[${i}] lacks wrapped_material or root_ref`);
    return {
      version: int(v.version, `versions[${i}].version`),
      createdAt: int(v.created_at, `versions[${i}].created_at`),
      wrappedMaterial: v.wrapped_material as string,
      rootRef: v.root_ref as string,
    };
  });
  const record: KeyRecord = {
    keyId: str('key_id'),
    state: state as KeyState,
    origin: origin as KeyOrigin,
    description: typeof d.description === 'string' ? d.description : '',
    tags,
    createdAt: int(d.created_at, 'created_at'),
    currentVersion: int(d.current_version, 'current_version'),
    versions,
    revision,
  };
  const rotatedAt = optInt('rotated_at');
  const deletionDate = optInt('deletion_date');
  const rotationPeriodDays = optInt('rotation_period_days');
  if (rotatedAt !== undefined) record.rotatedAt = rotatedAt;
  if (deletionDate !== undefined) record.deletionDate = deletionDate;
  if (rotationPeriodDays !== undefined) record.rotationPeriodDays = rotationPeriodDays;
  if (!versions.some((v) => v.version === record.currentVersion)) bad(`current_version ${record.currentVersion} is not among the versions`);
  return record;
}

/** JSON with map keys sorted (Vault returns maps in its own order). */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (failure === null && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw failure;
}
