// On-token mode counts seals per version (random 96-bit nonces: at most 2^32 per key) and rotates
// before the budget is spent. The daemon's test hook RUSTFS_KMS_TEST_PKCS11_SEAL_LIMIT shrinks the
// budget from 2^31 to a handful so that this happens in a test; everything else is the real thing.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { cleanupTempDirs, killAllDaemons, runCli, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { haveSoftHsm, listSecretKeys, makeToken, writeConfig, initEnv } from './harness.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.skipIf(!haveSoftHsm())('on-token seal budget', () => {
  let daemon: DaemonHandle;
  let kms: KmsClient;

  afterAll(async () => {
    await kms?.close();
    if (daemon?.running) await daemon.stop();
  });

  it('rotates a version once it has sealed its budget, persists the counts in blocks, and survives restarts', async () => {
    const token = makeToken('kms-budget');
    const configPath = writeConfig(token, { mode: 'on-token' });
    const config = readFileSync(configPath, 'utf8');
    expect((await runCli(['init', '--config', configPath], { env: initEnv(token) })).code).toBe(0);
    const env = { ...token.env, RUSTFS_KMS_TEST_PKCS11_SEAL_LIMIT: '8' };
    daemon = await startDaemon({ config, env });
    kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
    await kms.createKey('r1');

    const sealed: { plaintext: Buffer; ciphertext: Buffer; version: number }[] = [];
    for (let i = 0; i < 30; i++) {
      const dk = await kms.generateDataKey('r1', { context: { i: String(i) } });
      sealed.push({ plaintext: dk.plaintext as Buffer, ciphertext: dk.ciphertext, version: dk.keyVersion });
    }
    await waitFor('rotation', async () => (await kms.describeKey('r1')).currentVersion >= 4);
    // Sequential seals: every version seals exactly its budget, then the next one takes over.
    const perVersion = new Map<number, number>();
    for (const s of sealed) perVersion.set(s.version, (perVersion.get(s.version) ?? 0) + 1);
    expect([...perVersion.values()].slice(0, -1)).toEqual([8, 8, 8]);
    expect(daemon.stderr()).toContain('on-token key rotated: seal budget of the previous version reached');
    for (const [i, s] of sealed.entries()) {
      expect((await kms.decrypt(s.ciphertext, { context: { i: String(i) } })).plaintext.equals(s.plaintext)).toBe(true);
    }
    const info = await kms.describeKey('r1');
    const labels = listSecretKeys(token).map((k) => k.label);
    for (let v = 1; v <= info.currentVersion; v++) expect(labels).toContain(`rustfs-kms:r1:${v}`);

    // Counts are reserved in blocks (here 2 = budget / 4) and written atomically.
    const counterFile = join(daemon.stateDir, 'pkcs11-seal-counters.json');
    const counts = JSON.parse(readFileSync(counterFile, 'utf8')) as { format: number; reserved: Record<string, number> };
    expect(counts.format).toBe(1);
    expect(counts.reserved['r1#1']).toBe(8);
    for (const value of Object.values(counts.reserved)) expect(value % 2).toBe(0);

    // Restart: a version starts from what it had reserved (never under-counted).
    const dir = daemon.dir;
    const before = info.currentVersion;
    await kms.close();
    expect(await daemon.stop()).toBe(0);
    daemon = await startDaemon({ config, env, dir });
    kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
    expect((await kms.decrypt(sealed[0]?.ciphertext as Buffer, { context: { i: '0' } })).plaintext.equals(sealed[0]?.plaintext as Buffer)).toBe(true);
    for (let i = 0; i < 10; i++) await kms.generateDataKey('r1');
    await waitFor('rotation after restart', async () => (await kms.describeKey('r1')).currentVersion > before);

    // A lost counter file: every on-token key's current version counts as used up and rotates at start.
    await kms.close();
    expect(await daemon.stop()).toBe(0); // lets a rotation the last seals started finish
    const current = (JSON.parse(readFileSync(join(daemon.stateDir, 'keys', 'r1.json'), 'utf8')) as { currentVersion: number }).currentVersion;
    rmSync(counterFile);
    daemon = await startDaemon({ config, env, dir });
    kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
    expect((await kms.describeKey('r1')).currentVersion).toBe(current + 1);
    expect(existsSync(counterFile)).toBe(true);
    const dk = await kms.generateDataKey('r1');
    expect((await kms.decrypt(dk.ciphertext)).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
  });
});
