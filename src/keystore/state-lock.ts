// The state directory's lock (<state_dir>/lock): one daemon, in-process manager or restore at a time
// on one state directory. The flock decides; the PID written into the file after taking it says
// *which* process holds it, so a refused second start can name it (the operator's next question).
// The PID is a hint for people, never used to decide anything.
import { closeSync, constants as fsc, fchownSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { native } from '../native/index.js';

/** Another process holds the lock; `holder` is " (pid N)" when it wrote its PID, else "". */
export class StateDirInUseError extends Error {
  constructor(readonly stateDir: string, readonly holder: string, readonly reason: string) {
    super(`state directory ${stateDir} is in use by another process${holder} (${join(stateDir, 'lock')}: ${reason})`);
    this.name = 'StateDirInUseError';
  }
}

export interface StateLockOptions {
  /** Owner to give a lock file this call creates (root restoring for the daemon's user). */
  owner?: { uid: number; gid: number };
  /** flock(LOCK_EX | LOCK_NB) on an open fd; the addon's by default. */
  lockFile?: (fd: number) => void;
}

/** Takes the lock or throws StateDirInUseError; the returned fd holds it until closed. */
export function lockStateDir(stateDir: string, options: StateLockOptions = {}): number {
  const fd = openSync(join(stateDir, 'lock'), fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  try {
    if (options.owner !== undefined) fchownSync(fd, options.owner.uid, options.owner.gid);
    (options.lockFile ?? native.lockFile)(fd);
  } catch (err) {
    const holder = holderText(fd);
    closeSync(fd);
    throw new StateDirInUseError(stateDir, holder, (err as Error).message);
  }
  recordLockHolder(fd);
  return fd;
}

/** After the flock is ours: replace the file's content with our PID. Best effort. */
function recordLockHolder(fd: number, pid: number = process.pid): void {
  try {
    ftruncateSync(fd, 0);
    writeSync(fd, `${pid}\n`, 0);
  } catch {
    // A read-only or full file system must not stop a daemon that holds the lock.
  }
}

/** The PID the holder wrote, if the file holds one (an old daemon's empty file holds none). */
export function readLockHolder(fd: number): number | undefined {
  try {
    const buf = Buffer.alloc(32);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const text = buf.subarray(0, n).toString('latin1').trim();
    if (!/^[1-9]\d{0,9}$/.test(text)) return undefined;
    return Number(text);
  } catch {
    return undefined;
  }
}

/** " (pid 1234)" or "" — for the refusal message. */
function holderText(fd: number): string {
  const pid = readLockHolder(fd);
  return pid !== undefined ? ` (pid ${pid})` : '';
}
