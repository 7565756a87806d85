// rustfs-kms backup / restore against real daemons: back up while the daemon runs, restore into a
// fresh state directory that has the same root key, start a daemon there and open everything the
// first one sealed (every version). Restore refuses while a daemon holds the state lock, keeps
// records that are newer on disk, brings older ones forward, and refuses a foreign root or a
// damaged file.
import { chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon } from '../helpers/daemon.js';

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

interface Sealed {
  keyId: string;
  version: number;
  ciphertext: Buffer;
  plaintext: Buffer;
  context?: Record<string, string>;
}

function record(stateDir: string, keyId: string): { currentVersion: number; revision: number; state: string } {
  return JSON.parse(readFileSync(join(stateDir, 'keys', `${keyId}.json`), 'utf8')) as { currentVersion: number; revision: number; state: string };
}

async function restore(file: string, stateDir: string, extra: string[] = []) {
  const r = await runCli(['--json', 'restore', file, '--state-dir', stateDir, ...extra]);
  const report = r.code === 0 ? (JSON.parse(r.stdout.toString()) as {
    items: Array<{ keyId: string; action: string; reason: string }>; restored: number; kept: number; unchanged: number; onlyOnDisk: string[]; rootCheck: string;
  }) : undefined;
  return { ...r, report, action: (id: string) => report?.items.find((i) => i.keyId === id)?.action };
}

describe('backup and restore', () => {
  it('a restored state directory opens everything the original sealed; newer records on disk are kept', async () => {
    // ---- the original host ----
    const a = await startDaemon();
    const kms = await KmsClient.connect(a.socketPath, { reconnect: false });
    const sealed: Sealed[] = [];
    const seal = async (keyId: string, context?: Record<string, string>) => {
      const plaintext = Buffer.from(`secret of ${keyId} #${sealed.length}`);
      const r = await kms.encrypt(keyId, plaintext, context ? { context } : {});
      sealed.push({ keyId, version: r.keyVersion, ciphertext: r.ciphertext, plaintext, ...(context ? { context } : {}) });
    };
    await kms.createKey('alpha', { description: 'first', tags: { team: 'storage' } });
    await kms.createKey('beta', { rotationPeriodDays: 90 });
    await kms.createKey('gamma');
    await seal('alpha', { bucket: 'photos' });
    await seal('beta');
    await kms.rotateKey('beta');
    await kms.rotateKey('beta');
    await seal('beta', { bucket: 'logs' });
    const dk = await kms.generateDataKey('gamma', { context: { object: 'o1' } });
    sealed.push({ keyId: 'gamma', version: dk.keyVersion, ciphertext: dk.ciphertext, plaintext: dk.plaintext as Buffer, context: { object: 'o1' } });
    await kms.disableKey('gamma');
    expect(sealed.map((s) => `${s.keyId}@${s.version}`)).toEqual(['alpha@1', 'beta@1', 'beta@3', 'gamma@1']);

    // Backup while the daemon runs (no lock needed: records are replaced atomically).
    const backupDir = makeTempDir('kms-backup-');
    const file = join(backupDir, 'keys.json');
    const b = await runCli(['--json', 'backup', file, '--state-dir', a.stateDir]);
    expect(b.code, b.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const backup = JSON.parse(readFileSync(file, 'utf8')) as Record<string, any>;
    expect(backup.format).toBe('rustfs-kms-key-backup');
    expect(backup.version).toBe(1);
    expect(backup.key_count).toBe(3);
    expect(backup.root_ref).toMatch(/^local:[0-9a-f]{16}$/);
    expect(backup.records.map((r: { keyId: string }) => r.keyId)).toEqual(['alpha', 'beta', 'gamma']);
    // Nothing in the clear: no root key, no plaintext.
    const text = readFileSync(file, 'utf8');
    expect(text).not.toContain(readFileSync(join(a.stateDir, 'root.key')).toString('base64'));
    for (const s of sealed) expect(text).not.toContain(s.plaintext.toString('base64'));
    // A second backup to the same file is refused unless --force.
    const again = await runCli(['backup', file, '--state-dir', a.stateDir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already exists/);
    await kms.close();
    expect(await a.stop()).toBe(0);

    // ---- a fresh host with the same root key ----
    const hostB = makeTempDir('kms-restore-');
    const stateB = join(hostB, 'state');
    mkdirSync(stateB, { mode: 0o700 });
    copyFileSync(join(a.stateDir, 'root.key'), join(stateB, 'root.key'));
    const r1 = await restore(file, stateB);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r1.report).toMatchObject({ restored: 3, kept: 0, unchanged: 0, onlyOnDisk: [] });
    expect(r1.report?.rootCheck).toBe(`matches ${backup.root_ref}`);
    expect(statSync(join(stateB, 'keys')).mode & 0o777).toBe(0o700);
    expect(statSync(join(stateB, 'keys', 'beta.json')).mode & 0o777).toBe(0o600);

    const bDaemon = await startDaemon({ dir: hostB, stateDir: stateB });
    const kmsB = await KmsClient.connect(bDaemon.socketPath, { reconnect: false });
    // State came back too: gamma is disabled (and refuses to open) until enabled again.
    expect((await kmsB.describeKey('gamma')).state).toBe('Disabled');
    await kmsB.enableKey('gamma');
    for (const s of sealed) {
      const opened = await kmsB.decrypt(s.ciphertext, s.context ? { context: s.context } : {});
      expect(opened.plaintext.equals(s.plaintext), `${s.keyId}@${s.version}`).toBe(true);
      expect(opened.keyVersion).toBe(s.version);
    }
    expect(await kmsB.describeKey('alpha')).toMatchObject({ description: 'first', tags: { team: 'storage' }, currentVersion: 1 });
    expect(await kmsB.describeKey('beta')).toMatchObject({ currentVersion: 3, versions: 3, rotationPeriodDays: 90 });

    // Restore refuses while this daemon holds the state directory's lock.
    const busy = await restore(file, stateB);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toMatch(/in use by a running rustfs-kmsd/);

    // Make alpha newer here, then stop and restore the (older) backup again: alpha is kept.
    await kmsB.rotateKey('alpha');
    await kmsB.createKey('delta');
    await kmsB.close();
    expect(await bDaemon.stop()).toBe(0);
    const newer = await restore(file, stateB);
    expect(newer.code, newer.stderr).toBe(0);
    expect(newer.action('alpha')).toBe('kept');
    expect(newer.report?.items.find((i) => i.keyId === 'alpha')?.reason).toMatch(/newer on disk/);
    expect(newer.action('gamma')).toBe('kept'); // enabled again: a higher revision
    expect(newer.action('beta')).toBe('unchanged');
    expect(newer.report?.onlyOnDisk).toEqual(['delta']);
    expect(record(stateB, 'alpha').currentVersion).toBe(2);
    expect(record(stateB, 'gamma').state).toBe('Enabled');
    expect(existsSync(join(stateB, 'keys', 'delta.json'))).toBe(true);

    // The other direction: a backup of host B brings host A's older records forward.
    const fileB = join(backupDir, 'keys-b.json');
    expect((await runCli(['backup', fileB, '--state-dir', stateB])).code).toBe(0);
    const forward = await restore(fileB, a.stateDir);
    expect(forward.code, forward.stderr).toBe(0);
    expect(forward.action('alpha')).toBe('restored');
    expect(forward.report?.items.find((i) => i.keyId === 'alpha')?.reason).toMatch(/older on disk/);
    expect(forward.action('delta')).toBe('restored');
    expect(forward.action('beta')).toBe('unchanged');
    expect(record(a.stateDir, 'alpha').currentVersion).toBe(2);

    // Host A, restarted, still opens what it sealed and now knows alpha's version 2.
    const a2 = await startDaemon({ dir: a.dir, stateDir: a.stateDir, socket: a.socketPath });
    const kmsA = await KmsClient.connect(a2.socketPath, { reconnect: false });
    for (const s of sealed) expect((await kmsA.decrypt(s.ciphertext, s.context ? { context: s.context } : {})).plaintext.equals(s.plaintext)).toBe(true);
    const v2 = await kmsA.encrypt('alpha', Buffer.from('after restore'));
    expect(v2.keyVersion).toBe(2);
    await kmsA.close();
    expect(await a2.stop()).toBe(0);
  });

  it('refuses a foreign root and a damaged backup', async () => {
    const a = await startDaemon();
    const kms = await KmsClient.connect(a.socketPath, { reconnect: false });
    await kms.createKey('only');
    await kms.close();
    const dir = makeTempDir('kms-backup-');
    const file = join(dir, 'b.json');
    expect((await runCli(['backup', file, '--state-dir', a.stateDir])).code).toBe(0);
    expect(await a.stop()).toBe(0);

    // Another root key in the target state directory.
    const other = await startDaemon(); // creates its own root
    expect(await other.stop()).toBe(0);
    const foreign = await restore(file, other.stateDir);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toMatch(/the root configured for .* is local:[0-9a-f]+, but the backup's records were wrapped by local:/);
    expect(existsSync(join(other.stateDir, 'keys', 'only.json'))).toBe(false);

    // A record edited after the backup was taken.
    const damaged = join(dir, 'damaged.json');
    writeFileSync(damaged, readFileSync(file, 'utf8').replace('"state": "Enabled"', '"state": "Disabled"'));
    const fresh = join(makeTempDir('kms-restore-'), 'state');
    const bad = await restore(damaged, fresh);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/records_sha256 does not match/);
    const notBackup = join(dir, 'nope.json');
    writeFileSync(notBackup, '{"format":"something-else"}');
    expect((await restore(notBackup, fresh)).stderr).toMatch(/not a key backup/);

    // Without --state-dir, restore finds the state directory like the socket: test/cli/state-dir.test.ts.

    // Run as root into a state directory that belongs to the daemon's user (uid 4343 here): what
    // restore writes belongs to that user too, or the daemon could not read it.
    if (process.getuid?.() === 0) {
      const owned = join(makeTempDir('kms-restore-'), 'state');
      mkdirSync(owned, { mode: 0o700 });
      chownSync(owned, 4343, 4343);
      const asRoot = await restore(file, owned);
      expect(asRoot.code, asRoot.stderr).toBe(0);
      for (const p of ['keys', 'keys/only.json', 'lock']) {
        const st = statSync(join(owned, p));
        expect([st.uid, st.gid], p).toEqual([4343, 4343]);
      }
    }

    // --dry-run reports without writing.
    const dry = await restore(file, fresh, ['--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.report?.restored).toBe(1);
    expect(existsSync(fresh)).toBe(false);
  });
});
