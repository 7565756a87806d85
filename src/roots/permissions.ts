// A secret file or state directory must belong to the daemon's user and be closed to group and
// others; anything else is refused with the reason, never repaired silently.
import { lstatSync } from 'node:fs';

export function assertPrivatePath(path: string, what: string): void {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) throw new Error(`${what} ${path} is a symbolic link; refusing to follow it`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new Error(`${what} ${path} is owned by uid ${st.uid}, not the daemon's uid ${uid}`);
  }
  const loose = st.mode & 0o077;
  if (loose !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw new Error(`${what} ${path} has mode ${mode}: group or others can access it (expected ${st.isDirectory() ? '0700' : '0600'})`);
  }
}
