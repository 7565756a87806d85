// Each way a daemon authenticates to Vault (token, token file, AppRole, Kubernetes), namespaces, TLS
// with a test CA made by openssl, and token upkeep (renewal, re-login after expiry).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir, runDaemonExpectingExit } from '../helpers/daemon.js';
import { secretFile, startVaultDaemon, vaultYaml, waitFor, type VaultDaemon } from './harness.js';
import {
  NEEDS_TEST_SERVER, REAL_VAULT, k8sSigner, makePki, openTarget, policyToken, setupAppRole, setupBackends,
  teardownAuth, teardownBackends, documentedPolicy, type Backends, type VaultTarget,
} from './target.js';

afterAll(() => cleanupTempDirs());

/** Create a key, seal and open a data key: the daemon works end to end. */
async function exercise(d: VaultDaemon, keyId: string): Promise<void> {
  await d.kms.createKey(keyId);
  const dk = await d.kms.generateDataKey(keyId, { context: { k: keyId } });
  const opened = await d.kms.decrypt(dk.ciphertext, { context: { k: keyId } });
  expect(opened.plaintext.equals(dk.plaintext as Buffer)).toBe(true);
  expect(await d.kms.health()).toMatchObject({ healthy: true });
}

describe('auth methods', () => {
  let target: VaultTarget;
  let b: Backends;
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    target = await openTarget();
    b = await setupBackends(target);
  });
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await teardownBackends(target, b);
    await target.close();
  });

  it('token from RUSTFS_KMS_VAULT_TOKEN', async () => {
    const d = await startVaultDaemon({ target, backends: b, auth: { method: 'token', token: await policyToken(target, b) } });
    cleanups.push(() => d.stop());
    await exercise(d, 'via-token');
  });

  it('token file', async () => {
    const dir = makeTempDir('kms-vault-auth-');
    const tokenFile = secretFile(dir, 'vault-token', `${await policyToken(target, b)}\n`);
    const d = await startVaultDaemon({ target, backends: b, dir, auth: { method: 'token', tokenFile } });
    cleanups.push(() => d.stop());
    await exercise(d, 'via-token-file');
  });

  it('refuses a token file that others can read', async () => {
    const dir = makeTempDir('kms-vault-auth-');
    const tokenFile = secretFile(dir, 'vault-token', await policyToken(target, b));
    const { chmodSync } = await import('node:fs');
    chmodSync(tokenFile, 0o644);
    const r = await runDaemonExpectingExit({ dir, config: vaultYaml({ target, backends: b, auth: { method: 'token', tokenFile } }) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Vault token file .* others can access it/);
  });

  it('AppRole: role id and secret id from files, the documented policy', async () => {
    const role = await setupAppRole(target, b);
    cleanups.push(() => teardownAuth(target, b, role.mount));
    const dir = makeTempDir('kms-vault-auth-');
    const d = await startVaultDaemon({
      target, backends: b, dir,
      auth: { method: 'approle', roleIdFile: secretFile(dir, 'role-id', role.roleId), secretIdFile: secretFile(dir, 'secret-id', role.secretId), mount: role.mount },
    });
    cleanups.push(() => d.stop());
    await exercise(d, 'via-approle');
    if (target.server !== undefined) {
      expect(target.server.requestsTo(`auth/${role.mount}/login`).filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(1);
    }
  });

  it('AppRole with a wrong secret id: start-up refused, and the message says why', async () => {
    const role = await setupAppRole(target, { ...b, id: `${b.id}-bad` });
    cleanups.push(() => teardownAuth(target, { ...b, id: `${b.id}-bad` }, role.mount));
    const dir = makeTempDir('kms-vault-auth-');
    const r = await runDaemonExpectingExit({
      dir,
      config: vaultYaml({
        target, backends: b,
        auth: { method: 'approle', roleIdFile: secretFile(dir, 'role-id', role.roleId), secretIdFile: secretFile(dir, 'secret-id', 'not-the-secret'), mount: role.mount },
      }),
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/login \(approle\)/);
    expect(r.stderr).toContain(target.address);
  });

  // Skipped against a real Vault: there the Kubernetes method validates JWTs through a Kubernetes
  // API (TokenReview), which these machines do not have.
  it.skipIf(REAL_VAULT)('Kubernetes: role and service-account JWT file', async () => {
    const signer = k8sSigner();
    const mount = `${b.id}-k8s`;
    await target.must('POST', `sys/auth/${mount}`, { type: 'kubernetes' });
    cleanups.push(() => teardownAuth(target, b, mount));
    await target.must('PUT', `sys/policies/acl/${b.id}`, { policy: documentedPolicy(b) });
    await target.must('POST', `auth/${mount}/config`, { kubernetes_host: 'https://127.0.0.1:1', pem_keys: [signer.publicPem] });
    await target.must('POST', `auth/${mount}/role/rustfs-kms`, {
      bound_service_account_names: ['rustfs-kms'], bound_service_account_namespaces: ['storage'], token_policies: [b.id], token_ttl: '1h',
    });
    const dir = makeTempDir('kms-vault-auth-');
    const jwt = signer.jwt({
      iss: 'kubernetes/serviceaccount', sub: 'system:serviceaccount:storage:rustfs-kms',
      'kubernetes.io/serviceaccount/namespace': 'storage', 'kubernetes.io/serviceaccount/service-account.name': 'rustfs-kms',
      exp: Math.floor(Date.now() / 1000) + 3600,
    });
    const d = await startVaultDaemon({ target, backends: b, dir, auth: { method: 'kubernetes', role: 'rustfs-kms', jwtFile: secretFile(dir, 'sa-token', jwt), mount } });
    cleanups.push(() => d.stop());
    await exercise(d, 'via-kubernetes');
    expect(target.server?.requestsTo(`auth/${mount}/login`).some((r) => r.status === 200)).toBe(true);
  });
});

describe('namespaces', () => {
  let target: VaultTarget;
  let b: Backends;
  let d: VaultDaemon | undefined;
  let supported = true;

  beforeAll(async () => {
    target = await openTarget();
    supported = target.namespaces;
    if (!supported) return;
    const ns = `team-${Math.random().toString(36).slice(2, 8)}`;
    await target.must('POST', `sys/namespaces/${ns}`, {});
    b = await setupBackends(target, ns);
  });
  afterAll(async () => {
    await d?.stop();
    if (supported) {
      await teardownBackends(target, b);
      await target.api('DELETE', `sys/namespaces/${b.namespace}`).catch(() => undefined);
    }
    await target.close();
  });

  it('sends X-Vault-Namespace on every request and keeps its keys in that namespace', async (t) => {
    if (!supported) t.skip('this Vault has no namespaces (Vault Enterprise feature)');
    d = await startVaultDaemon({ target, backends: b, auth: { method: 'token', token: await policyToken(target, b) } });
    await exercise(d, 'tenant-key');
    const fromDaemon = (target.server?.requests ?? []).filter((r) => r.path.startsWith(b.kvMount) || r.path.startsWith(b.transitMount));
    const inNs = await target.api('GET', `${b.kvMount}/data/${b.prefix}/tenant-key`, undefined, { namespace: b.namespace });
    expect(inNs.status).toBe(200);
    const inRoot = await target.api('GET', `${b.kvMount}/data/${b.prefix}/tenant-key`);
    expect(inRoot.status).not.toBe(200);
    if (target.server !== undefined) {
      expect(fromDaemon.length).toBeGreaterThan(3);
      expect(fromDaemon.filter((r) => r.namespace !== b.namespace)).toEqual([]);
    }
  });
});

describe.skipIf(REAL_VAULT)(`TLS with a test CA (${REAL_VAULT ? NEEDS_TEST_SERVER : 'openssl'})`, () => {
  let target: VaultTarget;
  let b: Backends;
  let pki: ReturnType<typeof makePki>;
  const daemons: VaultDaemon[] = [];

  beforeAll(async () => {
    pki = makePki(makeTempDir('kms-vault-pki-'));
    const { readFileSync } = await import('node:fs');
    target = await openTarget({
      tls: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey), clientCa: readFileSync(pki.caFile) },
      caFile: pki.caFile,
      clientCert: pki.clientCert,
      clientKey: pki.clientKey,
    });
    b = await setupBackends(target);
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop();
    await target.close();
  });

  it('verifies Vault with the CA file, presents a client certificate, checks server_name; proxies and VAULT_SKIP_VERIFY=false change nothing', async () => {
    expect(target.address).toMatch(/^https:/);
    const d = await startVaultDaemon({
      target, backends: b,
      auth: { method: 'token', token: await policyToken(target, b) },
      tls: { caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey, serverName: 'vault.test' },
      env: { VAULT_SKIP_VERIFY: 'false', HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9', https_proxy: 'http://127.0.0.1:9' },
    });
    daemons.push(d);
    await exercise(d, 'over-tls');
    const seen = target.server?.requests.filter((r) => r.path.startsWith(b.kvMount)) ?? [];
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((r) => r.clientCertCn === 'rustfs-kms-host')).toBe(true);
  });

  for (const skip of ['false', 'true', '1']) {
    it(`refuses a Vault whose certificate its CA did not sign, even with VAULT_SKIP_VERIFY=${skip}`, async () => {
      const r = await runDaemonExpectingExit({
        config: vaultYaml({ target, backends: b, auth: { method: 'token', token: 'unused' }, tls: { caFile: pki.otherCaFile, certFile: pki.clientCert, keyFile: pki.clientKey } }),
        env: { RUSTFS_KMS_VAULT_TOKEN: 'hvs.unused', VAULT_SKIP_VERIFY: skip },
      });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/certificate/i);
      expect(r.stderr).toContain(target.address);
    });
  }

  it('refuses a certificate for another name (server_name)', async () => {
    const r = await runDaemonExpectingExit({
      config: vaultYaml({ target, backends: b, auth: { method: 'token', token: 'unused' }, tls: { caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey, serverName: 'other.test' } }),
      env: { RUSTFS_KMS_VAULT_TOKEN: 'hvs.unused' },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/other\.test|altnames|hostname/i);
  });

  it('cannot connect without the client certificate the listener requires', async () => {
    const r = await runDaemonExpectingExit({
      config: vaultYaml({ target, backends: b, auth: { method: 'token', token: 'unused' }, tls: { caFile: pki.caFile } }),
      env: { RUSTFS_KMS_VAULT_TOKEN: 'hvs.unused' },
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(target.address);
  });
});

describe('token upkeep', () => {
  let target: VaultTarget;
  let b: Backends;
  const daemons: VaultDaemon[] = [];
  const mounts: string[] = [];

  beforeAll(async () => {
    target = await openTarget();
    b = await setupBackends(target);
  });
  afterAll(async () => {
    for (const d of daemons) await d.stop();
    for (const m of mounts) await teardownAuth(target, b, m);
    await teardownBackends(target, b);
    await target.close();
  });

  async function approleDaemon(id: string, tokenTtl: string, tokenMaxTtl: string): Promise<{ d: VaultDaemon; mount: string }> {
    const bb = { ...b, id: `${b.id}-${id}` };
    const role = await setupAppRole(target, bb, { tokenTtl, tokenMaxTtl });
    mounts.push(role.mount);
    const dir = makeTempDir('kms-vault-renew-');
    const d = await startVaultDaemon({
      target, backends: b, dir,
      auth: { method: 'approle', roleIdFile: secretFile(dir, 'role-id', role.roleId), secretIdFile: secretFile(dir, 'secret-id', role.secretId), mount: role.mount },
    });
    daemons.push(d);
    return { d, mount: role.mount };
  }

  it('renews a short-lived token at 2/3 of its TTL and keeps working past it', async () => {
    const { d } = await approleDaemon('renew', '3s', '1h');
    await d.kms.createKey('renewed');
    if (target.server !== undefined) {
      await waitFor('two renew-self calls', async () => target.server!.requestsTo('auth/token/renew-self').filter((r) => r.status === 200).length >= 2, 20_000);
    } else {
      await new Promise((r) => setTimeout(r, 7000)); // more than twice the TTL
    }
    // Past the first token's TTL: operations that need Vault still work.
    await d.kms.createKey('renewed-2');
    await d.kms.rotateKey('renewed');
  });

  it('logs in again when renewal is capped by the max TTL', async () => {
    const { d, mount } = await approleDaemon('maxttl', '2s', '4s');
    await d.kms.createKey('relogin');
    if (target.server !== undefined) {
      await waitFor('a second AppRole login', async () => target.server!.requestsTo(`auth/${mount}/login`).filter((r) => r.status === 200).length >= 2, 20_000);
    } else {
      await new Promise((r) => setTimeout(r, 9000));
    }
    await d.kms.createKey('relogin-2');
  });

  it.skipIf(REAL_VAULT)('expired token: Vault answers 403, the daemon logs in again and no request fails', async () => {
    const { d, mount } = await approleDaemon('expire', '1h', '4h');
    await d.kms.createKey('before-expiry');
    const logins = () => target.server!.requestsTo(`auth/${mount}/login`).filter((r) => r.status === 200).length;
    const before = logins();
    expect(target.server!.expireTokens()).toBeGreaterThan(0);
    // Every one of these needs Vault (Transit or KV) and must succeed at the first try.
    await d.kms.createKey('after-expiry');
    await d.kms.rotateKey('before-expiry');
    await d.kms.disableKey('after-expiry');
    expect(logins()).toBe(before + 1);
    const refused = target.server!.requests.filter((r) => r.status === 403);
    expect(refused.length).toBeGreaterThanOrEqual(1); // the one request that found the token expired
  });
});
