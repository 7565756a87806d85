// What a keystore persists: one record per master key, its wrapped versions, and a revision for
// compare-and-swap. Material inside is always wrapped by the root; a record alone opens nothing.

export type KeyState = 'Enabled' | 'Disabled' | 'PendingDeletion';
export type KeyOrigin = 'local' | 'pkcs11' | 'vault' | 'aws' | 'gcp' | 'azure';

export interface KeyVersionRecord {
  version: number;
  createdAt: number;
  /** Root-wrapped material, base64. */
  wrappedMaterial: string;
  /** Which root wrapped it (type and root identity), so a mismatched root is reported, not guessed. */
  rootRef: string;
}

export interface KeyRecord {
  keyId: string;
  state: KeyState;
  origin: KeyOrigin;
  description: string;
  tags: Record<string, string>;
  createdAt: number;
  rotatedAt?: number;
  deletionDate?: number;
  rotationPeriodDays?: number;
  currentVersion: number;
  versions: KeyVersionRecord[];
  /** Bumped by every successful write; writes name the revision they replace. */
  revision: number;
}

/** A record changed underneath a writer: re-read and decide again, never overwrite. */
export class RevisionConflict extends Error {
  constructor(readonly keyId: string, readonly expected: number, readonly actual: number | undefined) {
    super(`key record ${keyId} changed concurrently (expected revision ${expected}, found ${actual ?? 'none'})`);
    this.name = 'RevisionConflict';
  }
}

export interface Keystore {
  readonly type: 'file' | 'vault-kv';
  /** Loads what is persisted; called once before use. */
  open(): Promise<void>;
  get(keyId: string): Promise<KeyRecord | undefined>;
  /** Key ids in byte order. */
  listIds(): Promise<string[]>;
  /** Writes revision 1 of a new record; RevisionConflict when the id exists. */
  create(record: KeyRecord): Promise<KeyRecord>;
  /** Replaces revision `expectedRevision`; returns the stored record (revision + 1). */
  update(record: KeyRecord, expectedRevision: number): Promise<KeyRecord>;
  remove(keyId: string, expectedRevision: number): Promise<void>;
  describe(): Record<string, unknown>;
  /**
   * Shared keystores (Vault KV) report records another host created, changed or removed
   * (undefined = removed). The key service subscribes once after open(); file keystores, which
   * one daemon owns alone, do not implement it.
   */
  watch?(onChange: (keyId: string, record: KeyRecord | undefined) => void): void;
  /** Whether the backing store answered its last request; shared keystores only. */
  health?(): Promise<{ healthy: boolean; detail?: string }>;
  close(): Promise<void>;
}

export function cloneRecord(record: KeyRecord): KeyRecord {
  return {
    ...record,
    tags: copyTags(record.tags),
    versions: record.versions.map((v) => ({ ...v })),
  };
}

/** Tags live in null-prototype maps: a stored name such as "__proto__" stays plain data. */
export function copyTags(tags: Record<string, string>): Record<string, string> {
  return Object.assign(Object.create(null) as Record<string, string>, tags);
}
