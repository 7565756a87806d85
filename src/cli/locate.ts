// Where the CLI looks: the daemon's socket and the state directory, found the same way (flag, then
// variable, then the production path, or the development one when only it exists), and what to
// tell the user when nothing answers there.
import { existsSync, lstatSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadConfig } from '../config/index.js';

export const PRODUCTION_SOCKET = '/run/rustfs-kms/kms.sock';
export const PRODUCTION_STATE_DIR = '/var/lib/rustfs-kms';
const DEV_DIR = '.kms';

/** A failure that is not the daemon's answer: a file, the connection, set-up. Exit status 1. */
export class CliError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'CliError';
  }
}

const set = (v: string | undefined): v is string => v !== undefined && v !== '';

export function socketPath(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string {
  if (flag !== undefined) return resolve(cwd, flag);
  if (set(env.RUSTFS_KMS_SOCKET)) return resolve(cwd, env.RUSTFS_KMS_SOCKET);
  const dev = join(cwd, DEV_DIR, 'kms.sock');
  if (!existsSync(PRODUCTION_SOCKET) && existsSync(dev)) return dev;
  return PRODUCTION_SOCKET;
}

export interface StateDirChoice {
  dir: string;
  /** How it was found, for messages. */
  source: string;
}

/**
 * --state-dir, else $RUSTFS_KMS_STATE_DIR (or LOCAL_KEY_DIR), else the config file's state_dir
 * (--config or $RUSTFS_KMS_CONFIG), else /var/lib/rustfs-kms, or ./.kms when only that exists.
 */
export function stateDir(flag: string | undefined, configFlag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): StateDirChoice {
  if (flag !== undefined) return { dir: resolve(cwd, flag), source: '--state-dir' };
  if (set(env.RUSTFS_KMS_STATE_DIR)) return { dir: resolve(cwd, env.RUSTFS_KMS_STATE_DIR), source: 'RUSTFS_KMS_STATE_DIR' };
  if (set(env.RUSTFS_KMS_LOCAL_KEY_DIR)) return { dir: resolve(cwd, env.RUSTFS_KMS_LOCAL_KEY_DIR), source: 'RUSTFS_KMS_LOCAL_KEY_DIR' };
  const configPath = configFlag ?? (set(env.RUSTFS_KMS_CONFIG) ? env.RUSTFS_KMS_CONFIG : undefined);
  if (configPath !== undefined) {
    const config = loadConfig({ configPath: resolve(cwd, configPath), env, cli: {}, cwd });
    return { dir: config.stateDir, source: `state_dir of ${resolve(cwd, configPath)}` };
  }
  const dev = join(cwd, DEV_DIR);
  if (!existsSync(PRODUCTION_STATE_DIR) && existsSync(dev)) return { dir: dev, source: `the development state directory (${PRODUCTION_STATE_DIR} does not exist)` };
  return { dir: PRODUCTION_STATE_DIR, source: 'the default' };
}

const START_HINT =
  'start it (systemctl start rustfs-kms.socket; in a checkout: npm start), or point the CLI at the right socket ' +
  '(--socket PATH or RUSTFS_KMS_SOCKET)';

/** The connect failure, said as what it means: no daemon there, a stale socket, no permission. */
export function connectFailure(path: string, err: unknown): CliError {
  const text = err instanceof Error ? err.message : String(err);
  const code = /\b(ENOENT|ECONNREFUSED|EACCES|EPERM|ENOTSOCK|ENOTDIR)\b/.exec(text)?.[1];
  let exists = false;
  let isSocket = false;
  try {
    const st = lstatSync(path);
    exists = true;
    isSocket = st.isSocket();
  } catch {
    // missing: said below
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new CliError('PermissionDenied', `cannot connect to rustfs-kmsd at ${path}: permission denied; run as root, the daemon's user, or a member of the socket's group (usermod -aG rustfs-kms $USER, then log in again)`);
  }
  if (!exists || code === 'ENOENT' || code === 'ENOTDIR') {
    return new CliError('DaemonNotRunning', `rustfs-kmsd is not running at ${path} (no socket there); ${START_HINT}`);
  }
  if (!isSocket || code === 'ENOTSOCK') return new CliError('DaemonNotRunning', `${path} is not a socket; ${START_HINT}`);
  if (code === 'ECONNREFUSED') {
    return new CliError('DaemonNotRunning', `rustfs-kmsd is not running at ${path} (a socket file is there, but nothing listens: the daemon stopped); ${START_HINT}`);
  }
  return new CliError('DaemonNotRunning', `cannot connect to rustfs-kmsd at ${path}: ${text}; ${START_HINT}`);
}

/** A file the user named could not be read or written: said as that, with the reason in words. */
export function fileFailure(what: string, path: string, err: unknown): CliError {
  const e = err as NodeJS.ErrnoException;
  const reason: Record<string, string> = {
    ENOENT: 'no such file or directory', EACCES: 'permission denied', EISDIR: 'it is a directory', ENOTDIR: 'a part of the path is not a directory',
    EEXIST: 'it already exists', EROFS: 'read-only file system', ENOSPC: 'no space left on the device',
  };
  const why = (e?.code !== undefined ? reason[e.code] : undefined) ?? e?.message ?? String(err);
  return new CliError('FileError', `cannot ${what} ${path}: ${why}`);
}
