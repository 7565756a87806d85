// Who holds <state_dir>/lock. The flock says *that* a daemon runs; the PID written into the file
// after taking it says *which* one, so a refused second start can name it (the operator's next
// question). The PID is a hint for people, never used to decide anything: the flock alone decides.
import { ftruncateSync, readSync, writeSync } from 'node:fs';

/** After the flock is ours: replace the file's content with our PID. Best effort. */
export function recordLockHolder(fd: number, pid: number = process.pid): void {
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
export function holderText(fd: number): string {
  const pid = readLockHolder(fd);
  return pid !== undefined ? ` (pid ${pid})` : '';
}
