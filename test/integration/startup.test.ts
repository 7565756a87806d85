// Start-up refuses, with the reason, what is unsafe or wrong: a second daemon on the same state,
// bad configuration values, loose or foreign permissions, a socket path that is not ours to take,
// a root that does not open the existing keys. A stale socket from a crashed daemon is replaced.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { cleanupTempDirs, killAllDaemons, makeTempDir, runDaemonExpectingExit, startDaemon, type DaemonHandle } from '../helpers/daemon.js';

afterEach(async () => {
  await killAllDaemons();
});
afterAll(() => cleanupTempDirs());

function expectRefused(r: { code: number | null; signal: NodeJS.Signals | null; stderr: string }, ...mentions: (string | RegExp)[]): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.code, r.stderr).not.toBeNull();
  for (const m of mentions) {
    if (typeof m === 'string') expect(r.stderr).toContain(m);
    else expect(r.stderr).toMatch(m);
  }
}

async function serves(d: DaemonHandle): Promise<boolean> {
  const c = await KmsClient.connect(d.socketPath, { reconnect: false });
  try {
    return (await c.health()).healthy;
  } finally {
    await c.close();
  }
}

/** A daemon started once (state and root key created), then stopped. */
async function preparedState(): Promise<{ dir: string; stateDir: string; socket: string }> {
  const d = await startDaemon();
  const c = await KmsClient.connect(d.socketPath, { reconnect: false });
  await c.createKey('existing');
  await c.close();
  expect(await d.stop()).toBe(0);
  return { dir: d.dir, stateDir: d.stateDir, socket: d.socketPath };
}

describe('one daemon per state directory and per socket', () => {
  it('a second daemon on the same state directory is refused; the first keeps serving', async () => {
    const first = await startDaemon();
    const other = makeTempDir();
    const r = await runDaemonExpectingExit({ dir: other, stateDir: first.stateDir, socket: join(other, 'kms.sock') });
    expectRefused(r, 'in use by another rustfs-kmsd', first.stateDir);
    expect(existsSync(join(other, 'kms.sock'))).toBe(false);
    expect(await serves(first)).toBe(true);
  });

  it('a live daemon on the socket path (other state directory) is refused with "already listening"', async () => {
    const first = await startDaemon();
    const other = makeTempDir();
    const r = await runDaemonExpectingExit({ dir: other, socket: first.socketPath });
    expectRefused(r, 'already listening', first.socketPath);
    // the first daemon's socket was not taken away
    expect(lstatSync(first.socketPath).isSocket()).toBe(true);
    expect(await serves(first)).toBe(true);
  });

  it('a stale socket left by a SIGKILLed daemon is replaced and the new daemon serves', async () => {
    const first = await startDaemon();
    await first.kill();
    expect(lstatSync(first.socketPath).isSocket()).toBe(true); // left behind
    const second = await startDaemon({ dir: first.dir });
    expect(await serves(second)).toBe(true);
    const c = await KmsClient.connect(second.socketPath, { reconnect: false });
    expect((await c.createKey('after-stale')).keyId).toBe('after-stale');
    await c.close();
    expect(await second.stop()).toBe(0);
  });
});

describe('what a first start creates', () => {
  it('dev mode creates a 0700 state directory, a 32-byte 0600 root key and a 0660 socket', async () => {
    const d = await startDaemon();
    expect(statSync(d.stateDir).mode & 0o777).toBe(0o700);
    const key = join(d.stateDir, 'root.key');
    expect(statSync(key).mode & 0o777).toBe(0o600);
    expect(statSync(key).size).toBe(32);
    const sock = lstatSync(d.socketPath);
    expect(sock.isSocket()).toBe(true);
    expect(sock.mode & 0o777).toBe(0o660);
    expect(sock.uid).toBe(process.getuid?.());
    expect(await d.stop()).toBe(0);
  });

  it('socket.mode from the config is applied', async () => {
    const d = await startDaemon({ config: 'socket: { mode: "0600" }\n' });
    expect(lstatSync(d.socketPath).mode & 0o777).toBe(0o600);
    expect(await d.stop()).toBe(0);
  });
});

describe('bad configuration values name the field', () => {
  const cases: Array<[string, string, (string | RegExp)[]]> = [
    ['limits.max_frame_bytes below its range', 'limits: { max_frame_bytes: 12 }\n', ['limits.max_frame_bytes', '1024', '12']],
    ['socket.mode that is not octal', 'socket: { mode: "abc" }\n', ['socket.mode', 'octal', '"abc"']],
    ['socket.mode unquoted', 'socket: { mode: 0660 }\n', ['socket.mode', 'quotes']],
    ['an unknown top-level key', 'sokcet: { mode: "0660" }\n', ['sokcet', 'unknown key']],
    ['an unknown nested key', 'limits: { max_conections: 5 }\n', ['limits.max_conections', 'unknown key']],
    ['limits.max_connections of 0', 'limits: { max_connections: 0 }\n', ['limits.max_connections', '65536']],
    ['a wrong type', 'limits: { max_connections: "many" }\n', ['limits.max_connections', '"many"']],
    ['invalid YAML', 'limits: { max_connections: 5\n', ['YAML']],
  ];
  for (const [what, yaml, mentions] of cases) {
    it(`${what}: refused`, async () => {
      const r = await runDaemonExpectingExit({ config: yaml });
      expectRefused(r, 'config', ...mentions);
      // refused before listening
      expect(existsSync(r.socketPath)).toBe(false);
    });
  }

  it('a socket path longer than the Unix limit is refused naming --socket', async () => {
    const dir = makeTempDir();
    const socket = join(dir, 's'.repeat(120) + '.sock');
    const r = await runDaemonExpectingExit({ dir, socket });
    expectRefused(r, '--socket', '107');
  });

  it('a bad RUSTFS_KMS_* variable is refused naming the variable', async () => {
    const r = await runDaemonExpectingExit({ env: { RUSTFS_KMS_TIMEOUT_SECS: 'soon' } });
    expectRefused(r, 'RUSTFS_KMS_TIMEOUT_SECS');
  });
});

describe('unsafe permissions and paths are refused', () => {
  it('a state directory readable by others (0755) is refused naming the mode', async () => {
    const dir = makeTempDir();
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    chmodSync(stateDir, 0o755);
    const r = await runDaemonExpectingExit({ dir, stateDir });
    expectRefused(r, 'state directory', stateDir, '0755');
    expect(existsSync(join(stateDir, 'root.key'))).toBe(false);
  });

  it('a state directory that does not exist is refused outside dev mode', async () => {
    const dir = makeTempDir();
    const r = await runDaemonExpectingExit({ dir, dev: false, stateDir: join(dir, 'missing') });
    expectRefused(r, join(dir, 'missing'), 'does not exist');
  });

  it('a root key file readable by others (0644) is refused', async () => {
    const s = await preparedState();
    const keyFile = join(s.stateDir, 'root.key');
    chmodSync(keyFile, 0o644);
    const r = await runDaemonExpectingExit({ dir: s.dir });
    expectRefused(r, 'root key file', keyFile, '0644');
    expect(lstatSync(keyFile).mode & 0o777).toBe(0o644); // refused, not repaired silently
  });

  it('a root key file owned by another user is refused', async () => {
    const s = await preparedState();
    const keyFile = join(s.stateDir, 'root.key');
    chownSync(keyFile, 65534, 65534);
    const r = await runDaemonExpectingExit({ dir: s.dir });
    expectRefused(r, 'root key file', 'owned by uid 65534');
  });

  it('a root that does not open the existing keys is refused', async () => {
    const s = await preparedState();
    const keyFile = join(s.stateDir, 'root.key');
    const original = readFileSync(keyFile);
    writeFileSync(keyFile, randomBytes(32), { mode: 0o600 });
    const r = await runDaemonExpectingExit({ dir: s.dir });
    expectRefused(r, 'does not open existing key', 'existing');
    // with the right root back, everything is there
    writeFileSync(keyFile, original, { mode: 0o600 });
    const d = await startDaemon({ dir: s.dir });
    const c = await KmsClient.connect(d.socketPath, { reconnect: false });
    expect((await c.describeKey('existing')).state).toBe('Enabled');
    await c.close();
    expect(await d.stop()).toBe(0);
  });

  it('a key record that is not valid JSON is refused, naming the file', async () => {
    const s = await preparedState();
    const file = join(s.stateDir, 'keys', 'existing.json');
    writeFileSync(file, '{"keyId": "existing", "state": ', { mode: 0o600 });
    const r = await runDaemonExpectingExit({ dir: s.dir });
    expectRefused(r, file, 'JSON');
  });

  it('a socket path that is a symbolic link is refused, and the link is left alone', async () => {
    const dir = makeTempDir();
    const socket = join(dir, 'kms.sock');
    const target = join(dir, 'elsewhere.sock');
    symlinkSync(target, socket);
    const r = await runDaemonExpectingExit({ dir, socket });
    expectRefused(r, socket, 'symbolic link');
    expect(lstatSync(socket).isSymbolicLink()).toBe(true);
    expect(readlinkSync(socket)).toBe(target);
    expect(existsSync(target)).toBe(false);
  });

  it('a socket directory writable by others is refused', async () => {
    const dir = makeTempDir();
    const sockDir = join(dir, 'run');
    mkdirSync(sockDir);
    chmodSync(sockDir, 0o777);
    const r = await runDaemonExpectingExit({ dir, socket: join(sockDir, 'kms.sock') });
    expectRefused(r, sockDir, 'writable by others');
  });

  it("a stale socket owned by another user is refused, not replaced", async () => {
    const first = await startDaemon();
    await first.kill();
    chownSync(first.socketPath, 65534, 65534);
    const r = await runDaemonExpectingExit({ dir: first.dir });
    expectRefused(r, first.socketPath, 'owned by uid 65534');
    expect(lstatSync(first.socketPath).uid).toBe(65534);
  });

  it('a regular file at the socket path is refused and not replaced', async () => {
    const dir = makeTempDir();
    const socket = join(dir, 'kms.sock');
    writeFileSync(socket, 'precious data');
    const r = await runDaemonExpectingExit({ dir, socket });
    expectRefused(r, socket, 'not a socket');
    expect(readFileSync(socket, 'utf8')).toBe('precious data');
  });
});
