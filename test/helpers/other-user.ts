// Tests that run a process as another uid (setpriv, 65534) need what that process touches to be
// reachable by "others": a checkout or TMPDIR under a 0700 directory (a clone in /root) is not.
// sharedTempDir() finds a scratch place that is; othersCannotReach() says why the checkout is not,
// for a skip that names the reason.
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { CLIENT_JS, DAEMON_JS, distRoot } from './daemon.js';

const S_IXOTH = 0o001;
const S_IROTH = 0o004;

/** The first directory from / down to `dir` (inclusive) that others cannot traverse, said as a reason. */
function untraversable(dir: string): string | undefined {
  const chain: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    chain.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const d of chain) {
    const st = statSync(d);
    if ((st.mode & S_IXOTH) === 0) return `${d} (mode ${(st.mode & 0o777).toString(8)}) is not traversable by other users`;
  }
  return undefined;
}

/** Why a process of another uid (no shared groups) cannot read `path`, or undefined when it can. */
function blocked(path: string): string | undefined {
  const why = untraversable(dirname(resolve(path)));
  if (why !== undefined) return why;
  const st = statSync(path);
  if ((st.mode & S_IROTH) === 0) return `${resolve(path)} is not readable by other users`;
  return undefined;
}

/** Why uid 65534 cannot run node with this checkout's daemon and client, or undefined. */
export function othersCannotReach(paths: string[] = [process.execPath, DAEMON_JS, CLIENT_JS, join(distRoot, 'node_modules', 'msgpackr', 'package.json')]): string | undefined {
  for (const p of paths) {
    const why = blocked(p);
    if (why !== undefined) return `a process of another uid cannot reach the checkout: ${why} (clone it somewhere others can read to run this test)`;
  }
  return undefined;
}

function traversable(dir: string): boolean {
  try {
    return untraversable(dir) === undefined;
  } catch {
    return false;
  }
}

const made: string[] = [];
process.on('exit', () => {
  for (const d of made) rmSync(d, { recursive: true, force: true });
});

/**
 * A fresh 0755 directory that other users can reach: under TMPDIR when every directory above it is
 * traversable by others, else under /tmp, /var/tmp or /dev/shm. Removed by cleanupSharedDirs() or at exit.
 */
export function sharedTempDir(prefix = 'kms-shared-'): string {
  const base = [tmpdir(), '/tmp', '/var/tmp', '/dev/shm'].find((d) => traversable(d));
  if (base === undefined) throw new Error('no temporary directory here is reachable by other users (TMPDIR, /tmp, /var/tmp, /dev/shm)');
  const dir = mkdtempSync(join(base, prefix));
  chmodSync(dir, 0o755);
  made.push(dir);
  return dir;
}

export function cleanupSharedDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}
