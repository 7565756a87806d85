// The aws-kms root against the REAL daemon and the REAL @aws-sdk/client-kms, talking to the AWS KMS
// API test server (test/aws-kms-server; not AWS) or to real AWS KMS with KMS_TEST_CLOUD=aws.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecryptCommand, EncryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { cleanupTempDirs, makeTempDir, runDaemonExpectingExit, waitFor } from '../helpers/daemon.js';
import { NEEDS_TEST_SERVER, REAL_AWS, awsYaml, codeOf, openAwsTarget, startAwsDaemon, writeSharedCredentials, type AwsDaemon, type AwsTarget } from './aws-target.js';

afterAll(() => cleanupTempDirs());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const wrapCalls = (t: AwsTarget) => (t.server === undefined ? 0 : t.server.count('Encrypt') + t.server.count('Decrypt'));

describe('aws-kms root: lifecycle on the real daemon', () => {
  let t: AwsTarget;
  let d: AwsDaemon;
  const ctx = { bucket: 'photos' };

  beforeAll(async () => {
    t = await openAwsTarget();
    d = await startAwsDaemon({ config: awsYaml(t), env: t.credentialEnv });
  });
  afterAll(async () => {
    await d?.stop();
    await t?.close();
  });

  it('creates and rotates keys; data keys sealed before a restart open after it', async () => {
    const before = t.server?.count('Encrypt') ?? 0;
    expect((await d.kms.createKey('k1')).keyId).toBe('k1');
    const sealedV1 = (await d.kms.encrypt('k1', Buffer.from('version one'), { context: ctx })).ciphertext;
    const dk = await d.kms.generateDataKey('k1', { context: ctx });
    await d.kms.rotateKey('k1');
    expect((await d.kms.describeKey('k1')).currentVersion).toBe(2);
    const sealedV2 = (await d.kms.encrypt('k1', Buffer.from('version two'), { context: ctx })).ciphertext;
    if (t.server !== undefined) expect(t.server.count('Encrypt') - before).toBe(2); // one wrap per version

    const dir = d.dir;
    await d.stop();
    d = await startAwsDaemon({ dir, config: awsYaml(t), env: t.credentialEnv });
    expect((await d.kms.decrypt(sealedV1, { context: ctx })).plaintext.toString()).toBe('version one');
    expect((await d.kms.decrypt(sealedV2, { context: ctx })).plaintext.toString()).toBe('version two');
    expect((await d.kms.decrypt(dk.ciphertext, { context: ctx })).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
    expect((await codeOf(d.kms.decrypt(sealedV1, { context: { bucket: 'other' } }))).code).toBe('InvalidCiphertext');
  });

  it.skipIf(REAL_AWS)(`makes no cloud call per data key once warm${REAL_AWS ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    await d.kms.createKey('warm');
    await d.kms.generateDataKey('warm');
    const calls = wrapCalls(t);
    for (let i = 0; i < 50; i++) {
      const dk = await d.kms.generateDataKey('warm', { context: { i: String(i) } });
      await d.kms.decrypt(dk.ciphertext, { context: { i: String(i) } });
    }
    expect(wrapCalls(t)).toBe(calls);
  });

  it('status and health name the backend and its endpoint', async () => {
    expect((await d.kms.health()).healthy).toBe(true);
    const status = JSON.stringify(await d.kms.status());
    expect(status).toContain('aws-kms');
    if (t.endpoint !== undefined) expect(status).toContain(t.endpoint);
  });
});

describe('the wrap is bound to the cloud key and to the key id and version', () => {
  let t: AwsTarget;
  beforeAll(async () => {
    t = await openAwsTarget();
  });
  afterAll(async () => t?.close());

  it('a blob opens only with the EncryptionContext it was made with (the SDK, directly)', async () => {
    const client = new KMSClient({ region: t.region, ...(t.endpoint !== undefined ? { endpoint: t.endpoint } : {}),
      ...(t.server !== undefined ? { credentials: { accessKeyId: t.server.accessKeyId, secretAccessKey: t.server.secretAccessKey } } : {}) });
    try {
      const plaintext = randomBytes(32);
      const EncryptionContext = { 'rustfs-kms/v1/key': 'a' };
      const { CiphertextBlob } = await client.send(new EncryptCommand({ KeyId: t.keyId, Plaintext: plaintext, EncryptionContext }));
      const back = await client.send(new DecryptCommand({ KeyId: t.keyId, CiphertextBlob, EncryptionContext }));
      expect(Buffer.from(back.Plaintext!).equals(plaintext)).toBe(true);
      await expect(client.send(new DecryptCommand({ KeyId: t.keyId, CiphertextBlob, EncryptionContext: { 'rustfs-kms/v1/key': 'b' } })))
        .rejects.toMatchObject({ name: 'InvalidCiphertextException' });
    } finally {
      client.destroy();
    }
  });

  it.skipIf(REAL_AWS)(`a daemon configured with another cloud key refuses to start over records of the first${REAL_AWS ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    const d1 = await startAwsDaemon({ config: awsYaml(t), env: t.credentialEnv });
    await d1.kms.createKey('bound');
    await d1.stop();
    const other = t.server!.createKey().arn;
    const r = await runDaemonExpectingExit({ dir: d1.dir, config: awsYaml(t, { keyId: other }), env: { HOME: d1.dir, ...t.credentialEnv } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`wrapped by root aws-kms:${t.keyId}`);
    expect(r.stderr).toContain(other);
  });

  it.skipIf(REAL_AWS)(`an alias moved to another key: start-up is refused with KMS's IncorrectKeyException${REAL_AWS ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    const original = t.server!.createKey().keyId;
    t.server!.createAlias('alias/moving', original);
    const d1 = await startAwsDaemon({ config: awsYaml(t, { keyId: 'alias/moving' }), env: t.credentialEnv });
    await d1.kms.createKey('moved');
    const sealed = (await d1.kms.encrypt('moved', Buffer.from('x'))).ciphertext;
    await d1.stop();
    t.server!.updateAlias('alias/moving', t.server!.createKey().keyId);
    const config = awsYaml(t, { keyId: 'alias/moving' });
    const r = await runDaemonExpectingExit({ dir: d1.dir, config, env: { HOME: d1.dir, ...t.credentialEnv } });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/does not open existing key moved: .*IncorrectKeyException/);
    t.server!.updateAlias('alias/moving', original); // and back: the records open again
    const d2 = await startAwsDaemon({ dir: d1.dir, config, env: t.credentialEnv });
    try {
      expect((await d2.kms.decrypt(sealed)).plaintext.toString()).toBe('x');
    } finally {
      await d2.stop();
    }
  });
});

describe.skipIf(REAL_AWS)(`throttling, errors and outage${REAL_AWS ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  let t: AwsTarget;
  let d: AwsDaemon;
  const ctx = { bucket: 'outage' };

  beforeAll(async () => {
    t = await openAwsTarget();
    // idle_ttl_s 1: without the offline window an unused cached version would be gone within ~2 s.
    d = await startAwsDaemon({ config: awsYaml(t, { idleTtlS: 1, offlineTtlS: 3600, timeoutSecs: 3, retryAttempts: 3 }), env: t.credentialEnv });
  });
  afterAll(async () => {
    await t.server?.up().catch(() => undefined);
    await d?.stop();
    await t?.close();
  });

  it('ThrottlingException is retried with back-off and the create succeeds', async () => {
    t.server!.throttle(2);
    expect((await d.kms.createKey('after-throttling')).keyId).toBe('after-throttling');
    expect(t.server!.requests.filter((r) => r.error === 'ThrottlingException')).toHaveLength(2);
  });

  it('a 5xx answer is retried too; more failures than retries is BackendUnavailable naming the code', async () => {
    t.server!.failNext(1, 503);
    expect((await d.kms.createKey('after-503')).keyId).toBe('after-503');
    t.server!.failNext(10, 500);
    const r = await codeOf(d.kms.createKey('after-500s'));
    expect(r.code).toBe('BackendUnavailable');
    expect(r.message).toMatch(/KMSInternalException/);
    t.server!.failNext(0);
  });

  it('AccessDeniedException and DisabledException are named, not retried', async () => {
    t.server!.deny('kms:Encrypt');
    try {
      const before = t.server!.count('Encrypt');
      const r = await codeOf(d.kms.createKey('denied'));
      expect(r.message).toMatch(/AccessDeniedException.*kms:Encrypt/);
      expect(t.server!.count('Encrypt') - before).toBe(1);
    } finally {
      t.server!.allow('kms:Encrypt');
    }
    t.server!.setState(t.keyId, 'Disabled');
    try {
      expect((await codeOf(d.kms.createKey('disabled'))).message).toMatch(/DisabledException/);
    } finally {
      t.server!.setState(t.keyId, 'Enabled');
    }
  });

  it('a KMS slower than timeout_secs: BackendUnavailable within the deadline, cached keys unaffected', async () => {
    await d.kms.createKey('cached-fast');
    const sealed = (await d.kms.encrypt('cached-fast', Buffer.from('fast'))).ciphertext;
    t.server!.delayMs = 5000; // > timeout_secs (3)
    try {
      const r = await codeOf(d.kms.createKey('too-slow'));
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toContain(t.endpoint!);
      expect((await d.kms.decrypt(sealed)).plaintext.toString()).toBe('fast');
    } finally {
      t.server!.delayMs = 0;
    }
    expect((await d.kms.createKey('in-time')).keyId).toBe('in-time');
  });

  it('cloud-side rotation: versions wrapped before it still unwrap after a restart', async () => {
    await d.kms.createKey('pre-rotation');
    const sealed = (await d.kms.encrypt('pre-rotation', Buffer.from('old backing key'))).ciphertext;
    t.server!.rotate(t.keyId);
    await d.kms.createKey('post-rotation');
    const dir = d.dir;
    await d.stop();
    d = await startAwsDaemon({ dir, config: awsYaml(t, { idleTtlS: 1, offlineTtlS: 3600, timeoutSecs: 3, retryAttempts: 3 }), env: t.credentialEnv });
    expect((await d.kms.decrypt(sealed)).plaintext.toString()).toBe('old backing key');
    expect((await d.kms.generateDataKey('post-rotation')).keyId).toBe('post-rotation');
  });

  it('while KMS is down cached versions keep serving; creates and rotations fail with BackendUnavailable; recovery needs no restart', async () => {
    await d.kms.createKey('hot');
    const sealed = (await d.kms.encrypt('hot', Buffer.from('sealed before'), { context: ctx })).ciphertext;
    await t.server!.down();
    await sleep(3000); // > 2 × idle_ttl_s without using "hot"
    expect((await d.kms.decrypt(sealed, { context: ctx })).plaintext.toString()).toBe('sealed before');
    expect((await d.kms.generateDataKey('hot')).plaintext).toHaveLength(32);
    // One at a time: a second call started early would reject before anything awaits it.
    for (const attempt of [() => d.kms.createKey('during-outage'), () => d.kms.rotateKey('hot')]) {
      const r = await codeOf(attempt());
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toContain(t.endpoint!);
    }
    expect((await d.kms.health()).healthy).toBe(false);
    await t.server!.up();
    await waitFor(async () => (await d.kms.health()).healthy, 20_000, 'health after KMS returns');
    expect((await d.kms.createKey('after-outage')).keyId).toBe('after-outage');
    await d.kms.rotateKey('hot');
    expect((await d.kms.decrypt(sealed, { context: ctx })).plaintext.toString()).toBe('sealed before');
  });
});

describe.skipIf(REAL_AWS)(`credentials and environment${REAL_AWS ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  let t: AwsTarget;
  beforeAll(async () => {
    t = await openAwsTarget();
  });
  afterAll(async () => t?.close());

  it("credentials read from the SDK's standard places: a shared credentials file in HOME", async () => {
    const home = makeTempDir('kms-aws-home-');
    writeSharedCredentials(home, t.server!.accessKeyId, t.server!.secretAccessKey);
    const env = { ...t.credentialEnv, AWS_ACCESS_KEY_ID: undefined, AWS_SECRET_ACCESS_KEY: undefined, HOME: home };
    const d = await startAwsDaemon({ config: awsYaml(t), env });
    try {
      expect((await d.kms.createKey('from-shared-file')).keyId).toBe('from-shared-file');
    } finally {
      await d.stop();
    }
  });

  it('a wrong secret is refused by the signature check, and the error names it', async () => {
    const d = await startAwsDaemon({ config: awsYaml(t, { retryAttempts: 0 }), env: { ...t.credentialEnv, AWS_SECRET_ACCESS_KEY: 'not-the-secret' } });
    try {
      const r = await codeOf(d.kms.createKey('bad-secret'));
      expect(r.message).toMatch(/InvalidSignatureException/);
    } finally {
      await d.stop();
    }
  });

  for (const name of ['RUSTFS_KMS_TYPE', 'RUSTFS_KMS_BACKEND']) {
    it(`${name}=aws with RUSTFS_KMS_AWS_* and no config file`, async () => {
      const env = {
        ...t.credentialEnv, [name]: 'aws', RUSTFS_KMS_AWS_KEY_ID: t.keyId, RUSTFS_KMS_AWS_REGION: t.region, RUSTFS_KMS_AWS_ENDPOINT_URL: t.endpoint!,
      };
      const before = t.server!.count('Encrypt');
      const d = await startAwsDaemon({ env });
      try {
        expect((await d.kms.createKey('from-env')).keyId).toBe('from-env');
        expect(t.server!.count('Encrypt')).toBe(before + 1);
      } finally {
        await d.stop();
      }
    });
  }
});
