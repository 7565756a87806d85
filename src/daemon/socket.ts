// Socket path hygiene before listening: the path must be ours to take. A symlink, a non-socket,
// a socket owned by someone else, or a live daemon behind it stops start-up with the reason; a
// stale socket (nothing answers) is replaced.
import { connect } from 'node:net';
import { chmodSync, chownSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { groupId } from '../access/identity.js';
import { assertTrustedDirectory } from '../permissions.js';

export class SocketPathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SocketPathError';
  }
}

/** Makes sure `path` can be bound: directory safe, nothing live or foreign in the way. */
export async function prepareSocketPath(path: string, createDir: boolean): Promise<void> {
  const dir = dirname(path);
  if (createDir) mkdirSync(dir, { recursive: true, mode: 0o755 });
  try {
    assertTrustedDirectory(dir, 'socket directory');
  } catch (err) {
    throw new SocketPathError((err as Error).message);
  }
  const uid = process.getuid?.() ?? 0;
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (st.isSymbolicLink()) throw new SocketPathError(`socket path ${path} is a symbolic link; refusing to use it`);
  if (!st.isSocket()) throw new SocketPathError(`socket path ${path} exists and is not a socket; refusing to replace it`);
  if (st.uid !== uid) throw new SocketPathError(`socket ${path} is owned by uid ${st.uid}, not the daemon (uid ${uid})`);
  if (await isLive(path)) throw new SocketPathError(`another daemon is already listening on ${path}`);
  unlinkSync(path); // stale: left by a daemon that died
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    const done = (live: boolean) => {
      probe.destroy();
      resolve(live);
    };
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
    probe.setTimeout(1000, () => done(true)); // something holds it but does not answer: do not steal it
  });
}

/** The configured socket group as a gid, checked before anything is created. */
export function resolveSocketGroup(group: string | undefined): number | undefined {
  if (group === undefined) return undefined;
  const gid = /^\d+$/.test(group) ? Number(group) : groupId(group);
  if (gid === undefined) throw new SocketPathError(`socket group "${group}" does not exist`);
  return gid;
}

/** Mode and group for a socket the daemon created itself (under umask 0177, so it starts 0600). */
export function applySocketPermissions(path: string, mode: number, gid: number | undefined): number {
  if (gid !== undefined) chownSync(path, -1, gid);
  chmodSync(path, mode);
  return gid ?? statSync(path).gid;
}

/** Which file a bind created, so a failed start removes that socket and nothing that replaced it. */
export interface CreatedSocket {
  path: string;
  dev: number;
  ino: number;
}

export function createdSocket(path: string): CreatedSocket {
  const st = lstatSync(path);
  return { path, dev: st.dev, ino: st.ino };
}

/** Unlinks the socket a refused start created (the server's close may already have). */
export function removeCreatedSocket(socket: CreatedSocket): void {
  try {
    const st = lstatSync(socket.path);
    if (st.isSocket() && st.dev === socket.dev && st.ino === socket.ino) unlinkSync(socket.path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
