// The key service: lifecycle (Enabled / Disabled / PendingDeletion), versions and rotation,
// deletion windows, and the cache of unwrapped versions in locked slots. It knows nothing of
// sockets or HTTP; every failure is a KmsError with a protocol code.
import { randomBytes } from 'node:crypto';
import { KmsError } from '../errors.js';
import { native, XAES_NONCE_BYTES, TAG_BYTES, type SlotHandle } from '../native/index.js';
import { ALG_AES_256_GCM, ALG_XAES_256_GCM, encodeHeader, parseEnvelope, type EnvelopeHeader } from '../crypto/envelope.js';
import { canonicalContext, type EncryptionContext } from '../crypto/context.js';
import { keyMaterialAad, type RootOfTrust, type TokenKeys } from '../roots/types.js';
import { RevisionConflict, type KeyRecord, type KeyVersionRecord, type Keystore } from '../keystore/types.js';
import {
  BATCH_COUNT, DATA_KEY_BYTES, KEY_ID_PATTERN, LIST_LIMIT, PENDING_DAYS, ROTATION_PERIOD_DAYS,
  assertDescription, assertIntegerIn, assertKeyId, assertPlaintext, checkTags, emptyTags, storedTags,
} from './validation.js';
import type {
  CreateKeyOptions, DataKeyBatchResult, DataKeyOptions, DataKeyResult, KeyInfo, ListKeysOptions,
  ListKeysResult, Maybe, OpenResult, SealResult,
} from './types.js';
import type { Logger } from '../logging.js';

const DAY_MS = 86_400_000;
const MAINTENANCE_INTERVAL_MS = 60_000;
const CAS_ATTEMPTS = 5;
/** A shared keystore is asked about a key a ciphertext names but this host does not know at most this often. */
const REMOTE_FETCH_INTERVAL_MS = 1000;
/** …and at most this many such reads per second in all, so random key ids cannot flood the keystore. */
const REMOTE_FETCHES_PER_SECOND = 50;
/** One message for every way a ciphertext can fail, so failures are no oracle. */
const INVALID_CIPHERTEXT = 'ciphertext does not authenticate (malformed, tampered with, or wrong context)';

export type { Logger } from '../logging.js';

export interface KeyServiceOptions {
  keystore: Keystore;
  root: RootOfTrust;
  /** Unwrapped versions unused this long are wiped from memory. */
  idleTtlMs: number;
  /** While the root is unreachable, cached versions keep serving this long past their idle TTL. */
  offlineTtlMs: number;
  logger?: Logger;
  now?: () => number;
}

/** A key's record and the versions currently unwrapped in locked slots. */
interface Entry {
  record: KeyRecord;
  slots: Map<number, SlotHandle>;
  loading: Map<number, Promise<SlotHandle>>;
  /** Envelope header for the current version, built once per rotation. */
  header: Buffer | null;
  lastUsed: number;
}

export class KeyService {
  readonly startedAt: number;
  private readonly entries = new Map<string, Entry>();
  private sortedIds: string[] | null = null;
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly now: () => number;
  private clock: number;
  private timers: NodeJS.Timeout[] = [];
  private rootHealthy = true;
  private closed = false;
  /** On-token mode: automatic rotations (seal budget used up) in progress, by key. */
  private readonly tokenRotations = new Map<string, Promise<void>>();
  private evicting = false;
  private readonly remoteFetches = new Map<string, { at: number; pending: Promise<void> | null }>();
  /** Remote lookups in the current clock second (the clock ticks once a second). */
  private remoteBudget = { second: 0, used: 0 };

  constructor(private readonly options: KeyServiceOptions) {
    this.now = options.now ?? Date.now;
    this.clock = this.now();
    this.startedAt = this.clock;
  }

  get keystore(): Keystore {
    return this.options.keystore;
  }

  get root(): RootOfTrust {
    return this.options.root;
  }

  /** Loads every record, proves the root opens them, then purges and rotates what is due. */
  async start(): Promise<void> {
    const { keystore } = this.options;
    await keystore.open();
    for (const keyId of await keystore.listIds()) {
      const record = await keystore.get(keyId);
      if (record !== undefined) this.entries.set(keyId, newEntry(this.admit(record), this.clock));
    }
    await this.verifyRoot();
    keystore.watch?.((keyId, record) => this.applyRemote(keyId, record));
    await this.maintenance();
    const tick = setInterval(() => {
      this.clock = this.now();
    }, 1000);
    const evict = setInterval(() => void this.evictIdle(), Math.max(1000, Math.min(this.options.idleTtlMs / 2, 30_000)));
    const maintain = setInterval(() => {
      this.maintenance().catch((err: unknown) => this.options.logger?.error({ err: errorText(err) }, 'key maintenance failed'));
    }, MAINTENANCE_INTERVAL_MS);
    for (const t of [tick, evict, maintain]) t.unref();
    this.timers = [tick, evict, maintain];
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await Promise.allSettled([...this.chains.values()]);
    for (const entry of this.entries.values()) wipeSlots(entry);
    await this.options.keystore.close();
    await this.options.root.close();
  }

  get keyCount(): number {
    return this.entries.size;
  }

  /** How many keys `visible` accepts (all of them without it). */
  countKeys(visible?: (keyId: string) => boolean): number {
    if (visible === undefined) return this.entries.size;
    let count = 0;
    for (const keyId of this.entries.keys()) if (visible(keyId)) count++;
    return count;
  }

  get unwrappedVersions(): number {
    let count = 0;
    for (const entry of this.entries.values()) count += entry.slots.size;
    return count;
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  async createKey(keyId: string, options: CreateKeyOptions = {}): Promise<KeyInfo> {
    assertKeyId(keyId);
    const description = options.description ?? '';
    const tags = options.tags === undefined ? emptyTags() : checkTags(options.tags);
    assertDescription(description);
    if (options.rotationPeriodDays !== undefined) {
      assertIntegerIn(options.rotationPeriodDays, 'rotation_period_days', ROTATION_PERIOD_DAYS.min, ROTATION_PERIOD_DAYS.max);
    }
    return this.serialized(keyId, async () => {
      if (this.entries.has(keyId)) throw new KmsError('KeyAlreadyExists', `key ${keyId} already exists`);
      const now = this.now();
      const { slot, version } = await this.newVersion(keyId, 1, now);
      const record: KeyRecord = {
        keyId, state: 'Enabled', origin: this.options.root.origin, description, tags,
        createdAt: now, currentVersion: 1, versions: [version], revision: 0,
        ...(options.rotationPeriodDays !== undefined ? { rotationPeriodDays: options.rotationPeriodDays } : {}),
      };
      let stored: KeyRecord;
      try {
        stored = await this.options.keystore.create(record);
      } catch (err) {
        await this.discardVersion(keyId, 1, slot);
        if (err instanceof RevisionConflict) throw new KmsError('KeyAlreadyExists', `key ${keyId} already exists`);
        throw backendError(err);
      }
      const entry = newEntry(stored, now);
      if (slot !== undefined) entry.slots.set(1, slot);
      this.entries.set(keyId, entry);
      this.sortedIds = null;
      return keyInfo(stored);
    });
  }

  describeKey(keyId: string): KeyInfo {
    return keyInfo(this.entry(keyId).record);
  }

  listKeys(options: ListKeysOptions = {}): ListKeysResult {
    const limit = options.limit ?? LIST_LIMIT.default;
    assertIntegerIn(limit, 'limit', 1, LIST_LIMIT.max);
    const ids = this.ids();
    const prefix = options.prefix ?? '';
    let start = 0;
    if (options.marker !== undefined && options.marker !== '') {
      const marker = Buffer.from(options.marker);
      start = lowerBound(ids, (id) => Buffer.compare(Buffer.from(id), marker) > 0);
    } else if (prefix !== '') {
      const p = Buffer.from(prefix);
      start = lowerBound(ids, (id) => Buffer.compare(Buffer.from(id), p) >= 0);
    }
    const keys: KeyInfo[] = [];
    const visible = options.filter ?? (() => true);
    let i = start;
    for (; i < ids.length && keys.length < limit; i++) {
      const id = ids[i] as string;
      if (!id.startsWith(prefix)) {
        if (id > prefix) break;
        continue;
      }
      if (visible(id)) keys.push(keyInfo((this.entries.get(id) as Entry).record));
    }
    let more = false;
    for (let j = i; j < ids.length && (ids[j] as string).startsWith(prefix); j++) {
      if (visible(ids[j] as string)) {
        more = true;
        break;
      }
    }
    const last = keys[keys.length - 1];
    return more && last !== undefined ? { keys, nextMarker: last.keyId, truncated: true } : { keys, truncated: false };
  }

  enableKey(keyId: string): Promise<KeyInfo> {
    return this.transition(keyId, (record) => {
      if (record.state === 'PendingDeletion') {
        throw new KmsError('KeyPendingDeletion', `key ${keyId} is pending deletion; cancel the deletion first`);
      }
      record.state = 'Enabled';
    });
  }

  disableKey(keyId: string): Promise<KeyInfo> {
    return this.transition(keyId, (record) => {
      if (record.state === 'PendingDeletion') {
        throw new KmsError('KeyPendingDeletion', `key ${keyId} is pending deletion`);
      }
      record.state = 'Disabled';
    });
  }

  scheduleKeyDeletion(keyId: string, pendingDays: number): Promise<KeyInfo> {
    assertIntegerIn(pendingDays, 'pending_days', PENDING_DAYS.min, PENDING_DAYS.max);
    return this.transition(keyId, (record) => {
      if (record.state === 'PendingDeletion') {
        throw new KmsError('KeyPendingDeletion', `key ${keyId} is already pending deletion`);
      }
      record.state = 'PendingDeletion';
      record.deletionDate = this.now() + pendingDays * DAY_MS;
    });
  }

  /** A cancelled deletion leaves the key Disabled: an operator enables it on purpose. */
  cancelKeyDeletion(keyId: string): Promise<KeyInfo> {
    return this.transition(keyId, (record) => {
      if (record.state !== 'PendingDeletion') {
        throw new KmsError('InvalidRequest', `key ${keyId} is not pending deletion (state ${record.state})`);
      }
      record.state = 'Disabled';
      delete record.deletionDate;
    });
  }

  updateKeyDescription(keyId: string, description: string): Promise<KeyInfo> {
    assertDescription(description);
    return this.transition(keyId, (record) => {
      record.description = description;
    });
  }

  /** Adds or overwrites tags; the merged set must stay within the tag limits. */
  tagKey(keyId: string, tags: Record<string, string>): Promise<KeyInfo> {
    const added = checkTags(tags);
    return this.transition(keyId, (record) => {
      const merged = emptyTags();
      for (const k of Object.keys(record.tags)) merged[k] = record.tags[k] as string;
      for (const k of Object.keys(added)) merged[k] = added[k] as string;
      record.tags = checkTags(merged);
    });
  }

  /** Removes the named tags; names the key does not carry are ignored. */
  untagKey(keyId: string, tagKeys: readonly string[]): Promise<KeyInfo> {
    return this.transition(keyId, (record) => {
      const kept = emptyTags();
      for (const k of Object.keys(record.tags)) if (!tagKeys.includes(k)) kept[k] = record.tags[k] as string;
      record.tags = kept;
    });
  }

  /** Wipes every unwrapped version (the next use unwraps again); returns how many were wiped. */
  clearCache(): number {
    let wiped = 0;
    for (const entry of this.entries.values()) {
      wiped += entry.slots.size;
      wipeSlots(entry);
    }
    return wiped;
  }

  rotateKey(keyId: string): Promise<KeyInfo> {
    assertKeyId(keyId);
    return this.serialized(keyId, async () => {
      const entry = this.entry(keyId);
      this.assertUsable(entry);
      return keyInfo(await this.rotateLocked(entry));
    });
  }

  // ---- data operations ------------------------------------------------------------------------

  encrypt(keyId: string, plaintext: Uint8Array, context?: EncryptionContext): Maybe<SealResult> {
    assertPlaintext(plaintext);
    const aad = canonicalContext(context);
    const entry = this.usableEntry(keyId);
    const version = entry.record.currentVersion;
    if (this.tokenKeys !== undefined && this.isTokenVersion(entry, version)) return this.tokenSeal(entry, plaintext, aad);
    const slot = entry.slots.get(version);
    if (slot === undefined) return this.loadSlot(entry, version).then(() => this.encrypt(keyId, plaintext, context));
    const header = this.header(entry);
    const out = Buffer.allocUnsafe(header.length + XAES_NONCE_BYTES + plaintext.length + TAG_BYTES);
    header.copy(out, 0);
    native.xaesSealEnvelope(slot, out, header.length, plaintext, aad);
    entry.lastUsed = this.clock;
    return { ciphertext: out, keyId, keyVersion: version };
  }

  decrypt(ciphertext: Uint8Array, context?: EncryptionContext): Maybe<OpenResult> {
    const env = parseEnvelope(ciphertext);
    // A key id no key can have is a malformed envelope, not a bad argument.
    if (env === null || !KEY_ID_PATTERN.test(env.keyId)) throw new KmsError('InvalidCiphertext', INVALID_CIPHERTEXT);
    const remote = this.remoteMiss(env.keyId, env.keyVersion);
    if (remote !== null) return remote.then(() => this.decryptKnown(ciphertext, env, context));
    return this.decryptKnown(ciphertext, env, context);
  }

  private decryptKnown(
    ciphertext: Uint8Array, env: NonNullable<ReturnType<typeof parseEnvelope>>, context?: EncryptionContext,
  ): Maybe<OpenResult> {
    const aad = canonicalContext(context);
    const entry = this.usableEntry(env.keyId);
    if (env.algorithm === ALG_AES_256_GCM && this.tokenKeys !== undefined && this.isTokenVersion(entry, env.keyVersion)) {
      return this.tokenOpen(entry, env, ciphertext, aad);
    }
    if (env.algorithm !== ALG_XAES_256_GCM || !hasVersion(entry.record, env.keyVersion)) {
      throw new KmsError('InvalidCiphertext', INVALID_CIPHERTEXT);
    }
    if (this.tokenKeys !== undefined && this.isTokenVersion(entry, env.keyVersion)) {
      throw new KmsError('InvalidCiphertext', INVALID_CIPHERTEXT);
    }
    const slot = entry.slots.get(env.keyVersion);
    if (slot === undefined) return this.loadSlot(entry, env.keyVersion).then(() => this.decrypt(ciphertext, context));
    const plaintext = Buffer.allocUnsafe(env.plaintextLength);
    if (!native.xaesOpenEnvelope(slot, plaintext, ciphertext, env.headerLength, aad)) {
      throw new KmsError('InvalidCiphertext', INVALID_CIPHERTEXT);
    }
    entry.lastUsed = this.clock;
    return { plaintext, keyId: env.keyId, keyVersion: env.keyVersion };
  }

  generateDataKey(keyId: string, options: DataKeyOptions = {}): Maybe<DataKeyResult> {
    const bytes = options.bytes ?? DATA_KEY_BYTES.default;
    assertIntegerIn(bytes, 'bytes', DATA_KEY_BYTES.min, DATA_KEY_BYTES.max);
    const aad = canonicalContext(options.context);
    const entry = this.usableEntry(keyId);
    const version = entry.record.currentVersion;
    if (this.tokenKeys !== undefined && this.isTokenVersion(entry, version)) return this.tokenDataKey(entry, bytes, aad, options);
    const slot = entry.slots.get(version);
    if (slot === undefined) return this.loadSlot(entry, version).then(() => this.generateDataKey(keyId, options));
    const header = this.header(entry);
    const plaintext = Buffer.allocUnsafe(bytes);
    const ciphertext = Buffer.allocUnsafe(header.length + XAES_NONCE_BYTES + bytes + TAG_BYTES);
    header.copy(ciphertext, 0);
    native.generateDataKeys(slot, plaintext, ciphertext, header.length, bytes, 1, aad);
    entry.lastUsed = this.clock;
    if (options.withoutPlaintext === true) {
      plaintext.fill(0);
      return { ciphertext, keyId, keyVersion: version };
    }
    return { plaintext, ciphertext, keyId, keyVersion: version };
  }

  generateDataKeyBatch(keyId: string, count: number, options: DataKeyOptions = {}): Maybe<DataKeyBatchResult> {
    assertIntegerIn(count, 'count', BATCH_COUNT.min, BATCH_COUNT.max);
    const bytes = options.bytes ?? DATA_KEY_BYTES.default;
    assertIntegerIn(bytes, 'bytes', DATA_KEY_BYTES.min, DATA_KEY_BYTES.max);
    const aad = canonicalContext(options.context);
    const entry = this.usableEntry(keyId);
    const version = entry.record.currentVersion;
    if (this.tokenKeys !== undefined && this.isTokenVersion(entry, version)) return this.tokenDataKeyBatch(entry, count, bytes, aad);
    const slot = entry.slots.get(version);
    if (slot === undefined) return this.loadSlot(entry, version).then(() => this.generateDataKeyBatch(keyId, count, options));
    const header = this.header(entry);
    const record = header.length + XAES_NONCE_BYTES + bytes + TAG_BYTES;
    const plaintexts = Buffer.allocUnsafe(bytes * count);
    const envelopes = Buffer.allocUnsafe(record * count);
    header.copy(envelopes, 0);
    native.generateDataKeys(slot, plaintexts, envelopes, header.length, bytes, count, aad);
    entry.lastUsed = this.clock;
    const keys = new Array<{ plaintext: Buffer; ciphertext: Buffer }>(count);
    for (let i = 0; i < count; i++) {
      keys[i] = {
        plaintext: plaintexts.subarray(i * bytes, (i + 1) * bytes),
        ciphertext: envelopes.subarray(i * record, (i + 1) * record),
      };
    }
    return { keyId, keyVersion: version, keys };
  }

  /** Opens under the blob's key and seals under the destination's current version; the plaintext never leaves. */
  reEncrypt(ciphertext: Uint8Array, context?: EncryptionContext, destinationKeyId?: string): Maybe<SealResult> {
    const destination = destinationKeyId;
    if (destination !== undefined) assertKeyId(destination, 'destination_key_id');
    const opened = this.decrypt(ciphertext, context);
    const seal = (result: OpenResult): Maybe<SealResult> => {
      try {
        const sealed = this.encrypt(destination ?? result.keyId, result.plaintext, context);
        if (sealed instanceof Promise) return sealed.finally(() => result.plaintext.fill(0));
        result.plaintext.fill(0);
        return sealed;
      } catch (err) {
        result.plaintext.fill(0);
        throw err;
      }
    };
    return opened instanceof Promise ? opened.then(seal) : seal(opened);
  }

  /**
   * A record changed by another daemon on a shared keystore: adopt it when it is newer. Versions
   * already unwrapped stay cached (their material never changes); a removed key is wiped.
   */
  applyRemote(keyId: string, record: KeyRecord | undefined): void {
    const entry = this.entries.get(keyId);
    if (record === undefined) {
      if (entry !== undefined) {
        this.dropEntry(keyId);
        this.options.logger?.info({ key_id: keyId }, 'key removed by another host');
      }
      return;
    }
    if (entry === undefined) {
      this.entries.set(keyId, newEntry(this.admit(record), this.clock));
      this.sortedIds = null;
      return;
    }
    if (record.revision > entry.record.revision) this.replaceRecord(entry, record);
  }

  /**
   * On a shared keystore, a ciphertext may name a key or version that another host made after this
   * host's last sync: read that one record now instead of failing. A read that did not find what was
   * asked for is not repeated for the same key within a second (no amplification of bogus input).
   */
  private remoteMiss(keyId: string, version: number): Promise<void> | null {
    if (this.options.keystore.watch === undefined || this.closed) return null;
    const known = () => {
      const entry = this.entries.get(keyId);
      return entry !== undefined && hasVersion(entry.record, version);
    };
    if (known()) return null;
    const seen = this.remoteFetches.get(keyId);
    if (seen?.pending != null) return seen.pending;
    if (seen !== undefined && this.clock - seen.at < REMOTE_FETCH_INTERVAL_MS) return null;
    if (this.remoteBudget.second !== this.clock) this.remoteBudget = { second: this.clock, used: 0 };
    if (this.remoteBudget.used >= REMOTE_FETCHES_PER_SECOND) return null; // the usual answer follows
    this.remoteBudget.used += 1;
    if (this.remoteFetches.size >= 4096) this.remoteFetches.clear();
    const fetch: { at: number; pending: Promise<void> | null } = { at: this.clock, pending: null };
    this.remoteFetches.set(keyId, fetch);
    fetch.pending = this.options.keystore.get(keyId).then(
      (record) => {
        if (record !== undefined) this.applyRemote(keyId, record);
      },
      () => undefined, // the usual answer (KeyNotFound, InvalidCiphertext) follows
    ).finally(() => {
      fetch.pending = null;
      if (known() && this.remoteFetches.get(keyId) === fetch) this.remoteFetches.delete(keyId);
    });
    return fetch.pending;
  }

  // ---- health ---------------------------------------------------------------------------------

  async health(): Promise<{ healthy: boolean; detail?: string }> {
    const [root, store] = await Promise.all([
      this.options.root.health(),
      this.options.keystore.health?.() ?? Promise.resolve<{ healthy: boolean; detail?: string }>({ healthy: true }),
    ]);
    this.rootHealthy = root.healthy;
    if (!root.healthy) return { healthy: false, detail: `root: ${root.detail ?? 'unavailable'}` };
    if (!store.healthy) return { healthy: false, detail: `keystore: ${store.detail ?? 'unavailable'}` };
    return { healthy: true };
  }

  describe(): Record<string, unknown> {
    return {
      root: this.options.root.describe(),
      keystore: this.options.keystore.describe(),
      key_count: this.entries.size,
      unwrapped_versions: this.unwrappedVersions,
      locked_bytes: native.stats().lockedBytes,
    };
  }

  // ---- internals ------------------------------------------------------------------------------

  private entry(keyId: string): Entry {
    const entry = this.entries.get(keyId);
    if (entry === undefined) {
      assertKeyId(keyId);
      throw new KmsError('KeyNotFound', `key ${keyId} does not exist`);
    }
    return entry;
  }

  private usableEntry(keyId: string): Entry {
    const entry = this.entry(keyId);
    if (entry.record.state !== 'Enabled') this.assertUsable(entry);
    return entry;
  }

  private assertUsable(entry: Entry): void {
    const { state, keyId } = entry.record;
    if (state === 'Disabled') throw new KmsError('KeyDisabled', `key ${keyId} is disabled`);
    if (state === 'PendingDeletion') throw new KmsError('KeyPendingDeletion', `key ${keyId} is pending deletion`);
  }

  private header(entry: Entry): Buffer {
    if (entry.header === null) {
      const { keyId, currentVersion } = entry.record;
      // On-token versions seal with AES-256-GCM on the token (algorithm 0x02); everything else XAES.
      const algorithm = this.tokenKeys !== undefined && this.isTokenVersion(entry, currentVersion) ? ALG_AES_256_GCM : ALG_XAES_256_GCM;
      entry.header = encodeHeader(algorithm, keyId, currentVersion);
    }
    return entry.header;
  }

  private ids(): string[] {
    if (this.sortedIds === null) {
      this.sortedIds = [...this.entries.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    }
    return this.sortedIds;
  }

  /** Unwraps one version into a slot; concurrent callers share one unwrap. */
  private loadSlot(entry: Entry, version: number): Promise<SlotHandle> {
    const pending = entry.loading.get(version);
    if (pending !== undefined) return pending;
    const record = entry.record.versions.find((v) => v.version === version);
    if (record === undefined) return Promise.reject(new KmsError('InvalidCiphertext', INVALID_CIPHERTEXT));
    const { root } = this.options;
    if (record.rootRef !== root.ref) {
      return Promise.reject(new KmsError('Internal',
        `key ${entry.record.keyId} version ${version} was wrapped by root ${record.rootRef}; this daemon's root is ${root.ref}`));
    }
    const promise = root
      .unwrap(Buffer.from(record.wrappedMaterial, 'base64'), keyMaterialAad(entry.record.keyId, version))
      .then((slot) => {
        this.rootHealthy = true;
        const current = this.entries.get(entry.record.keyId);
        if (current !== entry || this.closed) {
          native.slotDestroy(slot); // the key was purged while we unwrapped
          throw new KmsError('KeyNotFound', `key ${entry.record.keyId} does not exist`);
        }
        entry.slots.set(version, slot);
        return slot;
      }, (err: unknown) => {
        if (err instanceof KmsError && err.code === 'BackendUnavailable') this.rootHealthy = false;
        throw err;
      })
      .finally(() => entry.loading.delete(version));
    entry.loading.set(version, promise);
    return promise;
  }

  private async newVersion(keyId: string, version: number, now: number): Promise<{ slot: SlotHandle | undefined; version: KeyVersionRecord }> {
    if (this.tokenKeys !== undefined) return this.newTokenVersion(this.tokenKeys, keyId, version, now);
    const slot = native.slotGenerate();
    try {
      const wrapped = await this.options.root.wrap(slot, keyMaterialAad(keyId, version));
      return {
        slot,
        version: { version, createdAt: now, wrappedMaterial: wrapped.toString('base64'), rootRef: this.options.root.ref },
      };
    } catch (err) {
      native.slotDestroy(slot);
      throw err;
    }
  }

  /** Adds version N+1 and makes it current. Caller holds the key's chain. */
  /**
   * `stillWanted` is asked again after a conflict: a scheduled rotation that another host has just
   * done must not be done a second time on top of it.
   */
  private async rotateLocked(entry: Entry, stillWanted?: (record: KeyRecord) => boolean): Promise<KeyRecord> {
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1 && stillWanted !== undefined && !stillWanted(entry.record)) return entry.record;
      const now = this.now();
      const next = entry.record.currentVersion + 1;
      const { slot, version } = await this.newVersion(entry.record.keyId, next, now);
      const updated = { ...entry.record, versions: [...entry.record.versions, version], currentVersion: next, rotatedAt: now };
      try {
        const stored = await this.options.keystore.update(updated, entry.record.revision);
        if (slot !== undefined) entry.slots.set(next, slot);
        this.replaceRecord(entry, stored);
        return stored;
      } catch (err) {
        await this.discardVersion(entry.record.keyId, next, slot);
        if (!(err instanceof RevisionConflict) || attempt >= CAS_ATTEMPTS) throw backendError(err);
        // Hosts that collided retry at different moments instead of colliding again.
        await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 20 * attempt)));
        await this.refresh(entry);
      }
    }
  }

  /** State changes: re-read on a revision conflict and apply the change again. */
  private transition(keyId: string, change: (record: KeyRecord) => void): Promise<KeyInfo> {
    assertKeyId(keyId);
    return this.serialized(keyId, async () => {
      const entry = this.entry(keyId);
      for (let attempt = 1; ; attempt++) {
        const updated = { ...entry.record, tags: Object.assign(emptyTags(), entry.record.tags) };
        change(updated);
        try {
          const stored = await this.options.keystore.update(updated, entry.record.revision);
          this.replaceRecord(entry, stored);
          return keyInfo(stored);
        } catch (err) {
          if (!(err instanceof RevisionConflict) || attempt >= CAS_ATTEMPTS) throw backendError(err);
          await this.refresh(entry);
        }
      }
    });
  }

  private async refresh(entry: Entry): Promise<void> {
    const latest = await this.options.keystore.get(entry.record.keyId);
    if (latest === undefined) {
      this.dropEntry(entry.record.keyId);
      throw new KmsError('KeyNotFound', `key ${entry.record.keyId} does not exist`);
    }
    this.replaceRecord(entry, latest);
  }

  private replaceRecord(entry: Entry, record: KeyRecord): void {
    if (record.currentVersion !== entry.record.currentVersion) entry.header = null;
    entry.record = this.admit(record);
  }

  /**
   * A record read from the keystore keeps only tags that pass the rules every way in applies: one
   * written before those rules, or by a hostile host sharing the keystore, stays usable, and the
   * dropped tags are logged (the stored record loses them at its next write).
   */
  private admit(record: KeyRecord): KeyRecord {
    const { tags, dropped } = storedTags(record.tags);
    if (dropped.length > 0) {
      this.options.logger?.warn({ key_id: record.keyId, dropped_tags: dropped }, 'key record has tags that break the tag rules; ignoring them');
    }
    return { ...record, tags };
  }

  private dropEntry(keyId: string): void {
    const entry = this.entries.get(keyId);
    if (entry === undefined) return;
    wipeSlots(entry);
    this.entries.delete(keyId);
    this.sortedIds = null;
  }

  /** Runs fn after every earlier mutation of the same key has settled. */
  private serialized<T>(keyId: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.chains.get(keyId) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.chains.set(keyId, tail);
    void tail.then(() => {
      if (this.chains.get(keyId) === tail) this.chains.delete(keyId);
    });
    return run;
  }

  /** Purges keys whose deletion date has passed and rotates keys whose period is due. */
  async maintenance(): Promise<void> {
    const now = this.now();
    for (const [keyId, entry] of [...this.entries]) {
      const { record } = entry;
      if (record.state === 'PendingDeletion' && record.deletionDate !== undefined && record.deletionDate <= now) {
        await this.serialized(keyId, async () => {
          const current = this.entries.get(keyId);
          if (current === undefined || current.record.state !== 'PendingDeletion') return;
          await this.options.keystore.remove(keyId, current.record.revision);
          this.dropEntry(keyId);
          this.options.logger?.info({ key_id: keyId }, 'key purged after its deletion window');
          await this.destroyTokenVersions(current.record);
        });
      } else if (record.state === 'Enabled' && this.tokenKeys !== undefined && this.isTokenVersion(entry, record.currentVersion) &&
        this.tokenKeys.rotationDue(keyId, record.currentVersion)) {
        await this.rotateTokenKey(keyId);
      } else if (record.state === 'Enabled' && record.rotationPeriodDays !== undefined) {
        const due = (record.rotatedAt ?? record.createdAt) + record.rotationPeriodDays * DAY_MS;
        if (due <= now) {
          await this.serialized(keyId, async () => {
            const current = this.entries.get(keyId);
            if (current === undefined || current.record.state !== 'Enabled') return;
            const before = current.record.currentVersion;
            const stored = await this.rotateLocked(current, (r) =>
              r.state === 'Enabled' && r.rotationPeriodDays !== undefined && (r.rotatedAt ?? r.createdAt) + r.rotationPeriodDays * DAY_MS <= now);
            if (stored.currentVersion !== before) {
              this.options.logger?.info({ key_id: keyId, key_version: stored.currentVersion }, 'key rotated on schedule');
            }
          });
        }
      }
    }
  }

  private async evictIdle(): Promise<void> {
    const idle = this.options.idleTtlMs;
    const offline = Math.max(idle, this.options.offlineTtlMs);
    const due = (limit: number) => [...this.entries.values()].filter((e) => e.slots.size > 0 && this.clock - e.lastUsed >= limit);
    if (this.evicting || due(idle).length === 0) return;
    this.evicting = true;
    try {
      // While the root is away, keep serving what is cached for the offline window. Ask the root now:
      // an outage that no unwrap has run into yet must not cost the cached keys.
      if (offline > idle) {
        try {
          const health = await this.options.root.health();
          this.rootHealthy = health.healthy;
        } catch {
          this.rootHealthy = false;
        }
      }
      if (this.closed) return;
      for (const entry of due(this.rootHealthy ? idle : offline)) wipeSlots(entry);
    } finally {
      this.evicting = false;
    }
  }

  /** Refuses to start when existing keys do not open under the configured root. */
  private async verifyRoot(): Promise<void> {
    const first = this.entries.values().next();
    if (first.done === true) return;
    const entry = first.value;
    try {
      const version = entry.record.currentVersion;
      if (this.tokenKeys !== undefined && this.isTokenVersion(entry, version)) {
        await this.tokenKeys.verify(entry.record.keyId, version);
        return;
      }
      await this.loadSlot(entry, entry.record.currentVersion);
    } catch (err) {
      throw new Error(`the configured root does not open existing key ${entry.record.keyId}: ${errorText(err)}`);
    }
  }
  // ==== pkcs11 on-token mode ====================================================================
  // Master-key versions that are objects in a token (root.tokenKeys): no wrapped material, no
  // slots; every seal is AES-256-GCM (envelope algorithm 0x02) run on the token through the
  // root's session pool. Data keys come from crypto.randomBytes (they go to the client anyway).

  private get tokenKeys(): TokenKeys | undefined {
    return this.options.root.tokenKeys;
  }

  /** A version made on the token: its record carries no wrapped material. */
  private isTokenVersion(entry: Entry, version: number): boolean {
    const versions = entry.record.versions;
    const direct = versions[version - 1];
    const record = direct !== undefined && direct.version === version ? direct : versions.find((v) => v.version === version);
    return record !== undefined && record.wrappedMaterial === '';
  }

  private async newTokenVersion(tokenKeys: TokenKeys, keyId: string, version: number, now: number) {
    const rootRef = await tokenKeys.create(keyId, version);
    return { slot: undefined, version: { version, createdAt: now, wrappedMaterial: '', rootRef } };
  }

  /** Undoes newVersion when its record could not be stored. */
  private async discardVersion(keyId: string, version: number, slot: SlotHandle | undefined): Promise<void> {
    if (slot !== undefined) {
      native.slotDestroy(slot);
      return;
    }
    await this.tokenKeys?.destroy(keyId, version).catch((err: unknown) => {
      this.options.logger?.error({ key_id: keyId, key_version: version, err: errorText(err) }, 'token object of an unstored version left behind');
    });
  }

  /**
   * The current version and its header, read together in one tick (a rotation between the two
   * would seal under one version and label the envelope with the other). A version whose seal
   * budget is spent waits for its automatic rotation first.
   */
  private tokenTarget(entry: Entry): Maybe<{ version: number; header: Buffer }> {
    const tokenKeys = this.tokenKeys as TokenKeys;
    const { keyId } = entry.record;
    if (!tokenKeys.rotationDue(keyId, entry.record.currentVersion)) {
      return { version: entry.record.currentVersion, header: this.header(entry) };
    }
    return this.rotateTokenKey(keyId).then(() => {
      if (this.entries.get(keyId) !== entry) throw new KmsError('KeyNotFound', `key ${keyId} does not exist`);
      this.assertUsable(entry);
      return { version: entry.record.currentVersion, header: this.header(entry) };
    });
  }

  private async tokenSeal(entry: Entry, plaintext: Uint8Array, aad: Buffer): Promise<SealResult> {
    const tokenKeys = this.tokenKeys as TokenKeys;
    const { keyId } = entry.record;
    const target = this.tokenTarget(entry);
    const { version, header } = target instanceof Promise ? await target : target;
    const ciphertext = await tokenKeys.seal(keyId, version, header, plaintext, aad);
    entry.lastUsed = this.clock;
    this.checkSealBudget(entry, version);
    return { ciphertext, keyId, keyVersion: version };
  }

  private async tokenOpen(entry: Entry, env: EnvelopeHeader, ciphertext: Uint8Array, aad: Buffer): Promise<OpenResult> {
    const tokenKeys = this.tokenKeys as TokenKeys;
    const plaintext = await tokenKeys.open(env.keyId, env.keyVersion, ciphertext, env.headerLength, aad);
    if (plaintext === null) throw new KmsError('InvalidCiphertext', INVALID_CIPHERTEXT);
    entry.lastUsed = this.clock;
    return { plaintext, keyId: env.keyId, keyVersion: env.keyVersion };
  }

  private async tokenDataKey(entry: Entry, bytes: number, aad: Buffer, options: DataKeyOptions): Promise<DataKeyResult> {
    const plaintext = randomBytes(bytes);
    try {
      const { ciphertext, keyId, keyVersion } = await this.tokenSeal(entry, plaintext, aad);
      if (options.withoutPlaintext === true) {
        plaintext.fill(0);
        return { ciphertext, keyId, keyVersion };
      }
      return { plaintext, ciphertext, keyId, keyVersion };
    } catch (err) {
      plaintext.fill(0);
      throw err;
    }
  }

  /** All or nothing: the seals run concurrently over the token's session pool, under one version. */
  private async tokenDataKeyBatch(entry: Entry, count: number, bytes: number, aad: Buffer): Promise<DataKeyBatchResult> {
    const tokenKeys = this.tokenKeys as TokenKeys;
    const { keyId } = entry.record;
    const plaintexts = randomBytes(bytes * count);
    try {
      const target = this.tokenTarget(entry);
      const { version, header } = target instanceof Promise ? await target : target;
      const sealed = await Promise.all(Array.from({ length: count }, (_, i) =>
        tokenKeys.seal(keyId, version, header, plaintexts.subarray(i * bytes, (i + 1) * bytes), aad)));
      entry.lastUsed = this.clock;
      this.checkSealBudget(entry, version);
      return {
        keyId, keyVersion: version,
        keys: sealed.map((ciphertext, i) => ({ plaintext: plaintexts.subarray(i * bytes, (i + 1) * bytes), ciphertext })),
      };
    } catch (err) {
      plaintexts.fill(0);
      throw err;
    }
  }

  /** Random 96-bit nonces: a version is rotated once its seal count reaches the root's limit. */
  private checkSealBudget(entry: Entry, version: number): void {
    const tokenKeys = this.tokenKeys as TokenKeys;
    if (version === entry.record.currentVersion && tokenKeys.rotationDue(entry.record.keyId, version)) {
      void this.rotateTokenKey(entry.record.keyId);
    }
  }

  /**
   * One automatic rotation per key at a time; callers join it. Never rejects: when it fails (the
   * token is away), seals go on under the old version (the hard bound in the root still holds)
   * and the next seal or maintenance run tries again.
   */
  private rotateTokenKey(keyId: string): Promise<void> {
    const pending = this.tokenRotations.get(keyId);
    if (pending !== undefined) return pending;
    if (this.closed) return Promise.resolve();
    const run = this.serialized(keyId, async () => {
      const current = this.entries.get(keyId);
      const tokenKeys = this.tokenKeys;
      if (current === undefined || tokenKeys === undefined || current.record.state !== 'Enabled') return;
      if (!tokenKeys.rotationDue(keyId, current.record.currentVersion)) return;
      const stored = await this.rotateLocked(current, (r) => r.state === 'Enabled' && tokenKeys.rotationDue(keyId, r.currentVersion));
      this.options.logger?.info({ key_id: keyId, key_version: stored.currentVersion }, 'on-token key rotated: seal budget of the previous version reached');
    }).catch((err: unknown) => {
      this.options.logger?.error({ key_id: keyId, err: errorText(err) }, 'automatic rotation of an on-token key failed; retrying at the next seal or maintenance');
    }).finally(() => this.tokenRotations.delete(keyId));
    this.tokenRotations.set(keyId, run);
    return run;
  }

  /** Purge: the token objects of every version go with the record. */
  private async destroyTokenVersions(record: KeyRecord): Promise<void> {
    const tokenKeys = this.tokenKeys;
    if (tokenKeys === undefined) return;
    for (const v of record.versions) {
      if (v.wrappedMaterial !== '') continue;
      try {
        await tokenKeys.destroy(record.keyId, v.version);
      } catch (err) {
        this.options.logger?.error({ key_id: record.keyId, key_version: v.version, err: errorText(err) }, 'token object of a purged key could not be destroyed');
      }
    }
  }
  // ==== end of pkcs11 on-token mode ==============================================================
}

function newEntry(record: KeyRecord, now: number): Entry {
  return { record, slots: new Map(), loading: new Map(), header: null, lastUsed: now };
}

function wipeSlots(entry: Entry): void {
  for (const slot of entry.slots.values()) native.slotDestroy(slot);
  entry.slots.clear();
}

function hasVersion(record: KeyRecord, version: number): boolean {
  const v = record.versions[version - 1];
  return v !== undefined && v.version === version ? true : record.versions.some((x) => x.version === version);
}

export function keyInfo(record: KeyRecord): KeyInfo {
  const info: KeyInfo = {
    keyId: record.keyId,
    state: record.state,
    currentVersion: record.currentVersion,
    versions: record.versions.length,
    // On-token versions carry no wrapped material: they seal with AES-256-GCM on the token.
    algorithm: record.versions.find((v) => v.version === record.currentVersion)?.wrappedMaterial === '' ? 'AES-256-GCM' : 'XAES-256-GCM',
    origin: record.origin,
    createdAt: record.createdAt,
    description: record.description,
    tags: Object.assign(emptyTags(), record.tags),
  };
  if (record.rotatedAt !== undefined) info.rotatedAt = record.rotatedAt;
  if (record.deletionDate !== undefined) info.deletionDate = record.deletionDate;
  if (record.rotationPeriodDays !== undefined) info.rotationPeriodDays = record.rotationPeriodDays;
  return info;
}

function lowerBound(ids: string[], pred: (id: string) => boolean): number {
  let lo = 0;
  let hi = ids.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (pred(ids[mid] as string)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Storage failures surface as BackendUnavailable; protocol errors pass through. */
function backendError(err: unknown): KmsError {
  if (err instanceof KmsError) return err;
  return new KmsError('BackendUnavailable', `keystore write failed: ${errorText(err)}`);
}
