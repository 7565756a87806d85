// Key backup and restore for the file keystore (rustfs-kms backup / restore, and the admin HTTP API's
// backup routes), working on the state directory directly.
//
// A backup is the wrapped key records, as JSON with a format version and the refs of the roots that
// wrapped them. It holds no key material in the clear: every version's material is wrapped by the
// root (XAES-256-GCM, bound to the key id and version), so a backup is useless without the root key,
// which is never part of it. Keep the two apart.
//
// backup reads while a daemon runs: the keystore replaces each record file atomically (temp, fsync,
// rename), so every file read is a whole record, old or new. A key created or purged during the
// backup may be in it or not; run it again to catch up. It takes no lock, so it never stalls a daemon.
//
// restore writes, so it takes the daemon's own lock (flock on <state_dir>/lock) and refuses while a
// daemon holds it. Per record: missing on disk or older there → restored; newer on disk (higher
// currentVersion or revision) → kept and reported; never a silent overwrite of newer state.
import {
  closeSync, constants as fsc, existsSync, fchownSync, fsyncSync, lstatSync, mkdirSync, openSync,
  readFileSync, readdirSync, renameSync, rmSync, writeSync,
} from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { KeyRecord, KeyState } from '../keystore/types.js';
import { KEY_ID_PATTERN, checkTags } from '../keys/validation.js';
import { StateDirInUseError, lockStateDir } from '../keystore/state-lock.js';

export const BACKUP_FORMAT = 'rustfs-kms-key-backup';
export const BACKUP_VERSION = 1;

const RECORD_SUFFIX = '.json';
const TEMP_MARKER = '.tmp-';
const STATES: readonly KeyState[] = ['Enabled', 'Disabled', 'PendingDeletion'];

export class BackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

export interface KeyBackup {
  format: typeof BACKUP_FORMAT;
  version: typeof BACKUP_VERSION;
  /** Milliseconds since the epoch. */
  created_at: number;
  created_by: string;
  host: string;
  source: { keystore: 'file'; state_dir: string };
  /** The root that wrapped every version, when they all share one (the usual case). */
  root_ref?: string;
  /** Every distinct root ref over all versions, sorted. */
  root_refs: string[];
  /** The scrypt salt of a passphrase root (<state_dir>/root.salt), base64. Not secret, but needed. */
  root_salt?: string;
  key_count: number;
  /** SHA-256 (hex) of JSON.stringify(records): catches truncation and accidental edits. */
  records_sha256: string;
  /** The keystore's records exactly as stored (keys/<key_id>.json), sorted by key id. */
  records: KeyRecord[];
}

// ---- backup -------------------------------------------------------------------------------------

export interface BackupOptions {
  stateDir: string;
  createdBy: string;
  now?: number;
}

/** Reads every key record of the file keystore in stateDir. Safe while a daemon runs (see top). */
export function createBackup(options: BackupOptions): KeyBackup {
  const { stateDir } = options;
  const st = statDir(stateDir, 'state directory');
  if (st === undefined) throw new BackupError(`state directory ${stateDir} does not exist`);
  const keysDir = join(stateDir, 'keys');
  let names: string[];
  try {
    names = readdirSync(keysDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') names = [];
    else throw new BackupError(`cannot list ${keysDir}: ${(err as Error).message}`);
  }
  const records: KeyRecord[] = [];
  for (const name of names) {
    if (!name.endsWith(RECORD_SUFFIX) || name.includes(TEMP_MARKER)) continue;
    const path = join(keysDir, name);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // purged since readdir
      throw new BackupError(`cannot read key record ${path}: ${(err as Error).message}`);
    }
    const record = checkRecord(parseJson(text, `key record ${path}`), `key record ${path}`);
    if (record.keyId + RECORD_SUFFIX !== name) {
      throw new BackupError(`key record ${path} holds key id "${record.keyId}"; the file name must match`);
    }
    records.push(record);
  }
  records.sort((a, b) => Buffer.compare(Buffer.from(a.keyId), Buffer.from(b.keyId)));
  const refs = rootRefs(records);
  const backup: KeyBackup = {
    format: BACKUP_FORMAT,
    version: BACKUP_VERSION,
    created_at: options.now ?? Date.now(),
    created_by: options.createdBy,
    host: hostname(),
    source: { keystore: 'file', state_dir: stateDir },
    ...(refs.length === 1 ? { root_ref: refs[0] as string } : {}),
    root_refs: refs,
    key_count: records.length,
    records_sha256: recordsDigest(records),
    records,
  };
  const saltPath = join(stateDir, 'root.salt');
  if (existsSync(saltPath)) backup.root_salt = readFileSync(saltPath).toString('base64');
  return backup;
}

/** The backup as a file: 0600, written to a temp file, fsynced and renamed into place. */
export function writeBackupFile(path: string, backup: KeyBackup, overwrite: boolean): void {
  if (!overwrite && existsSync(path)) throw new BackupError(`${path} already exists; refusing to overwrite it (--force replaces it)`);
  writeFileAtomic(path, serializeBackup(backup), undefined);
}

export function serializeBackup(backup: KeyBackup): string {
  return JSON.stringify(backup, null, 2) + '\n';
}

// ---- restore ------------------------------------------------------------------------------------

export type RestoreAction = 'restored' | 'kept' | 'unchanged';

export interface RestoreItem {
  keyId: string;
  action: RestoreAction;
  reason: string;
  backup: { currentVersion: number; revision: number };
  disk?: { currentVersion: number; revision: number };
}

export interface RestoreReport {
  stateDir: string;
  dryRun: boolean;
  items: RestoreItem[];
  restored: number;
  kept: number;
  unchanged: number;
  /** Records on disk that the backup does not have; never touched. */
  onlyOnDisk: string[];
  /** What was known about the root when restoring. */
  rootCheck: string;
}

export interface RestoreOptions {
  backup: KeyBackup;
  stateDir: string;
  dryRun?: boolean;
  /** flock(LOCK_EX | LOCK_NB) on an open fd; throws when another process holds it. */
  lockFile: (fd: number) => void;
  /**
   * The ref of the root configured for stateDir (e.g. its root.key), or undefined when it cannot be
   * told (no key file, passphrase root). Records are refused when it is known and does not match.
   */
  rootRef?: () => string | undefined;
}

/** Parses and checks a backup file's text (format, version, checksum, every record). */
export function parseBackup(text: string, source: string): KeyBackup {
  const value = parseJson(text, source) as Partial<KeyBackup> | null;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new BackupError(`${source} is not a key backup (not a JSON object)`);
  if (value.format !== BACKUP_FORMAT) throw new BackupError(`${source} is not a key backup (format is ${JSON.stringify(value.format)}, expected "${BACKUP_FORMAT}")`);
  if (value.version !== BACKUP_VERSION) {
    throw new BackupError(`${source} is backup format version ${JSON.stringify(value.version)}; this rustfs-kms reads version ${BACKUP_VERSION}`);
  }
  if (!Array.isArray(value.records)) throw new BackupError(`${source}: records must be a list`);
  const records = value.records.map((r, i) => checkRestorable(r, `${source}: records[${i}]`));
  if (typeof value.records_sha256 !== 'string' || value.records_sha256 !== recordsDigest(records)) {
    throw new BackupError(`${source}: records_sha256 does not match the records; the file is truncated or was edited`);
  }
  const seen = new Set<string>();
  for (const r of records) {
    if (seen.has(r.keyId)) throw new BackupError(`${source}: key ${r.keyId} appears twice`);
    seen.add(r.keyId);
  }
  if (value.root_salt !== undefined && (typeof value.root_salt !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(value.root_salt))) {
    throw new BackupError(`${source}: root_salt must be base64`);
  }
  return { ...(value as KeyBackup), records, root_refs: rootRefs(records) };
}

export function restoreBackup(options: RestoreOptions): RestoreReport {
  const { backup, stateDir } = options;
  const dryRun = options.dryRun === true;
  let st = statDir(stateDir, 'state directory');
  if (st === undefined) {
    if (dryRun) return planOnly(backup, stateDir);
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    st = statDir(stateDir, 'state directory') as NonNullable<ReturnType<typeof statDir>>;
  }
  if ((st.mode & 0o077) !== 0) {
    throw new BackupError(`state directory ${stateDir} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}; it must be 0700 (the daemon refuses anything looser)`);
  }
  const myUid = process.getuid?.() ?? 0;
  if (st.uid !== myUid && myUid !== 0) {
    throw new BackupError(`state directory ${stateDir} belongs to uid ${st.uid}; run restore as that user or as root`);
  }
  // Files we create belong to the state directory's owner (the daemon's user), even when root runs this.
  const owner = myUid === 0 && (st.uid !== 0 || st.gid !== 0) ? { uid: st.uid, gid: st.gid } : undefined;

  let lockFd: number;
  try {
    lockFd = lockStateDir(stateDir, { lockFile: options.lockFile, ...(owner !== undefined ? { owner } : {}) });
  } catch (err) {
    if (!(err instanceof StateDirInUseError)) throw err;
    throw new BackupError(
      `state directory ${stateDir} is in use by a running rustfs-kmsd${err.holder} (${join(stateDir, 'lock')}: ${err.reason}); ` +
        'stop it first (systemctl stop rustfs-kms.service rustfs-kms.socket)',
    );
  }
  try {
    return restoreLocked(options, owner, dryRun);
  } finally {
    closeSync(lockFd);
  }
}

/**
 * What restore would do, read-only and without the lock (a running daemon holds it): the admin
 * HTTP API's dry run. Throws BackupError when the backup cannot go into stateDir at all.
 */
export function planRestore(backup: KeyBackup, stateDir: string, rootRef?: () => string | undefined): RestoreReport {
  if (statDir(stateDir, 'state directory') === undefined) return planOnly(backup, stateDir);
  return restoreLocked({ backup, stateDir, lockFile: () => undefined, ...(rootRef !== undefined ? { rootRef } : {}) }, undefined, true);
}

function restoreLocked(options: RestoreOptions, owner: Owner | undefined, dryRun: boolean): RestoreReport {
  const { backup, stateDir } = options;
  const keysDir = join(stateDir, 'keys');
  const disk = readDiskRecords(keysDir);

  // The root: a backup restored under another root would leave a daemon that refuses to start.
  const diskRefs = rootRefs([...disk.values()].flatMap((d) => (d.record !== undefined ? [d.record] : [])));
  const foreign = diskRefs.filter((r) => !backup.root_refs.includes(r));
  if (backup.root_refs.length > 0 && foreign.length > 0) {
    throw new BackupError(
      `the records already in ${keysDir} were wrapped by ${foreign.join(', ')}, the backup's by ${backup.root_refs.join(', ')}; ` +
        'a state directory holds keys of one root only — restore into a fresh state directory',
    );
  }
  let rootCheck = 'not checked (no local root key file to compare)';
  const configured = options.rootRef?.();
  if (configured !== undefined) {
    const other = backup.root_refs.filter((r) => r !== configured);
    if (other.length > 0) {
      throw new BackupError(
        `the root configured for ${stateDir} is ${configured}, but the backup's records were wrapped by ${backup.root_refs.join(', ')}; ` +
          'copy the matching root key into place (or restore into a state directory that has it) first',
      );
    }
    rootCheck = `matches ${configured}`;
  }
  const saltPath = join(stateDir, 'root.salt');
  if (backup.root_salt !== undefined && existsSync(saltPath)) {
    if (!readFileSync(saltPath).equals(Buffer.from(backup.root_salt, 'base64'))) {
      throw new BackupError(`${saltPath} differs from the backup's root_salt: the passphrase root here is not the one that wrapped these records`);
    }
  }

  const items: RestoreItem[] = [];
  const writes: Array<{ record: KeyRecord; aside?: string }> = [];
  for (const record of backup.records) {
    const b = { currentVersion: record.currentVersion, revision: record.revision };
    const found = disk.get(record.keyId);
    if (found === undefined) {
      items.push({ keyId: record.keyId, action: 'restored', reason: 'missing on disk', backup: b });
      writes.push({ record });
      continue;
    }
    if (found.record === undefined) {
      items.push({ keyId: record.keyId, action: 'restored', reason: `unreadable on disk (${found.error}); the old file is kept beside it`, backup: b });
      writes.push({ record, aside: found.path });
      continue;
    }
    const d = { currentVersion: found.record.currentVersion, revision: found.record.revision };
    if (d.currentVersion > b.currentVersion || d.revision > b.revision) {
      const why = d.currentVersion > b.currentVersion
        ? `newer on disk (current version ${d.currentVersion} > ${b.currentVersion})`
        : `newer on disk (revision ${d.revision} > ${b.revision})`;
      items.push({ keyId: record.keyId, action: 'kept', reason: why, backup: b, disk: d });
    } else if (d.currentVersion === b.currentVersion && d.revision === b.revision) {
      const same = JSON.stringify(found.record) === JSON.stringify(record);
      items.push({
        keyId: record.keyId, action: same ? 'unchanged' : 'kept', backup: b, disk: d,
        reason: same ? 'identical on disk' : 'same version and revision but different content; the disk copy is kept',
      });
    } else {
      items.push({ keyId: record.keyId, action: 'restored', reason: `older on disk (version ${d.currentVersion}, revision ${d.revision})`, backup: b, disk: d });
      writes.push({ record });
    }
  }
  const inBackup = new Set(backup.records.map((r) => r.keyId));
  const onlyOnDisk = [...disk.keys()].filter((id) => !inBackup.has(id)).sort();

  if (!dryRun) {
    if (!existsSync(keysDir)) {
      mkdirSync(keysDir, { mode: 0o700 });
      if (owner !== undefined) chownPath(keysDir, owner);
      fsyncDir(stateDir);
    }
    if (backup.root_salt !== undefined && !existsSync(saltPath)) {
      writeFileAtomic(saltPath, Buffer.from(backup.root_salt, 'base64'), owner);
    }
    for (const w of writes) {
      if (w.aside !== undefined) renameSync(w.aside, `${w.aside}.unreadable-${Date.now()}`);
      writeFileAtomic(join(keysDir, w.record.keyId + RECORD_SUFFIX), JSON.stringify(w.record, null, 2) + '\n', owner);
    }
  }
  return {
    stateDir, dryRun, items, onlyOnDisk, rootCheck,
    restored: items.filter((i) => i.action === 'restored').length,
    kept: items.filter((i) => i.action === 'kept').length,
    unchanged: items.filter((i) => i.action === 'unchanged').length,
  };
}

function planOnly(backup: KeyBackup, stateDir: string): RestoreReport {
  const items = backup.records.map((r): RestoreItem => ({
    keyId: r.keyId, action: 'restored', reason: 'missing on disk (state directory does not exist yet)',
    backup: { currentVersion: r.currentVersion, revision: r.revision },
  }));
  return { stateDir, dryRun: true, items, restored: items.length, kept: 0, unchanged: 0, onlyOnDisk: [], rootCheck: 'not checked (state directory does not exist yet)' };
}

// ---- helpers ------------------------------------------------------------------------------------

interface Owner {
  uid: number;
  gid: number;
}

interface DiskRecord {
  path: string;
  record?: KeyRecord;
  error?: string;
}

function readDiskRecords(keysDir: string): Map<string, DiskRecord> {
  const out = new Map<string, DiskRecord>();
  let names: string[];
  try {
    names = readdirSync(keysDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return out;
    throw err;
  }
  for (const name of names) {
    if (!name.endsWith(RECORD_SUFFIX) || name.includes(TEMP_MARKER)) continue;
    const keyId = name.slice(0, -RECORD_SUFFIX.length);
    const path = join(keysDir, name);
    try {
      const record = checkRecord(parseJson(readFileSync(path, 'utf8'), `key record ${path}`), `key record ${path}`);
      if (record.keyId !== keyId) throw new BackupError(`it holds key id "${record.keyId}"`);
      out.set(keyId, { path, record });
    } catch (err) {
      out.set(keyId, { path, error: (err as Error).message });
    }
  }
  return out;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new BackupError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The shape the file keystore writes and reads; anything else is refused with the field named. */
function checkRecord(value: unknown, what: string): KeyRecord {
  const r = value as Partial<KeyRecord> | null;
  const fail = (field: string, expected: string): never => {
    throw new BackupError(`${what}: ${field} must be ${expected}`);
  };
  if (typeof r !== 'object' || r === null || Array.isArray(r)) fail('the record', 'an object');
  const rec = r as Partial<KeyRecord>;
  if (typeof rec.keyId !== 'string' || !KEY_ID_PATTERN.test(rec.keyId)) fail('keyId', `a key id matching ${KEY_ID_PATTERN}`);
  if (!STATES.includes(rec.state as KeyState)) fail('state', STATES.join(' | '));
  if (typeof rec.origin !== 'string') fail('origin', 'a string');
  if (typeof rec.description !== 'string') fail('description', 'a string');
  if (typeof rec.tags !== 'object' || rec.tags === null || Array.isArray(rec.tags)) fail('tags', 'an object');
  if (!isTime(rec.createdAt)) fail('createdAt', 'milliseconds since the epoch');
  if (!isCount(rec.currentVersion)) fail('currentVersion', 'a positive integer');
  if (!isCount(rec.revision)) fail('revision', 'a positive integer');
  if (!Array.isArray(rec.versions) || rec.versions.length === 0) fail('versions', 'a non-empty list');
  (rec.versions as unknown[]).forEach((v, i) => {
    const x = v as Record<string, unknown> | null;
    if (typeof x !== 'object' || x === null) fail(`versions[${i}]`, 'an object');
    const ver = x as Record<string, unknown>;
    if (!isCount(ver.version)) fail(`versions[${i}].version`, 'a positive integer');
    if (!isTime(ver.createdAt)) fail(`versions[${i}].createdAt`, 'milliseconds since the epoch');
    if (typeof ver.wrappedMaterial !== 'string' || ver.wrappedMaterial === '') fail(`versions[${i}].wrappedMaterial`, 'a non-empty string');
    if (typeof ver.rootRef !== 'string' || ver.rootRef === '') fail(`versions[${i}].rootRef`, 'a non-empty string');
  });
  if (!(rec.versions as KeyRecord['versions']).some((v) => v.version === rec.currentVersion)) {
    fail('currentVersion', `one of the versions listed (${(rec.versions as KeyRecord['versions']).map((v) => v.version).join(', ')})`);
  }
  return value as KeyRecord;
}

/** A backup record to write: its shape, and tags by the rules every other way in applies. */
function checkRestorable(value: unknown, what: string): KeyRecord {
  const record = checkRecord(value, what);
  try {
    checkTags(record.tags);
  } catch (err) {
    throw new BackupError(`${what} (key ${record.keyId}): ${(err as Error).message}`);
  }
  return record;
}

function rootRefs(records: KeyRecord[]): string[] {
  return [...new Set(records.flatMap((r) => r.versions.map((v) => v.rootRef)))].sort();
}

function recordsDigest(records: KeyRecord[]): string {
  return createHash('sha256').update(JSON.stringify(records)).digest('hex');
}

function statDir(path: string, what: string): { mode: number; uid: number; gid: number } | undefined {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (st.isSymbolicLink()) throw new BackupError(`${what} ${path} is a symbolic link; refusing to follow it`);
  if (!st.isDirectory()) throw new BackupError(`${what} ${path} is not a directory`);
  return { mode: st.mode, uid: st.uid, gid: st.gid };
}

function chownPath(path: string, owner: Owner): void {
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    fchownSync(fd, owner.uid, owner.gid);
  } finally {
    closeSync(fd);
  }
}

/** temp (0600, exclusive) → write → fsync → rename → fsync(dir): the old file or the new one, never half. */
function writeFileAtomic(path: string, data: string | Buffer, owner: Owner | undefined): void {
  const dir = dirname(path);
  const temp = join(dir, `${basename(path)}${TEMP_MARKER}${randomBytes(6).toString('hex')}`);
  const fd = openSync(temp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      if (owner !== undefined) fchownSync(fd, owner.uid, owner.gid);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
  fsyncDir(dir);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
