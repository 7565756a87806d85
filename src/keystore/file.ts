// File keystore: state_dir/keys/<key_id>.json, 0600 in a 0700 directory. Every write goes
// temp → fsync → rename → fsync(dir), so a crash leaves either the old record or the new one.
import { promises as fsp, constants as fsc } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { type KeyRecord, type Keystore, RevisionConflict, cloneRecord } from './types.js';

const RECORD_SUFFIX = '.json';
// Temp files start with '.', which no key id can: a key named "x.tmp-y" is never mistaken for one.
const TEMP_PATTERN = /^\..+\.json\.tmp-[0-9a-f]{12}$/;

export class FileKeystore implements Keystore {
  readonly type = 'file' as const;
  private readonly dir: string;
  private readonly records = new Map<string, KeyRecord>();
  private sortedIds: string[] | null = null;

  constructor(stateDir: string) {
    this.dir = join(stateDir, 'keys');
  }

  async open(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fsp.chmod(this.dir, 0o700);
    for (const name of await fsp.readdir(this.dir)) {
      const path = join(this.dir, name);
      if (TEMP_PATTERN.test(name)) {
        await fsp.rm(path, { force: true }); // an interrupted write; the rename never happened
        continue;
      }
      if (!name.endsWith(RECORD_SUFFIX)) continue;
      const record = parseRecord(await fsp.readFile(path, 'utf8'), path);
      if (record.keyId + RECORD_SUFFIX !== name) {
        throw new Error(`key record ${path} holds key id "${record.keyId}"; the file name must match`);
      }
      this.records.set(record.keyId, record);
    }
    this.sortedIds = null;
  }

  async get(keyId: string): Promise<KeyRecord | undefined> {
    const record = this.records.get(keyId);
    return record === undefined ? undefined : cloneRecord(record);
  }

  async listIds(): Promise<string[]> {
    if (this.sortedIds === null) {
      this.sortedIds = [...this.records.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    }
    return this.sortedIds;
  }

  async create(record: KeyRecord): Promise<KeyRecord> {
    const existing = this.records.get(record.keyId);
    if (existing !== undefined) throw new RevisionConflict(record.keyId, 0, existing.revision);
    const stored = { ...cloneRecord(record), revision: 1 };
    await this.persist(stored);
    this.records.set(stored.keyId, stored);
    this.sortedIds = null;
    return cloneRecord(stored);
  }

  async update(record: KeyRecord, expectedRevision: number): Promise<KeyRecord> {
    const existing = this.records.get(record.keyId);
    if (existing === undefined || existing.revision !== expectedRevision) {
      throw new RevisionConflict(record.keyId, expectedRevision, existing?.revision);
    }
    const stored = { ...cloneRecord(record), revision: expectedRevision + 1 };
    await this.persist(stored);
    this.records.set(stored.keyId, stored);
    return cloneRecord(stored);
  }

  async remove(keyId: string, expectedRevision: number): Promise<void> {
    const existing = this.records.get(keyId);
    if (existing === undefined || existing.revision !== expectedRevision) {
      throw new RevisionConflict(keyId, expectedRevision, existing?.revision);
    }
    await fsp.rm(join(this.dir, keyId + RECORD_SUFFIX), { force: true });
    await fsyncDir(this.dir);
    this.records.delete(keyId);
    this.sortedIds = null;
  }

  describe(): Record<string, unknown> {
    return { type: this.type, path: this.dir };
  }

  async close(): Promise<void> {
    this.records.clear();
  }

  /** Atomic replace: the record is either the old bytes or the new bytes after any crash. */
  private async persist(record: KeyRecord): Promise<void> {
    const finalPath = join(this.dir, record.keyId + RECORD_SUFFIX);
    const tempPath = join(this.dir, `.${record.keyId}${RECORD_SUFFIX}.tmp-${randomBytes(6).toString('hex')}`);
    const handle = await fsp.open(tempPath, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    try {
      await handle.writeFile(JSON.stringify(record, null, 2) + '\n', 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fsp.rename(tempPath, finalPath);
    } catch (err) {
      await fsp.rm(tempPath, { force: true });
      throw err;
    }
    await fsyncDir(this.dir);
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function parseRecord(text: string, path: string): KeyRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`key record ${path} is not valid JSON: ${(err as Error).message}`);
  }
  const r = value as Partial<KeyRecord>;
  const ok =
    typeof r === 'object' && r !== null &&
    typeof r.keyId === 'string' && typeof r.revision === 'number' && typeof r.currentVersion === 'number' &&
    Array.isArray(r.versions) && r.versions.every((v) => typeof v.version === 'number' && typeof v.wrappedMaterial === 'string') &&
    (r.state === 'Enabled' || r.state === 'Disabled' || r.state === 'PendingDeletion');
  if (!ok) throw new Error(`key record ${path} is missing required fields (keyId, state, revision, currentVersion, versions)`);
  return value as KeyRecord;
}
