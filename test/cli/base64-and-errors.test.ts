// What a user hits first: base64 in and out of the data commands, a daemon that is not running, and
// files that cannot be read, each said for what it is (the real CLI against a real daemon).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon, type CliResult, type DaemonHandle } from '../helpers/daemon.js';

let daemon: DaemonHandle;
let dir: string;

beforeAll(async () => {
  daemon = await startDaemon();
  dir = makeTempDir('kms-cli-b64-');
  expect((await cli(['key', 'create', 'b64'])).code).toBe(0);
});

afterAll(async () => {
  if (daemon?.running) expect(await daemon.stop()).toBe(0);
  await killAllDaemons();
  cleanupTempDirs();
});

function cli(args: string[], input?: Buffer | string): Promise<CliResult> {
  return runCli(args, { socket: daemon.socketPath, cwd: dir, ...(input !== undefined ? { input } : {}) });
}

describe('base64', () => {
  it('datakey --ciphertext-out says it wrote raw bytes, and how to decrypt them', async () => {
    const r = await cli(['datakey', 'b64', '--context', 'bucket=a', '--ciphertext-out', 'dk.bin']);
    expect(r.code, r.stderr).toBe(0);
    const text = r.stdout.toString();
    expect(text).not.toContain('ciphertext (base64)');
    expect(text).toMatch(/ciphertext:\s+written to dk\.bin as raw bytes, \d+ \(decrypt: rustfs-kms decrypt --context bucket=a < dk\.bin\)/);
    expect(readFileSync(join(dir, 'dk.bin'))[0]).toBe(0x01);
  });

  it('datakey --ciphertext-out --base64 writes base64 text that decrypt --base64 opens', async () => {
    const r = await cli(['datakey', 'b64', '--ciphertext-out', 'dk.b64', '--base64']);
    expect(r.code, r.stderr).toBe(0);
    const hex = /plaintext \(hex\):\s*([0-9a-f]+)/.exec(r.stdout.toString())?.[1];
    expect(r.stdout.toString()).toContain('written to dk.b64 as base64 text (decrypt: rustfs-kms decrypt --base64 < dk.b64)');
    const b64 = readFileSync(join(dir, 'dk.b64'), 'utf8');
    expect(b64).toMatch(/^[A-Za-z0-9+/]+=*\n$/);
    const opened = await cli(['decrypt', '--base64'], b64);
    expect(opened.code, opened.stderr).toBe(0);
    expect(opened.stdout.toString('hex')).toBe(hex);
  });

  it('decrypt without --base64 recognises base64 input and says so (exit 2), instead of "tampered with"', async () => {
    const printed = await cli(['--json', 'datakey', 'b64']);
    const { ciphertext } = JSON.parse(printed.stdout.toString()) as { ciphertext: string };
    const r = await cli(['decrypt'], `${ciphertext}\n`);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stdin is base64 text, not a raw envelope');
    expect(r.stderr).toContain('add --base64');
    expect(r.stderr).not.toContain('InvalidCiphertext');
  });

  it('encrypt --base64 writes text that decrypt --base64 opens; --base64 without --ciphertext-out is refused for datakey', async () => {
    const sealed = await cli(['encrypt', '--key', 'b64', '--base64'], 'hello');
    expect(sealed.code, sealed.stderr).toBe(0);
    expect(sealed.stdout.toString()).toMatch(/^[A-Za-z0-9+/]+=*\n$/);
    const opened = await cli(['decrypt', '--base64'], sealed.stdout);
    expect(opened.stdout.toString()).toBe('hello');
    const refused = await cli(['datakey', 'b64', '--base64']);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--base64 goes with --ciphertext-out');
  });
});

describe('a daemon that is not there', () => {
  it('no socket: DaemonNotRunning, how to start it or point elsewhere; not BackendUnavailable', async () => {
    const path = join(dir, 'nobody.sock');
    const r = await runCli(['--json', 'key', 'list'], { socket: path, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rustfs-kmsd is not running at ${path}`);
    expect(r.stderr).toContain('systemctl start rustfs-kms.socket');
    expect(r.stderr).toContain('npm start');
    expect(r.stderr).toContain('--socket PATH or RUSTFS_KMS_SOCKET');
    expect(r.stderr).not.toContain('BackendUnavailable');
    expect(JSON.parse(r.stdout.toString()).error.code).toBe('DaemonNotRunning');
  });

  it('a socket file nobody listens on (a daemon that died): said as such', async () => {
    const path = join(dir, 'stale.sock');
    // A listener killed with SIGKILL leaves its socket file behind, as a crashed daemon does.
    const killed = spawnSync(process.execPath, ['-e', "require('net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))", path]);
    expect(killed.signal).toBe('SIGKILL');
    expect(existsSync(path)).toBe(true);
    const r = await runCli(['health'], { socket: path, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rustfs-kmsd is not running at ${path} (a socket file is there, but nothing listens`);
  });
});

describe('files', () => {
  it('a missing backup file is a FileError naming the file, not Internal: ENOENT', async () => {
    const missing = join(dir, 'no-such-backup.json');
    const r = await runCli(['restore', missing, '--state-dir', join(dir, 'restore-state'), '--dry-run'], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`rustfs-kms: FileError: cannot read the backup file ${missing}: no such file or directory\n`);
  });

  it('an unwritable --ciphertext-out is a FileError', async () => {
    const r = await cli(['datakey', 'b64', '--ciphertext-out', join(dir, 'no', 'such', 'dir', 'dk.bin')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('FileError: cannot write');
    expect(r.stderr).toContain('no such file or directory');
  });

  it('a backup of a state directory that does not exist says where it looked and how to name another', async () => {
    writeFileSync(join(dir, 'placeholder'), '');
    const r = await runCli(['backup', 'b.json', '--state-dir', join(dir, 'nope')], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`state directory ${join(dir, 'nope')} (--state-dir) does not exist`);
  });
});
