// The rustfs-kms CLI (node dist/src/cli/main.js) against a real daemon: key lifecycle, data
// through stdin/stdout, data keys, --json, socket discovery, init, exit codes.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon, type CliResult, type DaemonHandle } from '../helpers/daemon.js';

const DAY_MS = 86_400_000;

let daemon: DaemonHandle;
let cwd: string;

beforeAll(async () => {
  daemon = await startDaemon();
  cwd = makeTempDir('kms-cli-cwd-');
});

afterAll(async () => {
  if (daemon?.running) expect(await daemon.stop()).toBe(0);
  await killAllDaemons();
  cleanupTempDirs();
});

/** The CLI against the test daemon (via --socket). */
function cli(args: string[], input?: Buffer | string): Promise<CliResult> {
  return runCli(args, { socket: daemon.socketPath, cwd, ...(input !== undefined ? { input } : {}) });
}

function ok(r: CliResult): CliResult {
  expect(r.code, `stderr: ${r.stderr}`).toBe(0);
  return r;
}

function json(r: CliResult): any {
  ok(r);
  return JSON.parse(r.stdout.toString('utf8'));
}

describe('key commands', () => {
  it('create, status, list, disable, enable, rotate, delete, cancel-delete', async () => {
    const created = json(
      await cli(['--json', 'key', 'create', 'cli-a', '--description', 'made by the CLI', '--tag', 'team=storage', '--tag', 'env=dev', '--rotation-period-days', '30']),
    );
    expect(created).toMatchObject({
      keyId: 'cli-a', state: 'Enabled', currentVersion: 1, versions: 1, algorithm: 'XAES-256-GCM', origin: 'local',
      description: 'made by the CLI', tags: { team: 'storage', env: 'dev' }, rotationPeriodDays: 30,
    });

    const human = ok(await cli(['key', 'status', 'cli-a'])).stdout.toString();
    expect(human).toMatch(/key:\s+cli-a/);
    expect(human).toMatch(/state:\s+Enabled/);
    expect(human).toMatch(/current version:\s+1/);
    expect(human).toContain('made by the CLI');
    expect(human).toContain('team=storage');
    expect(json(await cli(['key', 'status', 'cli-a', '--json']))).toEqual(created);

    ok(await cli(['key', 'create', 'cli-b']));
    const listed = json(await cli(['--json', 'key', 'list', '--prefix', 'cli-']));
    expect(listed.keys.map((k: { keyId: string }) => k.keyId)).toEqual(['cli-a', 'cli-b']);
    expect(listed.truncated).toBe(false);
    const page = json(await cli(['--json', 'key', 'list', '--prefix', 'cli-', '--limit', '1']));
    expect(page.keys.map((k: { keyId: string }) => k.keyId)).toEqual(['cli-a']);
    expect(page).toMatchObject({ truncated: true, nextMarker: 'cli-a' });
    const next = json(await cli(['--json', 'key', 'list', '--prefix', 'cli-', '--marker', 'cli-a']));
    expect(next.keys.map((k: { keyId: string }) => k.keyId)).toEqual(['cli-b']);
    const table = ok(await cli(['key', 'list', '--prefix', 'cli-'])).stdout.toString();
    expect(table.split('\n')[0]).toMatch(/^KEY\s+STATE\s+VERSION/);
    expect(table).toMatch(/cli-a\s+Enabled\s+1/);
    expect(table).toMatch(/cli-b\s+Enabled\s+1/);

    expect(json(await cli(['--json', 'key', 'disable', 'cli-a'])).state).toBe('Disabled');
    expect(json(await cli(['--json', 'key', 'enable', 'cli-a'])).state).toBe('Enabled');
    const rotated = json(await cli(['--json', 'key', 'rotate', 'cli-a']));
    expect(rotated.currentVersion).toBe(2);
    expect(rotated.versions).toBe(2);
    expect(typeof rotated.rotatedAt).toBe('number');

    const before = Date.now();
    const deleting = json(await cli(['--json', 'key', 'delete', 'cli-a', '--pending-days', '7']));
    expect(deleting.state).toBe('PendingDeletion');
    expect(deleting.deletionDate).toBeGreaterThanOrEqual(before + 7 * DAY_MS - 5000);
    expect(deleting.deletionDate).toBeLessThanOrEqual(Date.now() + 7 * DAY_MS + 5000);
    const cancelled = json(await cli(['--json', 'key', 'cancel-delete', 'cli-a']));
    expect(cancelled.state).toBe('Disabled');
    expect(cancelled).not.toHaveProperty('deletionDate');

    // delete without --pending-days: the 30-day default window
    const defaulted = json(await cli(['--json', 'key', 'delete', 'cli-b']));
    expect(defaulted.deletionDate).toBeGreaterThanOrEqual(before + 30 * DAY_MS - 5000);
    expect(defaulted.deletionDate).toBeLessThanOrEqual(Date.now() + 30 * DAY_MS + 5000);
  });

  it('a refusal exits 1 and prints the error code (and a JSON error with --json)', async () => {
    const r = await cli(['key', 'status', 'cli-missing']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('KeyNotFound');
    expect(r.stderr).toContain('cli-missing');
    expect(r.stdout.length).toBe(0);
    const j = await cli(['--json', 'key', 'create', 'bad id']);
    expect(j.code).toBe(1);
    expect(j.stderr).toContain('InvalidKeyId');
    expect(JSON.parse(j.stdout.toString())).toEqual({ error: { code: 'InvalidKeyId', message: expect.stringContaining('bad id') } });
    const p = await cli(['key', 'delete', 'cli-b', '--pending-days', '10']);
    expect(p.code).toBe(1);
    expect(p.stderr).toContain('KeyPendingDeletion'); // already pending from the test above
    const range = await cli(['key', 'delete', 'cli-b', '--pending-days', '3']);
    expect(range.code).toBe(1);
    expect(range.stderr).toContain('InvalidRequest');
    expect(range.stderr).toContain('pending_days');
  });
});

describe('encrypt, decrypt and datakey through stdin/stdout', () => {
  beforeAll(async () => {
    ok(await cli(['key', 'create', 'cli-data']));
  });

  it('encrypt then decrypt with --context returns the exact bytes', async () => {
    const input = Buffer.concat([randomBytes(3000), Buffer.from([0, 0, 10, 13, 0xff])]);
    const ctx = ['--context', 'bucket=photos', '--context', 'object=2024/cat.jpg'];
    const enc = ok(await cli(['encrypt', '--key', 'cli-data', ...ctx], input));
    const envelope = enc.stdout;
    expect(envelope.length).toBe(7 + 'cli-data'.length + 24 + input.length + 16);
    expect(envelope.subarray(0, 3)).toEqual(Buffer.from([0x01, 0x01, 'cli-data'.length]));
    expect(envelope.subarray(3, 11).toString()).toBe('cli-data');

    const dec = ok(await cli(['decrypt', '--context', 'object=2024/cat.jpg', '--context', 'bucket=photos'], envelope));
    expect(dec.stdout.equals(input)).toBe(true);

    const wrong = await cli(['decrypt', '--context', 'bucket=photos', '--context', 'object=2024/dog.jpg'], envelope);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('InvalidCiphertext');
    expect(wrong.stdout.length).toBe(0);
    const none = await cli(['decrypt'], envelope);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('InvalidCiphertext');
  });

  it('empty input encrypts and decrypts to empty output', async () => {
    const enc = ok(await cli(['encrypt', '--key', 'cli-data'], Buffer.alloc(0)));
    expect(enc.stdout.length).toBe(7 + 'cli-data'.length + 24 + 16);
    const dec = ok(await cli(['decrypt'], enc.stdout));
    expect(dec.stdout.length).toBe(0);
  });

  it('encrypt --json prints the envelope as base64 that decrypts', async () => {
    const r = json(await cli(['--json', 'encrypt', '--key', 'cli-data'], 'json me'));
    expect(r).toMatchObject({ keyId: 'cli-data', keyVersion: 1 });
    const envelope = Buffer.from(r.ciphertext, 'base64');
    expect(ok(await cli(['decrypt'], envelope)).stdout.toString()).toBe('json me');
    const d = json(await cli(['--json', 'decrypt'], envelope));
    expect(Buffer.from(d.plaintext, 'base64').toString()).toBe('json me');
  });

  it('datakey --ciphertext-out writes the sealed key; decrypt gives back the printed hex', async () => {
    const out = join(makeTempDir(), 'dk.bin');
    const r = ok(await cli(['datakey', 'cli-data', '--context', 'bucket=photos', '--ciphertext-out', out]));
    const text = r.stdout.toString();
    const hex = /plaintext \(hex\):\s*([0-9a-f]+)/.exec(text)?.[1];
    expect(hex, text).toBeDefined();
    expect(hex).toHaveLength(64);
    expect(text).toContain(`written to ${out} as raw bytes`);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const sealed = readFileSync(out);
    expect(sealed.length).toBe(7 + 'cli-data'.length + 24 + 32 + 16);
    const dec = ok(await cli(['decrypt', '--context', 'bucket=photos'], sealed));
    expect(dec.stdout.toString('hex')).toBe(hex);
    const wrong = await cli(['decrypt'], sealed);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('InvalidCiphertext');
  });

  it('datakey --json --bytes N, and --without-plaintext', async () => {
    const r = json(await cli(['--json', 'datakey', 'cli-data', '--bytes', '16']));
    expect(r).toMatchObject({ keyId: 'cli-data', keyVersion: 1 });
    const plaintext = Buffer.from(r.plaintext, 'base64');
    expect(plaintext.length).toBe(16);
    const opened = ok(await cli(['decrypt'], Buffer.from(r.ciphertext, 'base64')));
    expect(opened.stdout.equals(plaintext)).toBe(true);

    const sealedOnly = json(await cli(['--json', 'datakey', 'cli-data', '--without-plaintext']));
    expect(sealedOnly).not.toHaveProperty('plaintext');
    expect(ok(await cli(['decrypt'], Buffer.from(sealedOnly.ciphertext, 'base64'))).stdout.length).toBe(32);

    const bad = await cli(['datakey', 'cli-data', '--bytes', '65']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('InvalidRequest');
  });
});

describe('daemon commands and --json', () => {
  it('health and status, human and JSON', async () => {
    const h = json(await cli(['--json', 'health']));
    expect(h).toMatchObject({ healthy: true, backend: 'local/file' });
    expect(ok(await cli(['health'])).stdout.toString()).toMatch(/healthy:\s+true/);
    const s = json(await cli(['--json', 'status']));
    expect(s).toMatchObject({ rootType: 'local', keystoreType: 'file', endpoint: daemon.stateDir });
    expect(s.limits.maxFrameBytes).toBe(1_048_576);
    expect(ok(await cli(['status'])).stdout.toString()).toMatch(/keystore:\s+file/);
  });
});

describe('socket discovery', () => {
  const bogus = () => join(cwd, 'no-daemon-here.sock');

  it('--socket beats RUSTFS_KMS_SOCKET', async () => {
    const r = await runCli(['--json', 'health'], { socket: daemon.socketPath, cwd, env: { RUSTFS_KMS_SOCKET: bogus() } });
    expect(json(r).healthy).toBe(true);
    const wrong = await runCli(['health'], { socket: bogus(), cwd, env: { RUSTFS_KMS_SOCKET: daemon.socketPath } });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain(`rustfs-kmsd is not running at ${bogus()}`);
  });

  it('RUSTFS_KMS_SOCKET is used when there is no --socket', async () => {
    expect(json(await runCli(['--json', 'health'], { cwd, env: { RUSTFS_KMS_SOCKET: daemon.socketPath } })).healthy).toBe(true);
    const r = await runCli(['health'], { cwd, env: { RUSTFS_KMS_SOCKET: bogus() } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`rustfs-kmsd is not running at ${bogus()}`);
  });

  // (skipped where a production daemon's socket exists: it takes precedence by design)
  it.skipIf(existsSync('/run/rustfs-kms/kms.sock'))('without either, ./.kms/kms.sock is used when only the development socket exists', async () => {
    const dir = makeTempDir();
    const dev = await startDaemon({ dir, socket: join(dir, '.kms', 'kms.sock') });
    try {
      const r = await runCli(['--json', 'status'], { cwd: dir });
      expect(json(r).endpoint).toBe(dev.stateDir);
      // and from elsewhere the default production path is tried, and named
      const other = await runCli(['health'], { cwd });
      expect(other.code).toBe(1);
      expect(other.stderr).toContain('/run/rustfs-kms/kms.sock');
    } finally {
      expect(await dev.stop()).toBe(0);
    }
  });
});

describe('init', () => {
  it('creates a 0600 root key in a 0700 state directory, which a daemon then uses', async () => {
    const dir = makeTempDir();
    const stateDir = join(dir, 'state');
    const r = json(await runCli(['--json', 'init', '--dev', '--state-dir', stateDir], { cwd }));
    const keyFile = join(stateDir, 'root.key');
    expect(r).toMatchObject({ state_dir: stateDir, root_type: 'local', ready: true });
    expect(r.steps).toContainEqual(expect.objectContaining({ what: 'root key', path: keyFile, action: 'created' }));
    expect(statSync(stateDir).mode & 0o777).toBe(0o700);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const key = readFileSync(keyFile);
    expect(key.length).toBe(32);

    const d = await startDaemon({ dir, stateDir });
    ok(await runCli(['key', 'create', 'after-init'], { socket: d.socketPath, cwd }));
    expect(await d.stop()).toBe(0);
    expect(readFileSync(keyFile).equals(key)).toBe(true); // the daemon used it, did not replace it
  });

  it('refuses to overwrite an existing key file', async () => {
    const keyFile = join(daemon.stateDir, 'root.key');
    const before = readFileSync(keyFile);
    const r = await runCli(['init', '--dev', '--state-dir', daemon.stateDir], { cwd });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(keyFile);
    expect(r.stderr).toMatch(/already exists/);
    expect(readFileSync(keyFile).equals(before)).toBe(true);
    // --key-file pointing at an existing file too
    const elsewhere = join(makeTempDir(), 'k');
    mkdirSync(elsewhere);
    const k2 = join(elsewhere, 'root.key');
    ok(await runCli(['init', '--dev', '--state-dir', elsewhere, '--key-file', k2], { cwd }));
    const first = readFileSync(k2);
    const again = await runCli(['init', '--dev', '--state-dir', elsewhere, '--key-file', k2], { cwd });
    expect(again.code).not.toBe(0);
    expect(readFileSync(k2).equals(first)).toBe(true);
    // the daemon still serves with its untouched key
    expect(json(await cli(['--json', 'health'])).healthy).toBe(true);
  });
});

describe('usage errors exit 2', () => {
  const cases: Array<[string, string[], string]> = [
    ['an unknown command', ['frobnicate'], 'frobnicate'],
    ['an unknown key command', ['key', 'frobnicate', 'k'], 'frobnicate'],
    ['an unknown flag', ['--no-such-flag', 'health'], 'no-such-flag'],
    ['a missing key id', ['key', 'create'], 'needs KEY'],
    ['encrypt without --key', ['encrypt'], '--key'],
    ['a non-numeric --bytes', ['datakey', 'k', '--bytes', 'many'], '--bytes'],
    ['a --context without =', ['decrypt', '--context', 'novalue'], '--context'],
  ];
  for (const [what, args, mention] of cases) {
    it(what, async () => {
      const r = await cli(args, Buffer.alloc(0));
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(mention);
      expect(r.stderr).toMatch(/see "rustfs-kms .*--help"/);
      expect(r.stderr.trim().split('\n')).toHaveLength(2); // short: the problem and where the help is
    });
  }

  it('--help prints the usage and exits 0', async () => {
    const r = ok(await cli(['--help']));
    expect(r.stdout.toString()).toContain('usage: rustfs-kms');
  });
});
