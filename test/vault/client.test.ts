// The Vault client, the Transit root and the KV keystore in process (no daemon): node-vault's sharp
// edges, deadlines and retries, re-login on 403, check-and-set conflicts, sync, and the key service's
// health while Vault is away.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { VaultClient, VaultResponseError, VaultUnavailableError, type VaultAuthOptions } from '../../src/vault/client.js';
import { VaultTransitRoot } from '../../src/roots/vault-transit.js';
import { VaultKvKeystore } from '../../src/keystore/vault-kv.js';
import { RevisionConflict, type KeyRecord } from '../../src/keystore/types.js';
import { KeyService } from '../../src/keys/service.js';
import { keyMaterialAad } from '../../src/roots/types.js';
import { native } from '../../src/native/index.js';
import { KmsError } from '../../src/errors.js';
import { cleanupTempDirs, makeTempDir } from '../helpers/daemon.js';
import {
  NEEDS_TEST_SERVER, REAL_VAULT, openTarget, policyToken, setupAppRole, setupBackends, teardownAuth, teardownBackends,
  type Backends, type VaultTarget,
} from './target.js';

let target: VaultTarget;
let b: Backends;
let token: string;
const clients: VaultClient[] = [];

beforeAll(async () => {
  native.setAllowUnlockedMemory(true);
  target = await openTarget();
  b = await setupBackends(target);
  token = await policyToken(target, b);
});

afterEach(() => {
  if (target.server !== undefined) {
    target.server.delayMs = 0;
    target.server.sealed = false;
  }
});

afterAll(async () => {
  for (const c of clients) c.close();
  await target.server?.up();
  await teardownBackends(target, b);
  await target.close();
  cleanupTempDirs();
});

function client(auth: VaultAuthOptions = { method: 'token', token }, extra: Partial<ConstructorParameters<typeof VaultClient>[0]> = {}): VaultClient {
  const c = new VaultClient({
    address: target.address, namespace: b.namespace, auth, tls: target.caFile !== undefined ? { caFile: target.caFile } : {},
    timeoutMs: 5000, retryAttempts: 2, ...extra,
  });
  clients.push(c);
  return c;
}

function record(keyId: string, description = ''): KeyRecord {
  return {
    keyId, state: 'Enabled', origin: 'vault', description, tags: { a: 'b' }, createdAt: Date.now(), currentVersion: 1,
    versions: [{ version: 1, createdAt: Date.now(), wrappedMaterial: Buffer.from('vault:v1:AAAA').toString('base64'), rootRef: 'vault-transit:x/y' }],
    revision: 0,
  };
}

describe('node-vault, guarded', () => {
  it('ignores VAULT_TOKEN, VAULT_NAMESPACE, VAULT_PREFIX and proxy variables from the environment', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      VAULT_TOKEN: 'hvs.from-the-environment', VAULT_NAMESPACE: 'not-ours', VAULT_PREFIX: '/nope',
      HTTP_PROXY: 'http://127.0.0.1:9', HTTPS_PROXY: 'http://127.0.0.1:9', http_proxy: 'http://127.0.0.1:9',
    });
    try {
      const c = client();
      const body = await c.read(`${b.transitMount}/keys/${b.transitKey}`);
      expect(body?.data).toMatchObject({ name: b.transitKey, type: 'aes256-gcm96' });
      if (target.server !== undefined) {
        const last = target.server.requests[target.server.requests.length - 1];
        expect(last?.namespace).toBe('');
        expect(last?.path).toBe(`${b.transitMount}/keys/${b.transitKey}`);
      }
    } finally {
      for (const k of ['VAULT_TOKEN', 'VAULT_NAMESPACE', 'VAULT_PREFIX', 'HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });

  it('a 4xx is a VaultResponseError with Vault\'s errors; LIST of nothing is an empty list', async () => {
    const c = client();
    const err = await c.write(`${b.transitMount}/decrypt/${b.transitKey}`, { ciphertext: 'vault:v1:AAAA' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultResponseError);
    expect((err as VaultResponseError).status).toBe(400);
    expect(await c.list(`${b.kvMount}/metadata/${b.prefix}/no-such-folder/`)).toEqual([]);
  });
});

describe.skipIf(REAL_VAULT)(`deadlines, retries, re-login${REAL_VAULT ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
  it('every request has a deadline; it is retried with back-off, then reported unavailable; then calls fail fast', async () => {
    const c = client({ method: 'token', token }, { timeoutMs: 150, retryAttempts: 2 });
    await c.read(`${b.transitMount}/keys/${b.transitKey}`); // logged in
    const server = target.server!;
    server.delayMs = 600;
    const before = server.requests.length;
    const err = await c.read(`${b.transitMount}/keys/${b.transitKey}`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VaultUnavailableError);
    expect((err as Error).message).toContain(target.address);
    expect((err as Error).message).toMatch(/no answer within 150 ms/);
    expect(server.requests.length - before).toBe(3); // 1 + 2 retries
    expect(c.state()).toMatchObject({ reachable: false });

    const before2 = server.requests.length;
    await c.read(`${b.transitMount}/keys/${b.transitKey}`).catch(() => undefined);
    expect(server.requests.length - before2).toBe(1); // known down: one try
    server.delayMs = 0;
    await c.read(`${b.transitMount}/keys/${b.transitKey}`);
    expect(c.state().reachable).toBe(true);
  });

  it('403 → one new login, then the same request again; a second 403 is reported', async () => {
    const role = await setupAppRole(target, { ...b, id: `${b.id}-c403` });
    const dir = makeTempDir('kms-vault-client-');
    const roleIdFile = join(dir, 'role-id');
    const secretIdFile = join(dir, 'secret-id');
    writeFileSync(roleIdFile, role.roleId);
    writeFileSync(secretIdFile, role.secretId, { mode: 0o600 });
    chmodSync(secretIdFile, 0o600);
    try {
      const c = client({ method: 'approle', roleIdFile, secretIdFile, mount: role.mount });
      const logins = () => target.server!.requestsTo(`auth/${role.mount}/login`).length;
      await c.read(`${b.transitMount}/keys/${b.transitKey}`);
      expect(logins()).toBe(1);
      target.server!.expireTokens();
      await c.read(`${b.transitMount}/keys/${b.transitKey}`); // no error: re-login and retry
      expect(logins()).toBe(2);
      // A path the policy does not grant: 403, one more login, 403 again → reported.
      const err = await c.read(`${b.kvMount}/data/not-granted`).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VaultResponseError);
      expect((err as VaultResponseError).status).toBe(403);
      expect(logins()).toBe(3);
    } finally {
      await teardownAuth(target, { ...b, id: `${b.id}-c403` }, role.mount);
      token = await policyToken(target, b); // expireTokens() ended the shared one too
    }
  });
});

describe('Transit root', () => {
  it('wraps into vault:vN: bound to the AAD and unwraps into a new slot with the same material', async () => {
    const root = new VaultTransitRoot({ client: client(), mount: b.transitMount, key: b.transitKey });
    const slot = native.slotGenerate();
    const aad = keyMaterialAad('k', 1);
    const wrapped = await root.wrap(slot, aad);
    expect(wrapped.toString('utf8')).toMatch(/^vault:v1:/);
    const back = await root.unwrap(wrapped, aad);
    const probe = (s: typeof slot) => {
      const out = Buffer.alloc(16);
      native.xaesSeal(s, out, Buffer.alloc(24), Buffer.alloc(0), Buffer.from('probe'));
      return out.toString('hex');
    };
    expect(probe(back)).toBe(probe(slot));
    const wrong = await root.unwrap(wrapped, keyMaterialAad('k', 2)).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(KmsError);
    expect((wrong as KmsError).code).toBe('Internal');
    native.slotDestroy(slot);
    native.slotDestroy(back);
  });

  it('with a derived Transit key, also sends the AAD as context', async () => {
    const derived = await setupBackends(target, '', { derived: true });
    try {
      const root = new VaultTransitRoot({ client: client({ method: 'token', token: target.adminToken }), mount: derived.transitMount, key: derived.transitKey });
      const slot = native.slotGenerate();
      const aad = keyMaterialAad('d', 7);
      const wrapped = await root.wrap(slot, aad);
      const back = await root.unwrap(wrapped, aad);
      native.slotDestroy(slot);
      native.slotDestroy(back);
      const noContext = await target.api('POST', `${derived.transitMount}/decrypt/${derived.transitKey}`, {
        ciphertext: wrapped.toString('utf8'), associated_data: aad.toString('base64'),
      });
      expect(noContext.status).toBe(400); // a derived key needs the context the root sent
    } finally {
      await teardownBackends(target, derived);
    }
  });

  it('names the missing Transit key and how to create it', async () => {
    const root = new VaultTransitRoot({ client: client({ method: 'token', token: target.adminToken }), mount: b.transitMount, key: 'no-such-key' });
    const slot = native.slotGenerate();
    const err = await root.wrap(slot, keyMaterialAad('k', 1)).catch((e: unknown) => e);
    native.slotDestroy(slot);
    expect((err as KmsError).code).toBe('BackendUnavailable');
    expect((err as Error).message).toMatch(/does not exist.*vault write -f/);
  });
});

describe('KV keystore', () => {
  const keystore = (fullScanEvery?: number) =>
    new VaultKvKeystore({ client: client(), mount: b.kvMount, prefix: `${b.prefix}/ks`, syncIntervalMs: 3_600_000, ...(fullScanEvery !== undefined ? { fullScanEvery } : {}) });

  it('check-and-set: a stale writer gets RevisionConflict, never a silent overwrite', async () => {
    const one = keystore();
    const two = keystore();
    await one.open();
    await two.open();
    const created = await one.create(record('cas'));
    expect(created.revision).toBe(1);
    expect((await two.create(record('cas')).catch((e: unknown) => e))).toBeInstanceOf(RevisionConflict);
    const seen = await two.get('cas');
    expect(seen?.revision).toBe(1);
    const updated = await one.update({ ...created, description: 'from one' }, 1);
    expect(updated.revision).toBe(2);
    const conflict = await two.update({ ...(seen as KeyRecord), description: 'from two' }, 1).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(RevisionConflict);
    expect((conflict as RevisionConflict).actual).toBe(2);
    expect((await two.get('cas'))?.description).toBe('from one');

    await one.remove('cas', 2);
    await two.remove('cas', 2); // already purged by the other host: done
    expect(await two.get('cas')).toBeUndefined();
    const again = await two.create(record('cas', 'reborn'));
    expect(again.revision).toBeGreaterThanOrEqual(1);
    expect((await one.get('cas'))?.description).toBe('reborn');
  });

  it('sync: a change by another daemon arrives at the next poll; a change by another tool at the next full scan', async () => {
    const writer = keystore();
    const reader = keystore(3);
    await writer.open();
    await reader.open();
    await writer.create(record('synced'));
    for (const id of await reader.listIds()) await reader.get(id);
    const changes: [string, KeyRecord | undefined][] = [];
    reader.watch((id, r) => changes.push([id, r]));

    const stored = await writer.get('synced');
    await writer.update({ ...(stored as KeyRecord), state: 'Disabled' }, (stored as KeyRecord).revision);
    const lists = () => target.server?.requests.filter((r) => r.method === 'LIST').length ?? 0;
    const listsBefore = lists();
    await reader.syncNow(); // poll 1: the marker names the changed key; no listing needed
    expect(changes.map(([id, r]) => [id, r?.state])).toEqual([['synced', 'Disabled']]);
    expect(lists()).toBe(listsBefore);

    // Another tool writes the record without touching the marker: seen at the next full scan.
    const current = await target.must('GET', `${b.kvMount}/data/${b.prefix}/ks/synced`);
    await target.must('POST', `${b.kvMount}/data/${b.prefix}/ks/synced`, { data: { ...current?.data?.data, description: 'by hand' } });
    changes.length = 0;
    await reader.syncNow(); // poll 2: marker unchanged, no full scan due yet
    expect(changes).toEqual([]);
    await reader.syncNow(); // poll 3: the periodic full scan
    expect(changes.map(([id, r]) => [id, r?.description])).toEqual([['synced', 'by hand']]);

    await writer.remove('synced', (await writer.get('synced'))!.revision);
    changes.length = 0;
    await reader.syncNow();
    expect(changes).toEqual([['synced', undefined]]);
    await reader.close();
  });
});

describe('KV keystore on a mount with cas_required', () => {
  it('every write, the sync marker included, is check-and-set, so such a mount works and syncs', async () => {
    const mount = `${b.id}-kvcas`;
    await target.must('POST', `sys/mounts/${mount}`, { type: 'kv', options: { version: '2' } });
    await target.must('POST', `${mount}/config`, { cas_required: true });
    try {
      const admin = client({ method: 'token', token: target.adminToken });
      expect((await target.api('POST', `${mount}/data/without-cas`, { data: { a: 1 } })).status).toBe(400);
      const writer = new VaultKvKeystore({ client: admin, mount, prefix: 'rustfs-kms', syncIntervalMs: 3_600_000 });
      const reader = new VaultKvKeystore({ client: admin, mount, prefix: 'rustfs-kms', syncIntervalMs: 3_600_000, fullScanEvery: 1000 });
      await writer.open();
      await reader.open();
      await reader.listIds();
      const changes: string[] = [];
      reader.watch((id, r) => changes.push(`${id}:${r?.revision ?? 'gone'}`));
      const created = await writer.create(record('strict'));
      await writer.update({ ...created, state: 'Disabled' }, created.revision);
      await reader.syncNow(); // only the marker can have told it
      expect(changes).toEqual(['strict:2']);
      await reader.close();
    } finally {
      await target.api('DELETE', `sys/mounts/${mount}`);
    }
  });
});

describe.skipIf(REAL_VAULT)('key service health while Vault is away', () => {
  it('healthy false, with a detail that names the address; healthy again when Vault returns', async () => {
    const c = client();
    const service = new KeyService({
      root: new VaultTransitRoot({ client: c, mount: b.transitMount, key: b.transitKey }),
      keystore: new VaultKvKeystore({ client: c, mount: b.kvMount, prefix: `${b.prefix}/svc`, syncIntervalMs: 3_600_000 }),
      idleTtlMs: 60_000, offlineTtlMs: 600_000,
    });
    await service.start();
    try {
      await service.createKey('svc');
      expect(await service.health()).toEqual({ healthy: true });
      await target.server!.down();
      const h = await service.health();
      expect(h.healthy).toBe(false);
      expect(h.detail).toContain(target.address);
      expect(h.detail).toMatch(/ECONNREFUSED/);
      expect(service.describe().root).toMatchObject({ type: 'vault-transit', address: target.address, reachable: false });
      await target.server!.up();
      expect(await service.health()).toEqual({ healthy: true });
    } finally {
      await target.server!.up();
      await service.close();
    }
  });
});
