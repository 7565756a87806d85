// The gcp-kms root in-process (CloudRoot over GcpKmsService, real SDK) against the Cloud KMS TEST
// SERVER: the wrap is bound to the key id and version on the cloud side, the slot round-trips through
// locked memory, and the test server's own token endpoint follows RFC 7523.
import { createSign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsError } from '../../src/errors.js';
import { native } from '../../src/native/index.js';
import { CloudRoot } from '../../src/roots/cloud.js';
import { GcpKmsService, classifyGcpError } from '../../src/roots/gcp-kms.js';
import { keyMaterialAad } from '../../src/roots/types.js';
import { cleanupTempDirs, makeTempDir } from '../helpers/daemon.js';
import { GcpKmsTestServer } from '../gcp-kms-server/server.js';
import { NEEDS_TEST_SERVER, REAL_GCP, openGcpTarget, type GcpTarget } from './gcp-target.js';

afterAll(() => cleanupTempDirs());

/** True when both slots hold the same key (a seal by one opens with the other). */
function sameKey(a: ReturnType<typeof native.slotGenerate>, b: ReturnType<typeof native.slotGenerate>): boolean {
  const nonce = Buffer.alloc(24, 7);
  const sealed = Buffer.alloc(16 + 16);
  native.xaesSeal(a, sealed, nonce, Buffer.alloc(16, 1), Buffer.alloc(0));
  return native.xaesOpen(b, Buffer.alloc(16), nonce, sealed, Buffer.alloc(0));
}

describe('gcp-kms root in-process', () => {
  let target: GcpTarget;
  let root: CloudRoot;

  beforeAll(async () => {
    native.setAllowUnlockedMemory(true); // the test runner may lack RLIMIT_MEMLOCK
    target = await openGcpTarget(makeTempDir('kms-gcp-'));
    const service = await GcpKmsService.open({
      config: { keyName: target.keyName, credentialsFile: target.credentialsFile, ...(target.endpoint !== undefined ? { endpoint: target.endpoint } : {}) },
      env: {},
    });
    root = new CloudRoot(service, { timeoutMs: 5000, retryAttempts: 1 });
  });
  afterAll(async () => {
    await root?.close();
    await target?.close();
  });

  it('wraps bound to key id and version: the same binding opens it, another is refused by the cloud', async () => {
    const slot = native.slotGenerate();
    const blob = await root.wrap(slot, keyMaterialAad('k', 1));
    expect(blob[0]).toBe(0x01);
    const back = await root.unwrap(blob, keyMaterialAad('k', 1));
    expect(sameKey(slot, back)).toBe(true);
    if (target.server !== undefined) expect(target.server.decryptAads.at(-1)).toBe(keyMaterialAad('k', 1).toString('base64'));
    for (const wrong of [keyMaterialAad('k', 2), keyMaterialAad('other', 1)]) {
      const err = await root.unwrap(blob, wrong).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(KmsError);
      expect((err as KmsError).code).toBe('Internal');
      expect((err as Error).message).toContain('INVALID_ARGUMENT');
    }
    const tampered = Buffer.from(blob);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] as number) ^ 1;
    expect(((await root.unwrap(tampered, keyMaterialAad('k', 1)).catch((e: unknown) => e)) as KmsError).code).toBe('Internal');
    native.slotDestroy(slot);
    native.slotDestroy(back);
  });

  it('describe names the key, the endpoint and where the credentials come from, never their content', () => {
    const d = root.describe();
    expect(d.type).toBe('gcp-kms');
    expect(d.key).toBe(target.keyName);
    expect(d.credentials).toContain(target.credentialsFile);
    expect(JSON.stringify(d)).not.toContain('PRIVATE KEY');
  });

  it('classifies Google errors: throttling and UNAVAILABLE retry, a failed decrypt is a rejection', () => {
    const body = (code: number, status: string, message: string) => Object.assign(new Error(JSON.stringify({ error: { code, message, status } })), { response: { status: code } });
    expect(classifyGcpError(body(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded'))).toMatchObject({ code: 'RESOURCE_EXHAUSTED', retryable: true, rejected: false });
    expect(classifyGcpError(body(503, 'UNAVAILABLE', 'down'))).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
    expect(classifyGcpError(body(400, 'INVALID_ARGUMENT', 'Decryption failed: verify'))).toMatchObject({ code: 'INVALID_ARGUMENT', rejected: true, retryable: false, message: 'Decryption failed: verify' });
    expect(classifyGcpError(body(403, 'PERMISSION_DENIED', 'denied'))).toMatchObject({ retryable: false, rejected: false });
    expect(classifyGcpError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toMatchObject({ code: 'ECONNREFUSED', retryable: true });
  });
});

describe.skipIf(REAL_GCP)(`Cloud KMS test server: OAuth token endpoint${REAL_GCP ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  it('issues an access token for a JWT assertion signed by the service account, and refuses a forged one', async () => {
    const server = await GcpKmsTestServer.start();
    try {
      const sa = server.serviceAccount('token@rustfs-test.iam.gserviceaccount.com');
      server.createKey('projects/p1/locations/l/keyRings/r/cryptoKeys/k');
      const now = Math.floor(Date.now() / 1000);
      const assertion = (key: string): string => {
        const head = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: sa.private_key_id })).toString('base64url');
        const claims = Buffer.from(JSON.stringify({ iss: sa.client_email, aud: sa.token_uri, scope: 'https://www.googleapis.com/auth/cloud-platform', iat: now, exp: now + 600 })).toString('base64url');
        return `${head}.${claims}.${createSign('sha256').update(`${head}.${claims}`).sign(key, 'base64url')}`;
      };
      const grant = (a: string) => fetch(sa.token_uri, { method: 'POST', body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer', assertion: a }) });
      const ok = await grant(assertion(sa.private_key));
      expect(ok.status).toBe(200);
      const { access_token } = (await ok.json()) as { access_token: string };
      const get = await fetch(`${server.endpoint}/v1/projects/p1/locations/l/keyRings/r/cryptoKeys/k`, { headers: { authorization: `Bearer ${access_token}` } });
      expect(((await get.json()) as { purpose: string }).purpose).toBe('ENCRYPT_DECRYPT');
      const forged = server.serviceAccount('other@rustfs-test.iam.gserviceaccount.com');
      const bad = await grant(assertion(forged.private_key));
      expect(bad.status).toBe(401);
      expect(((await bad.json()) as { error: { status: string } }).error.status).toBe('UNAUTHENTICATED');
    } finally {
      await server.stop();
    }
  });
});
