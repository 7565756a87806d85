// Faults of a pkcs11 root, through the REAL daemon on a real SoftHSM2 token: start-up refusals that
// say which thing is wrong, and a token that disappears while the daemon runs (softhsm2-util
// --delete-token), comes back from a backup, or comes back as a different token.
//
// What SoftHSM allows: a deleted token is gone with its keys; "restoring" it means putting its
// directory back (a file copy taken before). SoftHSM only rescans its token directory in
// C_Initialize, so the daemon's reconnect loop finalizes and re-initializes the library; a token
// re-initialised under the same label is a different token (new serial, no keys) and is refused.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { KmsError } from '../../src/errors.js';
import {
  cleanupTempDirs, killAllDaemons, runCli, runDaemonExpectingExit, startDaemon, type DaemonHandle,
} from '../helpers/daemon.js';
import {
  backupToken, configYaml, deleteToken, haveSoftHsm, initToken, makeToken, pkcs11Tool, restoreToken, writeConfig,
  type SoftToken, initEnv,
} from './harness.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

async function failure(p: Promise<unknown>): Promise<KmsError> {
  try {
    const value = await p;
    throw new Error(`expected the call to fail, it returned ${JSON.stringify(value)}`);
  } catch (err) {
    if (!(err instanceof KmsError)) throw err;
    return err;
  }
}

async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function initRoot(token: SoftToken, mode: 'wrap' | 'on-token'): Promise<string> {
  const path = writeConfig(token, { mode });
  const r = await runCli(['init', '--config', path], { env: initEnv(token) });
  expect(r.code, r.stderr).toBe(0);
  return readFileSync(path, 'utf8');
}

describe.skipIf(!haveSoftHsm())('start-up refusals name the problem', () => {
  it('a wrong PIN: exit 1, CKR_PIN_INCORRECT, and the PIN itself is never printed', async () => {
    const token = makeToken('kms-pin', '739251');
    const wrongPin = '271828';
    const r = await runDaemonExpectingExit({
      config: configYaml(token, { mode: 'on-token', pinEnv: 'KMS_TEST_PIN' }),
      env: { ...token.env, KMS_TEST_PIN: wrongPin },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('was rejected by token "kms-pin" (CKR_PIN_INCORRECT)');
    expect(r.stderr).toContain('variable KMS_TEST_PIN');
    expect(r.stderr).not.toContain(wrongPin);
    expect(r.stderr).not.toContain(token.pin);
  });

  it('a token that is not there: exit 1, the label asked for and the tokens present', async () => {
    const token = makeToken('kms-present');
    const r = await runDaemonExpectingExit({ config: configYaml(token, { mode: 'wrap', tokenLabel: 'kms-absent' }), env: token.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('token "kms-absent" not found in PKCS#11 module /usr/lib/softhsm/libsofthsm2.so');
    expect(r.stderr).toContain('"kms-present"');
  });

  it('a module that does not exist, and one that is not a PKCS#11 library', async () => {
    const token = makeToken('kms-module');
    const missing = await runDaemonExpectingExit({ config: configYaml(token, { mode: 'wrap', module: '/usr/lib/no-such-pkcs11.so' }), env: token.env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('PKCS#11 module /usr/lib/no-such-pkcs11.so does not exist');
    const bogus = await runDaemonExpectingExit({ config: configYaml(token, { mode: 'wrap', module: token.conf }), env: token.env });
    expect(bogus.code).toBe(1);
    expect(bogus.stderr).toContain(`PKCS#11 module ${token.conf} cannot be loaded`);
  });

  it('wrap mode without a root key on the token: exit 1 and the command that creates it', async () => {
    const token = makeToken('kms-noroot');
    const r = await runDaemonExpectingExit({ config: configYaml(token, { mode: 'wrap' }), env: token.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('root key "rustfs-kms-root" not found on token "kms-noroot"');
    expect(r.stderr).toContain('rustfs-kms init');
  });

  it('a key with the root label that could leave the token is refused', async () => {
    const token = makeToken('kms-weak');
    const made = pkcs11Tool(token, ['--keygen', '--key-type', 'AES:32', '--label', 'rustfs-kms-root', '--extractable']);
    expect(made.code, made.stderr).toBe(0);
    const r = await runDaemonExpectingExit({ config: configYaml(token, { mode: 'wrap' }), env: token.env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/root key "rustfs-kms-root" on token "kms-weak" is unusable: .*CKA_EXTRACTABLE is true/);
  });
});

describe.skipIf(!haveSoftHsm())('the token goes away while the daemon runs (wrap mode)', () => {
  let token: SoftToken;
  let daemon: DaemonHandle;
  let kms: KmsClient;

  afterAll(async () => {
    await kms?.close();
    if (daemon?.running) await daemon.stop();
  });

  it('degrades, keeps serving cached keys, refuses new unwraps, and recovers from a restored token', async () => {
    token = makeToken('kms-loss');
    const config = await initRoot(token, 'wrap');
    // First run: two keys and a blob under the second; the restart leaves only k1 unwrapped
    // (the start-up check opens the first key), so k2 needs the token again.
    const first = await startDaemon({ config, env: token.env });
    const client = await KmsClient.connect(first.socketPath, { reconnect: false });
    await client.createKey('k1');
    await client.createKey('k2');
    const k1Blob = (await client.encrypt('k1', Buffer.from('one'))).ciphertext;
    const k2Blob = (await client.encrypt('k2', Buffer.from('two'))).ciphertext;
    await client.close();
    expect(await first.stop()).toBe(0);
    daemon = await startDaemon({ config, env: token.env, dir: first.dir });
    kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
    expect((await kms.health()).healthy).toBe(true);

    const backup = backupToken(token);
    deleteToken(token);

    expect((await kms.health()).healthy).toBe(false);
    const cli = await runCli(['health', '--json'], { socket: daemon.socketPath });
    expect(cli.code).toBe(1);
    expect(JSON.parse(cli.stdout.toString())).toMatchObject({ healthy: false, backend: 'pkcs11/file' });
    await waitFor('the degraded state in the log', () => daemon.stderr().includes('PKCS#11 token unavailable; reconnecting with back-off'));
    expect(daemon.stderr()).toMatch(/"detail":"token check failed: CKR_[A-Z_]+"/);

    // Cached: k1 keeps serving, both ways.
    const dk = await kms.generateDataKey('k1');
    expect((await kms.decrypt(dk.ciphertext)).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
    expect((await kms.decrypt(k1Blob)).plaintext.toString()).toBe('one');
    // New unwraps and wraps need the token.
    const unwrap = await failure(kms.decrypt(k2Blob));
    expect(unwrap.code).toBe('BackendUnavailable');
    expect(unwrap.message).toContain('PKCS#11 token "kms-loss" is unavailable');
    expect((await failure(kms.createKey('k3'))).code).toBe('BackendUnavailable');
    expect((await failure(kms.rotateKey('k1'))).code).toBe('BackendUnavailable');

    // The token's files come back: the reconnect loop re-initializes the library and finds it.
    restoreToken(token, backup);
    await waitFor('health to recover', async () => (await kms.health()).healthy);
    expect(daemon.stderr()).toContain('PKCS#11 token reconnected');
    expect((await kms.decrypt(k2Blob)).plaintext.toString()).toBe('two');
    expect((await kms.rotateKey('k1')).currentVersion).toBe(2);
    expect((await kms.createKey('k3')).origin).toBe('pkcs11');

    // A different token under the same label (re-initialised: new serial, no root key) is refused.
    const backup2 = backupToken(token);
    deleteToken(token);
    initToken(token);
    await waitFor('the refusal of the re-initialised token', () => daemon.stderr().includes('is no longer on token \\"kms-loss\\"'));
    expect((await kms.health()).healthy).toBe(false);
    expect((await kms.decrypt(k1Blob)).plaintext.toString()).toBe('one'); // still cached
    expect((await failure(kms.createKey('k4'))).code).toBe('BackendUnavailable');

    // And the original, restored, is accepted again.
    restoreToken(token, backup2);
    await waitFor('health to recover again', async () => (await kms.health()).healthy);
    expect((await kms.createKey('k4')).currentVersion).toBe(1);

    // Restarts cleanly afterwards.
    await kms.close();
    expect(await daemon.stop()).toBe(0);
    daemon = await startDaemon({ config, env: token.env, dir: first.dir });
    kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
    expect((await kms.decrypt(k2Blob)).plaintext.toString()).toBe('two');
  });

  it('a PIN that stops working is not retried (each attempt counts towards locking the token)', async () => {
    const newPin = '55119911';
    const changed = pkcs11Tool(token, ['--change-pin', '--new-pin', newPin]);
    expect(changed.code, changed.stderr).toBe(0);
    const backup = backupToken(token);
    deleteToken(token);
    expect((await kms.health()).healthy).toBe(false); // the daemon notices the loss...
    restoreToken(token, backup); // ...and finds the same token back, with a PIN it does not know
    await waitFor('the reconnect to stop', () => daemon.stderr().includes('PKCS#11 reconnect stopped'));
    const log = daemon.stderr();
    expect(log).toContain('CKR_PIN_INCORRECT');
    expect(log).toContain('not retrying');
    expect(log).not.toContain(newPin);
    expect(log).not.toContain(token.pin);
    await new Promise((r) => setTimeout(r, 1500));
    expect(daemon.stderr().split('PKCS#11 reconnect stopped').length - 1).toBe(1);
    expect((await failure(kms.createKey('k5'))).message).toContain('not retrying');
  });
});

describe.skipIf(!haveSoftHsm())('the token goes away while the daemon runs (on-token mode)', () => {
  let daemon: DaemonHandle;
  let kms: KmsClient;

  afterAll(async () => {
    await kms?.close();
    if (daemon?.running) await daemon.stop();
  });

  it('every seal fails with BackendUnavailable while it is gone and works again once it is back', async () => {
    const token = makeToken('kms-onloss');
    const config = await initRoot(token, 'on-token');
    daemon = await startDaemon({ config, env: token.env });
    kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
    await kms.createKey('t1');
    const blob = (await kms.encrypt('t1', Buffer.from('on token'), { context: { c: 'd' } })).ciphertext;

    const backup = backupToken(token);
    deleteToken(token);
    const err = await failure(kms.generateDataKey('t1'));
    expect(err.code).toBe('BackendUnavailable');
    expect((await kms.health()).healthy).toBe(false);
    expect((await failure(kms.decrypt(blob, { context: { c: 'd' } }))).code).toBe('BackendUnavailable');
    expect((await failure(kms.generateDataKeyBatch('t1', 8))).code).toBe('BackendUnavailable');

    restoreToken(token, backup);
    await waitFor('health to recover', async () => (await kms.health()).healthy);
    expect((await kms.decrypt(blob, { context: { c: 'd' } })).plaintext.toString()).toBe('on token');
    const dk = await kms.generateDataKey('t1');
    expect((await kms.decrypt(dk.ciphertext)).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
  });
});

describe.skipIf(!haveSoftHsm())('the root key is deleted from a token that stays (wrap mode)', () => {
  let daemon: DaemonHandle;
  let kms: KmsClient;

  afterAll(async () => {
    await kms?.close();
    if (daemon?.running) await daemon.stop();
  });

  it('degrades with the reason, keeps serving cached keys, and recovers when the key is restored', async () => {
    const token = makeToken('kms-rootgone');
    const config = await initRoot(token, 'wrap');
    daemon = await startDaemon({ config, env: token.env });
    kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
    await kms.createKey('a');
    const blob = (await kms.encrypt('a', Buffer.from('still here'))).ciphertext;
    const backup = backupToken(token);

    const removed = pkcs11Tool(token, ['--delete-object', '--type', 'secrkey', '--label', 'rustfs-kms-root']);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await kms.health()).healthy).toBe(false);
    await waitFor('the reason in the log', () => daemon.stderr().includes('is no longer on token \\"kms-rootgone\\"'));
    expect((await kms.decrypt(blob)).plaintext.toString()).toBe('still here');
    expect((await failure(kms.createKey('b'))).code).toBe('BackendUnavailable');

    restoreToken(token, backup);
    await waitFor('health to recover', async () => (await kms.health()).healthy);
    expect((await kms.createKey('b')).state).toBe('Enabled');
  });
});
