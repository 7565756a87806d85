// SoftHSM2 tokens for the pkcs11 tests. Every token lives in its own temporary directory, selected
// through SOFTHSM2_CONF (a softhsm2.conf whose directories.tokendir points there): nothing touches
// the system token directory. Inspection goes through OpenSC's pkcs11-tool, independent of our code.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/daemon.js';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

export interface SoftToken {
  dir: string;
  tokensDir: string;
  conf: string;
  label: string;
  pin: string;
  soPin: string;
  pinFile: string;
  /** The environment that selects this token directory (pass it to every process that loads SoftHSM). */
  env: { SOFTHSM2_CONF: string };
}

export function haveSoftHsm(): boolean {
  return existsSync(SOFTHSM_MODULE) && which('softhsm2-util') && which('pkcs11-tool');
}

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function run(cmd: string, args: string[], env: Record<string, string>): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** A fresh token in a fresh directory (label, PIN and SO PIN as given). */
export function makeToken(label = 'kms-test', pin = '739251'): SoftToken {
  const dir = makeTempDir('kms-p11-');
  const tokensDir = join(dir, 'tokens');
  mkdirSync(tokensDir, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokensDir}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  const token: SoftToken = { dir, tokensDir, conf, label, pin, soPin: '82640173', pinFile, env: { SOFTHSM2_CONF: conf } };
  initToken(token);
  return token;
}

/** softhsm2-util --init-token --free: a new, empty token with the token's label and PINs. */
export function initToken(token: SoftToken): void {
  const r = run('softhsm2-util', ['--init-token', '--free', '--label', token.label, '--pin', token.pin, '--so-pin', token.soPin], token.env);
  if (r.code !== 0) throw new Error(`softhsm2-util --init-token failed: ${r.stderr}${r.stdout}`);
}

export function deleteToken(token: SoftToken): void {
  const r = run('softhsm2-util', ['--delete-token', '--token', token.label], token.env);
  if (r.code !== 0) throw new Error(`softhsm2-util --delete-token failed: ${r.stderr}${r.stdout}`);
}

/** A copy of the token directory (SoftHSM's backup: the files themselves). */
export function backupToken(token: SoftToken): string {
  const backup = join(token.dir, `tokens-backup-${Date.now()}`);
  cpSync(token.tokensDir, backup, { recursive: true });
  return backup;
}

export function restoreToken(token: SoftToken, backup: string): void {
  for (const entry of readdirSync(token.tokensDir)) rmSync(join(token.tokensDir, entry), { recursive: true, force: true });
  cpSync(backup, token.tokensDir, { recursive: true });
}

export function pkcs11Tool(token: SoftToken, args: string[]): { code: number | null; stdout: string; stderr: string } {
  return run('pkcs11-tool', ['--module', SOFTHSM_MODULE, '--token-label', token.label, '--login', '--pin', token.pin, ...args], token.env);
}

export interface ListedKey {
  label: string;
  access: string;
  usage: string;
  text: string;
}

/** `pkcs11-tool --list-objects --type secrkey`, one entry per object. */
export function listSecretKeys(token: SoftToken): ListedKey[] {
  const r = pkcs11Tool(token, ['--list-objects', '--type', 'secrkey']);
  if (r.code !== 0) throw new Error(`pkcs11-tool --list-objects failed (${r.code}): ${r.stderr}`);
  return r.stdout.split(/^(?=Secret Key Object)/m).filter((b) => b.startsWith('Secret Key Object')).map((text) => ({
    label: /^\s*label:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? '',
    access: /^\s*Access:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? '',
    usage: /^\s*Usage:\s*(.*)$/m.exec(text)?.[1]?.trim() ?? '',
    text,
  }));
}

export interface ConfigOptions {
  mode: 'wrap' | 'on-token';
  keyLabel?: string;
  /** PIN from the token's pin file (default) or from this environment variable. */
  pinEnv?: string;
  module?: string;
  tokenLabel?: string;
  sessions?: number;
}

/** The root section as YAML (the harness's --state-dir and --socket cover the rest). */
export function configYaml(token: SoftToken, options: ConfigOptions): string {
  const pin = options.pinEnv !== undefined ? `pin_env: ${options.pinEnv}` : `pin_file: ${JSON.stringify(token.pinFile)}`;
  return [
    'root:',
    '  type: pkcs11',
    '  pkcs11:',
    `    module: ${JSON.stringify(options.module ?? SOFTHSM_MODULE)}`,
    `    token_label: ${JSON.stringify(options.tokenLabel ?? token.label)}`,
    `    ${pin}`,
    `    key_label: ${JSON.stringify(options.keyLabel ?? 'rustfs-kms-root')}`,
    `    mode: ${options.mode}`,
    `    sessions: ${options.sessions ?? 4}`,
    '',
  ].join('\n');
}

/**
 * The environment for `rustfs-kms init --config` with these configs: init also creates the state,
 * audit and socket directories the config implies, so they are placed in the token's temp dir
 * instead of /var/lib, /var/log and /run (the socket group it only reports).
 */
export function initEnv(token: SoftToken): Record<string, string> {
  return {
    ...token.env,
    RUSTFS_KMS_STATE_DIR: join(token.dir, 'init-state'),
    RUSTFS_KMS_AUDIT_PATH: join(token.dir, 'init-log', 'audit.log'),
    RUSTFS_KMS_SOCKET: join(token.dir, 'init-run', 'kms.sock'),
  };
}

/** Writes the config next to the token (for `rustfs-kms init --config`). */
export function writeConfig(token: SoftToken, options: ConfigOptions, name = 'config.yaml'): string {
  const path = join(token.dir, name);
  writeFileSync(path, configYaml(token, options), { mode: 0o600 });
  return path;
}
