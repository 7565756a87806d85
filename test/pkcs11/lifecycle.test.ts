// root.type pkcs11 through the REAL daemon process, on a real SoftHSM2 token made for this run:
// `rustfs-kms init`, the whole key lifecycle and every data operation in both modes, a restart,
// and an independent look at the token with OpenSC's pkcs11-tool.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { KmsError } from '../../src/errors.js';
import { cleanupTempDirs, killAllDaemons, runCli, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { haveSoftHsm, listSecretKeys, makeToken, pkcs11Tool, writeConfig, type SoftToken, initEnv } from './harness.js';

async function failure(p: Promise<unknown>): Promise<KmsError> {
  try {
    const value = await p;
    throw new Error(`expected the call to fail, it returned ${JSON.stringify(value)}`);
  } catch (err) {
    if (!(err instanceof KmsError)) throw err;
    return err;
  }
}

/** Algorithm byte and nonce length of an envelope (DESIGN section 5). */
function envelopeParts(blob: Buffer): { algorithm: number; keyId: string; version: number; nonceBytes: number } {
  const n = blob[2] as number;
  const algorithm = blob[1] as number;
  return { algorithm, keyId: blob.toString('utf8', 3, 3 + n), version: blob.readUInt32BE(3 + n), nonceBytes: algorithm === 1 ? 24 : 12 };
}

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

describe.skipIf(!haveSoftHsm()).each([
  { mode: 'wrap' as const, algorithm: 0x01 },
  { mode: 'on-token' as const, algorithm: 0x02 },
])('root.type pkcs11, mode $mode', ({ mode, algorithm }) => {
  let token: SoftToken;
  let configPath: string;
  let config: string;
  let daemon: DaemonHandle;
  let kms: KmsClient;
  const sealedBeforeRestart: { ciphertext: Buffer; plaintext: Buffer; context: Record<string, string> }[] = [];

  const start = async (dir?: string): Promise<void> => {
    daemon = await startDaemon({ config, env: token.env, ...(dir !== undefined ? { dir } : {}) });
    kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
  };

  beforeAll(async () => {
    token = makeToken(`kms-${mode}`);
    configPath = writeConfig(token, { mode });
    config = readFileSync(configPath, 'utf8');
    const init = await runCli(['init', '--config', configPath], { env: initEnv(token) });
    expect(init.code, init.stderr).toBe(0);
    if (mode === 'wrap') expect(init.stdout.toString()).toContain('created root key "rustfs-kms-root"');
    else expect(init.stdout.toString()).toContain('on-token mode needs no root key');
    await start();
  });

  afterAll(async () => {
    await kms?.close();
    if (daemon?.running) await daemon.stop();
  });

  if (mode === 'wrap') {
    it('init refuses to overwrite an existing root key', async () => {
      const again = await runCli(['init', '--config', configPath], { env: initEnv(token) });
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('already exists');
      expect(again.stderr).toContain('refusing to overwrite');
      expect(listSecretKeys(token).filter((k) => k.label === 'rustfs-kms-root')).toHaveLength(1);
    });
  }

  it('health is healthy and names the pkcs11 backend', async () => {
    const h = await kms.health();
    expect(h.healthy).toBe(true);
    expect(h.backend).toBe('pkcs11/file');
    expect((await kms.status()).rootType).toBe('pkcs11');
  });

  it('creates keys with origin pkcs11 and lists them', async () => {
    const info = await kms.createKey('alpha', { description: 'first', tags: { team: 'storage' } });
    expect(info).toMatchObject({ keyId: 'alpha', state: 'Enabled', currentVersion: 1, versions: 1, origin: 'pkcs11' });
    await kms.createKey('beta');
    expect((await failure(kms.createKey('alpha'))).code).toBe('KeyAlreadyExists');
    const list = await kms.listKeys();
    expect(list.keys.map((k) => k.keyId)).toEqual(['alpha', 'beta']);
    expect((await kms.describeKey('beta')).origin).toBe('pkcs11');
  });

  it('encrypt and decrypt bind the context; tampering and a wrong context fail alike', async () => {
    const context = { bucket: 'photos', object: 'a.jpg' };
    const plaintext = Buffer.from('object metadata secret');
    const sealed = await kms.encrypt('alpha', plaintext, { context });
    const parts = envelopeParts(sealed.ciphertext);
    expect(parts).toMatchObject({ algorithm, keyId: 'alpha', version: 1 });
    expect(sealed.ciphertext.length).toBe(7 + 5 + parts.nonceBytes + plaintext.length + 16);
    const opened = await kms.decrypt(sealed.ciphertext, { context });
    expect(opened.plaintext.equals(plaintext)).toBe(true);
    expect(opened.keyVersion).toBe(1);
    expect((await failure(kms.decrypt(sealed.ciphertext, { context: { bucket: 'photos' } }))).code).toBe('InvalidCiphertext');
    const flipped = Buffer.from(sealed.ciphertext);
    flipped[flipped.length - 20] ^= 0x01;
    expect((await failure(kms.decrypt(flipped, { context }))).code).toBe('InvalidCiphertext');
    const truncated = sealed.ciphertext.subarray(0, sealed.ciphertext.length - 1);
    expect((await failure(kms.decrypt(truncated, { context }))).code).toBe('InvalidCiphertext');
    // The other algorithm byte on the same bytes never opens.
    const otherAlg = Buffer.from(sealed.ciphertext);
    otherAlg[1] = algorithm === 1 ? 2 : 1;
    expect((await failure(kms.decrypt(otherAlg, { context }))).code).toBe('InvalidCiphertext');
    // Empty plaintext (a zero-length buffer has a NULL pointer in N-API; the token must still see a valid one).
    const empty = await kms.encrypt('alpha', Buffer.alloc(0), { context });
    expect((await kms.decrypt(empty.ciphertext, { context })).plaintext.length).toBe(0);
    sealedBeforeRestart.push({ ciphertext: sealed.ciphertext, plaintext, context });
  });

  it('generate_data_key: a fresh key and its sealed copy, which decrypts to it', async () => {
    const context = { bucket: 'b1' };
    const dk = await kms.generateDataKey('alpha', { context });
    expect(dk.plaintext?.length).toBe(32);
    expect(envelopeParts(dk.ciphertext).algorithm).toBe(algorithm);
    const back = await kms.decrypt(dk.ciphertext, { context });
    expect(back.plaintext.equals(dk.plaintext as Buffer)).toBe(true);
    const dk64 = await kms.generateDataKey('alpha', { bytes: 64 });
    expect(dk64.plaintext?.length).toBe(64);
    expect((await kms.decrypt(dk64.ciphertext)).plaintext.equals(dk64.plaintext as Buffer)).toBe(true);
    const bare = await kms.generateDataKey('alpha', { withoutPlaintext: true });
    expect(bare.plaintext).toBeUndefined();
    expect((await kms.decrypt(bare.ciphertext)).plaintext.length).toBe(32);
    sealedBeforeRestart.push({ ciphertext: dk.ciphertext, plaintext: dk.plaintext as Buffer, context });
  });

  it('generate_data_key_batch: every key distinct and every envelope opens', async () => {
    const batch = await kms.generateDataKeyBatch('beta', 40, { context: { k: 'v' } });
    expect(batch.keys).toHaveLength(40);
    expect(batch.keyVersion).toBe(1);
    expect(new Set(batch.keys.map((k) => k.plaintext.toString('hex'))).size).toBe(40);
    const opened = await Promise.all(batch.keys.map((k) => kms.decrypt(k.ciphertext, { context: { k: 'v' } })));
    opened.forEach((o, i) => expect(o.plaintext.equals(batch.keys[i]?.plaintext as Buffer)).toBe(true));
  });

  it('many concurrent seals over the session pool', async () => {
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => kms.generateDataKey(i % 2 === 0 ? 'alpha' : 'beta')));
    const opened = await Promise.all(results.map((r) => kms.decrypt(r.ciphertext)));
    opened.forEach((o, i) => expect(o.plaintext.equals(results[i]?.plaintext as Buffer)).toBe(true));
  });

  it('rotate: new seals use version 2, version 1 keeps decrypting, re_encrypt moves blobs', async () => {
    const context = { a: '1' };
    const old = await kms.encrypt('alpha', Buffer.from('v1 data'), { context });
    const rotated = await kms.rotateKey('alpha');
    expect(rotated).toMatchObject({ currentVersion: 2, versions: 2 });
    const fresh = await kms.encrypt('alpha', Buffer.from('v2 data'), { context });
    expect(envelopeParts(fresh.ciphertext)).toMatchObject({ algorithm, version: 2 });
    expect((await kms.decrypt(old.ciphertext, { context })).plaintext.toString()).toBe('v1 data');
    const moved = await kms.reEncrypt(old.ciphertext, { context });
    expect(moved).toMatchObject({ keyId: 'alpha', keyVersion: 2 });
    expect((await kms.decrypt(moved.ciphertext, { context })).plaintext.toString()).toBe('v1 data');
    const across = await kms.reEncrypt(old.ciphertext, { context, destinationKeyId: 'beta' });
    expect(across.keyId).toBe('beta');
    expect((await kms.decrypt(across.ciphertext, { context })).plaintext.toString()).toBe('v1 data');
    sealedBeforeRestart.push({ ciphertext: old.ciphertext, plaintext: Buffer.from('v1 data'), context });
  });

  it('disable, enable, schedule and cancel deletion', async () => {
    await kms.createKey('gamma');
    const blob = (await kms.encrypt('gamma', Buffer.from('g'))).ciphertext;
    expect((await kms.disableKey('gamma')).state).toBe('Disabled');
    expect((await failure(kms.encrypt('gamma', Buffer.from('x')))).code).toBe('KeyDisabled');
    expect((await failure(kms.decrypt(blob))).code).toBe('KeyDisabled');
    expect((await kms.enableKey('gamma')).state).toBe('Enabled');
    expect((await kms.decrypt(blob)).plaintext.toString()).toBe('g');
    const pending = await kms.scheduleKeyDeletion('gamma', 7);
    expect(pending.state).toBe('PendingDeletion');
    expect((await failure(kms.generateDataKey('gamma'))).code).toBe('KeyPendingDeletion');
    expect((await kms.cancelKeyDeletion('gamma')).state).toBe('Disabled');
    await kms.enableKey('gamma');
    expect((await kms.decrypt(blob)).plaintext.toString()).toBe('g');
  });

  it('pkcs11-tool sees only sensitive, never-extractable keys, and cannot read any of them', () => {
    const keys = listSecretKeys(token);
    const expected = mode === 'wrap'
      ? ['rustfs-kms-root']
      : ['rustfs-kms:alpha:1', 'rustfs-kms:alpha:2', 'rustfs-kms:beta:1', 'rustfs-kms:gamma:1'];
    expect(keys.map((k) => k.label).sort()).toEqual(expected.sort());
    for (const key of keys) {
      expect(key.text).toContain('AES length 32');
      expect(key.access).toContain('sensitive');
      expect(key.access).toContain('never extractable');
      expect(key.access.split(', ')).not.toContain('extractable');
      expect(key.usage).toBe('encrypt, decrypt');
      const read = pkcs11Tool(token, ['--read-object', '--type', 'secrkey', '--label', key.label]);
      expect(read.code, `${key.label}: ${read.stdout}`).not.toBe(0);
    }
  });

  if (mode === 'wrap') {
    it('wrap mode: key records hold AES-GCM blobs wrapped by the token root, bound to its check value', () => {
      const record = JSON.parse(readFileSync(join(daemon.stateDir, 'keys', 'alpha.json'), 'utf8')) as {
        versions: { wrappedMaterial: string; rootRef: string }[];
      };
      for (const v of record.versions) {
        expect(Buffer.from(v.wrappedMaterial, 'base64')).toHaveLength(12 + 32 + 16);
        expect(v.rootRef).toMatch(/^pkcs11:kms-wrap:rustfs-kms-root:[0-9a-f]{16}$/);
      }
    });
  } else {
    it('on-token mode: key records hold no material, only the name of the token object', () => {
      const record = JSON.parse(readFileSync(join(daemon.stateDir, 'keys', 'alpha.json'), 'utf8')) as {
        versions: { version: number; wrappedMaterial: string; rootRef: string }[];
      };
      for (const v of record.versions) {
        expect(v.wrappedMaterial).toBe('');
        expect(v.rootRef).toBe(`pkcs11:kms-on-token:rustfs-kms:alpha:${v.version}`);
      }
    });
  }

  it('after a restart, everything sealed before opens and new seals work', async () => {
    const dir = daemon.dir;
    await kms.close();
    expect(await daemon.stop()).toBe(0);
    await start(dir);
    for (const s of sealedBeforeRestart) {
      const opened = await kms.decrypt(s.ciphertext, { context: s.context });
      expect(opened.plaintext.equals(s.plaintext)).toBe(true);
    }
    const dk = await kms.generateDataKey('beta');
    expect((await kms.decrypt(dk.ciphertext)).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
    expect((await kms.describeKey('alpha')).currentVersion).toBe(2);
    expect((await kms.health()).healthy).toBe(true);
  });
});
