// Issue 11, item 2a: tag names that break plain-object handling (constructor, __proto__, prototype)
// and other names outside DESIGN §4's tag rules, sent by a hostile local process through every way
// in: the socket, the admin HTTP API, the in-process library, a crafted backup given to restore, a
// record file dropped into the file keystore, and a record written straight into Vault KV. Every
// way in refuses them with InvalidRequest; records already stored with them stay usable with those
// tags dropped; the daemon keeps answering health throughout.
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KmsConfig, KmsManager } from '../../src/index.js';
import { KmsClient } from '../../src/rpc/client.js';
import { cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { RawConn } from '../integration/wire.js';
import { freePort, sdkRequest, type Creds } from '../http/clients.js';
import { codeOf, startVaultDaemon, waitFor } from '../vault/harness.js';
import { openTarget, policyToken, setupBackends, teardownBackends } from '../vault/target.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

const RESERVED = ['constructor', '__proto__', 'prototype'];
/** Each class of bad tag once: reserved names, an empty key, a character outside the set, a key too long, a value too long. */
const BAD_TAGS: Array<[string, string]> = [
  ...RESERVED.map((k): [string, string] => [k, 'x']),
  ['', 'x'],
  ['two words', 'x'],
  ['a'.repeat(129), 'x'],
  ['long-value', 'v'.repeat(257)],
];
/** A map holding `key` as an own property, even "__proto__" (an object literal would set the prototype). */
const tagsWith = (key: string, value: string): Record<string, string> => Object.fromEntries([[key, value]]) as Record<string, string>;
const shown = (k: string) => JSON.stringify(k.slice(0, 20));

async function expectHealthy(socketPath: string): Promise<void> {
  const c = await RawConn.open(socketPath);
  try {
    const r = await c.call(1, 'health');
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(r.result.healthy).toBe(true);
  } finally {
    c.close();
  }
}

/** A key record file with `tags` replaced by raw JSON text (so "__proto__" lands as written). */
function rewriteTags(recordPath: string, tagsJson: string): void {
  const text = readFileSync(recordPath, 'utf8');
  const replaced = text.replace(/"tags": \{[^}]*\}/, `"tags": ${tagsJson}`);
  expect(replaced).not.toBe(text);
  writeFileSync(recordPath, replaced, { mode: 0o600 });
}

const HOSTILE_TAGS_JSON = '{"constructor":"x","__proto__":"y","prototype":"z","two words":"1","team":"storage"}';

describe('tag names through the socket, the admin HTTP API and the file keystore (real daemon)', () => {
  const creds: Creds = { accessKey: 'tag-admin', secretKey: randomBytes(24).toString('base64url') };
  let daemon: DaemonHandle;
  let port: number;

  it('the socket refuses every bad tag in create_key with InvalidRequest naming it, and creates nothing', async () => {
    const dir = makeTempDir('kms-hostile-tags-');
    const secretFile = join(dir, 'admin.secret');
    writeFileSync(secretFile, creds.secretKey + '\n', { mode: 0o600 });
    port = await freePort();
    daemon = await startDaemon({
      dir,
      config: `admin_http: { listen: "127.0.0.1:${port}", access_key: ${creds.accessKey}, secret_key_file: ${secretFile} }\n`,
    });
    const c = await RawConn.open(daemon.socketPath);
    try {
      let id = 10;
      for (const [key, value] of BAD_TAGS) {
        const r = await c.call(++id, 'create_key', { key_id: `sock-${id}`, tags: tagsWith(key, value) });
        expect(r.ok, `${shown(key)}: ${JSON.stringify(r)}`).toBe(false);
        expect(r.error.code).toBe('InvalidRequest');
        const described = await c.call(++id, 'describe_key', { key_id: `sock-${id - 1}` });
        expect(described.error?.code).toBe('KeyNotFound');
      }
      // The rules' edges are accepted: every allowed character, 128-character keys, 256-character values.
      const edge = await c.call(++id, 'create_key', { key_id: 'sock-edge', tags: { 'aZ09._:/=+@-': 'ok', ['k'.repeat(128)]: 'é'.repeat(256) } });
      expect(edge.ok, JSON.stringify(edge)).toBe(true);
    } finally {
      c.close();
    }
    await expectHealthy(daemon.socketPath);
  });

  it('the admin HTTP create body with a bad tag name gets 400 InvalidRequest; describe_key and list_keys keep answering', async () => {
    const c = await RawConn.open(daemon.socketPath);
    try {
      let id = 100;
      for (const [key, value] of BAD_TAGS) {
        const keyName = `http-${++id}`;
        const body = `{"description":"hostile","tags":{${JSON.stringify(key)}:${JSON.stringify(value)}}}`;
        const r = await sdkRequest(port, creds, { method: 'POST', path: '/rustfs/admin/v3/kms/key/create', query: { keyName }, body });
        expect(r.status, `${shown(key)}: ${r.text}`).toBe(400);
        // RustFS's legacy create route answers errors as S3-style XML (its admin contract).
        expect(r.text).toContain('<Code>InvalidRequest</Code>');
        // What used to kill the daemon: an answer carrying that key's KeyInfo.
        const described = await c.call(++id, 'describe_key', { key_id: keyName });
        expect(described.error?.code, JSON.stringify(described)).toBe('KeyNotFound');
        const listed = await c.call(++id, 'list_keys', {});
        expect(listed.ok, JSON.stringify(listed)).toBe(true);
      }
    } finally {
      c.close();
    }
    await expectHealthy(daemon.socketPath);
  });

  it('a record file whose tags were edited on disk loads with the bad tags dropped (logged), and the key still works', async () => {
    const kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
    await kms.createKey('victim', { tags: { team: 'storage' } });
    const sealed = await kms.encrypt('victim', Buffer.from('still readable'));
    await kms.close();
    expect(await daemon.stop()).toBe(0);

    const recordPath = join(daemon.stateDir, 'keys', 'victim.json');
    rewriteTags(recordPath, HOSTILE_TAGS_JSON);
    daemon = await startDaemon({ dir: daemon.dir });
    const c = await RawConn.open(daemon.socketPath);
    try {
      const described = await c.call(1, 'describe_key', { key_id: 'victim' });
      expect(described.ok, JSON.stringify(described)).toBe(true);
      expect(described.result.tags).toEqual({ team: 'storage' });
      const listed = await c.call(2, 'list_keys', {});
      expect(listed.ok, JSON.stringify(listed)).toBe(true);
      expect(listed.result.keys.find((k: { key_id: string }) => k.key_id === 'victim').tags).toEqual({ team: 'storage' });
      const opened = await c.call(3, 'decrypt', { ciphertext: sealed.ciphertext });
      expect(Buffer.from(opened.result.plaintext).toString()).toBe('still readable');
      // The next write of the record leaves the dropped tags behind on disk too.
      expect((await c.call(4, 'disable_key', { key_id: 'victim' })).ok).toBe(true);
    } finally {
      c.close();
    }
    expect(daemon.stderr()).toMatch(/victim.*tags that break the tag rules|tags that break the tag rules.*victim/);
    expect(daemon.stderr()).toContain('reserved');
    expect(JSON.parse(readFileSync(recordPath, 'utf8')).tags).toEqual({ team: 'storage' });
    await expectHealthy(daemon.socketPath);
    expect(await daemon.stop()).toBe(0);
  });
});

describe('tag names through the in-process library (KmsManager)', () => {
  it('createKey refuses every bad tag with InvalidRequest; a record edited on disk opens with the bad tags dropped', async () => {
    const dir = join(makeTempDir('kms-hostile-lib-'), 'kms');
    let kms = await KmsManager.create(KmsConfig.local(dir));
    try {
      for (const [key, value] of BAD_TAGS) {
        const r = await codeOf(kms.createKey('lib-bad', { tags: tagsWith(key, value) }));
        expect(r.code, `${shown(key)}: ${r.message}`).toBe('InvalidRequest');
      }
      expect((await codeOf(kms.describeKey('lib-bad'))).code).toBe('KeyNotFound');
      await kms.createKey('lib-victim', { tags: { team: 'storage' } });
    } finally {
      await kms.close();
    }
    rewriteTags(join(dir, 'keys', 'lib-victim.json'), HOSTILE_TAGS_JSON);
    kms = await KmsManager.create(KmsConfig.local(dir));
    try {
      const info = await kms.describeKey('lib-victim');
      expect({ ...info.tags }).toEqual({ team: 'storage' });
      expect(Object.getPrototypeOf(info.tags)).toBeNull();
      expect(Object.keys(info.tags)).toEqual(['team']);
      expect((await kms.listKeys()).keys.map((k) => k.keyId)).toContain('lib-victim');
    } finally {
      await kms.close();
    }
  });
});

describe('tag names in a crafted backup (rustfs-kms restore)', () => {
  it('restore refuses a backup record with a bad tag, naming it, and writes nothing; the honest backup restores and serves', async () => {
    const a = await startDaemon();
    const kms = await KmsClient.connect(a.socketPath, { reconnect: false });
    await kms.createKey('alpha', { tags: { team: 'storage' } });
    await kms.close();
    expect(await a.stop()).toBe(0);
    const backupFile = join(a.dir, 'keys.backup.json');
    const made = await runCli(['backup', backupFile, '--state-dir', a.stateDir]);
    expect(made.code, made.stderr).toBe(0);
    const honest = readFileSync(backupFile, 'utf8');

    for (const [key, value] of BAD_TAGS) {
      // The hostile file: the record's tags replaced, the checksum recomputed so only the tag is wrong.
      const doc = JSON.parse(honest.replace(/"tags": \{[^}]*\}/, `"tags": {${JSON.stringify(key)}: ${JSON.stringify(value)}}`)) as { records: unknown[]; records_sha256: string };
      doc.records_sha256 = createHash('sha256').update(JSON.stringify(doc.records)).digest('hex');
      const crafted = join(a.dir, 'crafted.json');
      writeFileSync(crafted, JSON.stringify(doc), { mode: 0o600 });
      const target = join(makeTempDir('kms-hostile-restore-'), 'state');
      mkdirSync(target, { mode: 0o700 });
      copyFileSync(join(a.stateDir, 'root.key'), join(target, 'root.key'));
      const r = await runCli(['restore', crafted, '--state-dir', target]);
      expect(r.code, `${shown(key)}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toContain('alpha');
      expect(r.stderr).toMatch(/tag (key )?"/);
      expect(existsSync(join(target, 'keys', 'alpha.json'))).toBe(false);
    }

    const dir = makeTempDir('kms-hostile-restore-');
    const target = join(dir, 'state');
    mkdirSync(target, { mode: 0o700 });
    copyFileSync(join(a.stateDir, 'root.key'), join(target, 'root.key'));
    const restored = await runCli(['restore', backupFile, '--state-dir', target]);
    expect(restored.code, restored.stderr).toBe(0);
    const b = await startDaemon({ dir, stateDir: target });
    const c = await RawConn.open(b.socketPath);
    try {
      const described = await c.call(1, 'describe_key', { key_id: 'alpha' });
      expect(described.result?.tags, JSON.stringify(described)).toEqual({ team: 'storage' });
    } finally {
      c.close();
    }
    await expectHealthy(b.socketPath);
    expect(await b.stop()).toBe(0);
  });
});

describe('tag names in a record another host wrote into Vault KV', () => {
  it('a shared record with bad tags is adopted with them dropped, at sync and at start-up; describe_key and list_keys keep answering', async () => {
    const target = await openTarget();
    const b = await setupBackends(target);
    const A = await startVaultDaemon({ target, backends: b, auth: { method: 'token', token: await policyToken(target, b) } });
    let second: Awaited<ReturnType<typeof startVaultDaemon>> | undefined;
    try {
      await A.kms.createKey('shared', { tags: { team: 'storage' } });
      const sealed = await A.kms.encrypt('shared', Buffer.from('shared secret'));

      // The hostile host: the record rewritten with bad tags (check-and-set on the current version),
      // and the sync marker bumped to name it, as an honest writer does.
      const path = `${b.kvMount}/data/${b.prefix}/shared`;
      const stored = await target.must('GET', path);
      const data = JSON.parse(JSON.stringify(stored?.data?.data).replace(/"tags":\{[^}]*\}/, `"tags":${HOSTILE_TAGS_JSON.replace('"team"', '"seen":"yes","team"')}`)) as Record<string, unknown>;
      expect(Object.keys(data.tags as object)).toContain('__proto__');
      await target.must('POST', path, { data, options: { cas: stored?.data?.metadata?.version } });
      const marker = await target.must('GET', `${b.kvMount}/metadata/${b.prefix}/.generation`);
      await target.must('POST', `${b.kvMount}/data/${b.prefix}/.generation`, {
        data: { key_id: 'shared', at: Date.now(), by: 'hostile' }, options: { cas: marker?.data?.current_version },
      });

      const c = await RawConn.open(A.daemon.socketPath);
      try {
        let id = 0;
        await waitFor('host A to adopt the rewritten record', async () => {
          const r = await c.call(++id, 'describe_key', { key_id: 'shared' });
          expect(r.ok, JSON.stringify(r)).toBe(true);
          return r.result.tags.seen === 'yes' ? r : undefined;
        });
        const described = await c.call(++id, 'describe_key', { key_id: 'shared' });
        expect(described.result.tags).toEqual({ seen: 'yes', team: 'storage' });
        const listed = await c.call(++id, 'list_keys', {});
        expect(listed.ok, JSON.stringify(listed)).toBe(true);
      } finally {
        c.close();
      }
      await expectHealthy(A.daemon.socketPath);

      // A host that starts now reads the record at start-up.
      second = await startVaultDaemon({ target, backends: b, auth: { method: 'token', token: await policyToken(target, b) } });
      const info = await second.kms.describeKey('shared');
      expect({ ...info.tags }).toEqual({ seen: 'yes', team: 'storage' });
      expect((await second.kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('shared secret');
      await expectHealthy(second.daemon.socketPath);
      expect(second.daemon.stderr()).toContain('tags that break the tag rules');
    } finally {
      await second?.stop();
      await A.stop();
      await teardownBackends(target, b);
      await target.close();
    }
  });
});
