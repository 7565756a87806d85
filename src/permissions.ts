// A secret file or state directory must belong to the daemon's user and be closed to group and
// others, and a directory we create names in must be closed to their writes; anything else is
// refused with the reason, never repaired silently.
import { lstatSync, statSync } from 'node:fs';

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

/**
 * A directory where the daemon creates files or sockets others must not replace: owned by the
 * daemon's user or root, and writable by neither group nor others (the sticky bit does not help:
 * it stops deletion, not someone creating the name first).
 */
export function assertTrustedDirectory(dir: string, what: string): void {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new Error(`${what} ${dir} does not exist`);
  }
  const uid = process.getuid?.() ?? 0;
  if (st.uid !== uid && st.uid !== 0) {
    throw new Error(`${what} ${dir} is owned by uid ${st.uid}, not the daemon (uid ${uid}) or root`);
  }
  if ((st.mode & 0o022) !== 0) {
    const who = (st.mode & 0o002) !== 0 ? 'others' : 'its group';
    throw new Error(`${what} ${dir} is writable by ${who} (mode ${(st.mode & 0o7777).toString(8)}); they could put their own file or socket in our place`);
  }
}
