// The admin HTTP API of the real daemon (admin_http configured), through two independent SigV4
// clients: curl's own signer and the AWS SDK's signer on a node:http request. Every endpoint under
// both prefixes, every refusal with its status, the audit record of each request.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, makeTempDir, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { curl, freePort, sdkRequest, type Creds, type HttpAnswer } from './clients.js';
import { parsePrometheus } from './prometheus.js';

const R = '/rustfs/admin/v3/kms';
const M = '/minio/admin/v3/kms';
const DAY_MS = 86_400_000;

let daemon: DaemonHandle;
let port: number;
const creds: Creds = { accessKey: 'test-admin', secretKey: randomBytes(24).toString('base64url') };

/** RFC 3986 encoding (encodeURIComponent leaves !'()* alone; SigV4 canonical form does not). */
function enc(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/**
 * Parameters in SigV4's canonical order: curl 7.88 signs the query as written instead of sorting it
 * (fixed in later curl), so an unsorted query would be a curl-side signature error, as on AWS.
 */
function url(path: string, query: Record<string, string> = {}): string {
  const qs = Object.entries(query)
    .map(([k, v]) => `${enc(k)}=${enc(v)}`)
    .sort()
    .join('&');
  return `http://127.0.0.1:${port}${path}${qs === '' ? '' : `?${qs}`}`;
}

type Send = (method: string, path: string, query?: Record<string, string>, body?: string) => Promise<HttpAnswer>;

const clients: Record<string, Send> = {
  curl: (method, path, query = {}, body) => curl(url(path, query), creds, { method, ...(body !== undefined ? { body } : {}) }),
  'aws-sdk signer': (method, path, query = {}, body) =>
    sdkRequest(port, creds, { method, path, query, ...(body !== undefined ? { body } : {}) }),
};

function auditLines(): Array<Record<string, unknown>> {
  return readFileSync(join(daemon.stateDir, 'audit.log'), 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

function expectError(r: HttpAnswer, status: number, code: string, mention?: string | RegExp): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  const body = r.json as { code: string; message: string };
  expect(Object.keys(body).sort()).toEqual(['code', 'message']);
  expect(body.code).toBe(code);
  if (mention !== undefined) expect(body.message).toMatch(mention);
}

let seq = 0;
const kid = (p: string) => `${p}-${++seq}-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  const dir = makeTempDir('kms-http-');
  const secretFile = join(dir, 'admin.secret');
  writeFileSync(secretFile, creds.secretKey + '\n', { mode: 0o600 });
  port = await freePort();
  daemon = await startDaemon({
    dir,
    config: `admin_http: { listen: "127.0.0.1:${port}", access_key: ${creds.accessKey}, secret_key_file: ${secretFile} }\n` +
      'default_key_id: default-key\n',
  });
});

afterAll(async () => {
  if (daemon?.running) expect(await daemon.stop()).toBe(0);
  await killAllDaemons();
  cleanupTempDirs();
});

for (const [clientName, send] of Object.entries(clients)) {
  describe(`every endpoint through ${clientName}`, () => {
    it('GET /rustfs/admin/v3/kms/status: RustFS\'s KmsStatus (test/http/rustfs-routes.test.ts checks every field)', async () => {
      const r = await send('GET', `${R}/status`);
      expect(r.status, r.text).toBe(200);
      expect(r.json).toMatchObject({ backend_type: 'local', backend_status: 'healthy', default_key_id: 'default-key' });
    });

    it('key lifecycle: create, status, list, disable, enable, rotate, delete', async () => {
      const key = kid(`life-${clientName === 'curl' ? 'c' : 's'}`);
      const created = await send('POST', `${R}/key/create`, { keyName: key }, JSON.stringify({ description: 'made over HTTP', tags: { team: 'storage' } }));
      expect(created.status, created.text).toBe(200);
      // RustFS's route 22 shape; this daemon's keyName still names the key.
      expect(created.json).toMatchObject({
        key_id: key,
        key_metadata: { key_id: key, key_state: 'Enabled', key_usage: 'EncryptDecrypt', description: 'made over HTTP', tags: { team: 'storage' } },
      });
      expect((await send('POST', `${R}/key/create`, { keyName: key })).status).toBe(500); // RustFS: any create failure is 500 (X)
      expectError(await send('POST', `${M}/key/create`, { keyName: key }), 409, 'KeyAlreadyExists');

      const status = await send('GET', `${R}/key/status`, { keyName: key });
      expect(status.status).toBe(200);
      expect((status.json as { key_metadata: { key_state: string } }).key_metadata.key_state).toBe('Enabled');

      const list = await send('GET', `${R}/key/list`, { prefix: key, limit: '10' });
      expect(list.status).toBe(200);
      expect(list.json).toMatchObject({ keys: [{ key_id: key }], truncated: false });

      const disabled = await send('PUT', `${R}/key/disable`, { keyName: key });
      expect((disabled.json as { key_metadata: { state: string } }).key_metadata.state).toBe('Disabled');
      const enabled = await send('PUT', `${R}/key/enable`, { keyName: key });
      expect((enabled.json as { key_metadata: { state: string } }).key_metadata.state).toBe('Enabled');

      const rotated = await send('POST', `${R}/key/rotate`, { keyName: key });
      expect(rotated.status).toBe(200);
      expect(rotated.json).toMatchObject({ key_metadata: { current_version: 2, versions: 2 } });

      const before = Date.now();
      const deleted = await send('DELETE', `${R}/key/delete`, { keyName: key, pendingWindowDays: '7' });
      expect(deleted.status, deleted.text).toBe(200);
      const meta = (deleted.json as { key_metadata: { state: string; deletion_date: number } }).key_metadata;
      expect(meta.state).toBe('PendingDeletion');
      expect(meta.deletion_date).toBeGreaterThanOrEqual(before + 7 * DAY_MS);
      expect(meta.deletion_date).toBeLessThan(before + 8 * DAY_MS);
    });

    it('key list pages with marker and limit', async () => {
      const prefix = kid('page');
      const ids = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`];
      for (const id of ids) expect((await send('POST', `${R}/key/create`, { keyName: id })).status).toBe(200);
      const first = await send('GET', `${R}/key/list`, { prefix, limit: '2' });
      const p1 = first.json as { keys: Array<{ key_id: string }>; truncated: boolean; next_marker?: string };
      expect(p1.keys.map((k) => k.key_id)).toEqual(ids.slice(0, 2));
      expect(p1.truncated).toBe(true);
      expect(p1.next_marker).toBe(ids[1]);
      const second = await send('GET', `${R}/key/list`, { prefix, limit: '2', marker: p1.next_marker as string });
      const p2 = second.json as { keys: Array<{ key_id: string }>; truncated: boolean; next_marker?: string };
      expect(p2.keys.map((k) => k.key_id)).toEqual(ids.slice(2));
      expect(p2.truncated).toBe(false);
      expect(p2.next_marker).toBeUndefined();
    });

    it('GET /rustfs/admin/v3/kms/metrics: Prometheus text', async () => {
      const r = await send('GET', `${R}/metrics`);
      expect(r.status).toBe(200);
      expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
      const families = parsePrometheus(r.text);
      for (const name of ['rustfs_kms_operations_total', 'rustfs_kms_operation_duration_seconds', 'rustfs_kms_keys',
        'rustfs_kms_key_cache_unwrapped_versions', 'rustfs_kms_locked_memory_bytes', 'rustfs_kms_http_connections', 'rustfs_kms_socket_connections']) {
        expect(families.has(name), name).toBe(true);
      }
    });

    it('MinIO routes (mc admin kms): create, key status, list, KMS status', async () => {
      const key = kid(`mc-${clientName === 'curl' ? 'c' : 's'}`);
      const created = await send('POST', `${M}/key/create`, { 'key-id': key });
      expect(created.status, created.text).toBe(200);
      expect(created.text).toBe('');

      const status = await send('GET', `${M}/key/status`, { 'key-id': key });
      expect(status.status).toBe(200);
      expect(status.json).toEqual({ 'key-id': key });

      await send('PUT', `${M}/key/disable`, { 'key-id': key });
      const failing = await send('GET', `${M}/key/status`, { 'key-id': key });
      expect(failing.status).toBe(200);
      const f = failing.json as Record<string, string>;
      expect(Object.keys(f).sort()).toEqual(['encryption-error', 'key-id']);
      expect(f['encryption-error']).toMatch(/KeyDisabled/);
      await send('PUT', `${M}/key/enable`, { 'key-id': key });

      const list = await send('GET', `${M}/key/list`, { pattern: `${key.slice(0, -3)}*` });
      expect(list.status).toBe(200);
      const entries = list.json as Array<{ name: string; createdAt: string; createdBy: string }>;
      expect(entries.map((e) => e.name)).toEqual([key]);
      expect(Number.isNaN(Date.parse(entries[0]?.createdAt ?? ''))).toBe(false);

      for (const method of ['GET', 'POST']) {
        const kms = await send(method, `${M}/status`);
        expect(kms.status).toBe(200);
        const body = kms.json as { name: string; 'default-key-id': string; endpoints: Record<string, string> };
        expect(Object.keys(body).sort()).toEqual(['default-key-id', 'endpoints', 'name']);
        expect(body['default-key-id']).toBe('default-key');
        expect(Object.values(body.endpoints)).toEqual(['online']);
      }
      // keyName and key-id are interchangeable on both prefixes.
      expect((await send('GET', `${R}/key/status`, { 'key-id': key })).status).toBe(200);
      expect((await send('GET', `${M}/key/status`, { keyName: key })).status).toBe(200);
    });
  });
}

describe('refusals and their status codes', () => {
  const wrongSecret: Creds = { accessKey: creds.accessKey, secretKey: creds.secretKey + 'x' };
  const wrongKey: Creds = { accessKey: 'someone-else', secretKey: creds.secretKey };

  it('an unsigned request: 403', async () => {
    expectError(await curl(url(`${R}/key/list`), undefined), 403, 'AccessDenied', /not signed/);
  });

  it('a bad signature: 403', async () => {
    const r = await sdkRequest(port, creds, {
      method: 'GET', path: `${R}/key/list`,
      tamper: (req) => {
        const auth = req.headers.authorization as string;
        const last = auth.slice(-1) === '0' ? '1' : '0';
        req.headers.authorization = auth.slice(0, -1) + last;
      },
    });
    expectError(r, 403, 'AccessDenied', /signature does not match/);
  });

  it('the wrong secret key (curl) and the wrong access key: 403', async () => {
    expectError(await curl(url(`${R}/key/list`), wrongSecret), 403, 'AccessDenied', /signature does not match/);
    expectError(await curl(url(`${R}/key/list`), wrongKey), 403, 'AccessDenied', /unknown access key/);
    expectError(await sdkRequest(port, wrongSecret, { method: 'GET', path: `${R}/key/list` }), 403, 'AccessDenied');
  });

  it('an x-amz-date 20 minutes old, or 20 minutes ahead: 403', async () => {
    const old = await sdkRequest(port, creds, { method: 'GET', path: `${R}/key/list`, signingDate: new Date(Date.now() - 20 * 60_000) });
    expectError(old, 403, 'AccessDenied', /minutes from the server's clock/);
    const ahead = await sdkRequest(port, creds, { method: 'GET', path: `${R}/key/list`, signingDate: new Date(Date.now() + 20 * 60_000) });
    expectError(ahead, 403, 'AccessDenied', /minutes from the server's clock/);
  });

  it('a signed request changed on the way (query, body): 403', async () => {
    const key = kid('tamper');
    const query = await sdkRequest(port, creds, {
      method: 'POST', path: `${M}/key/create`, query: { keyName: key },
      tamper: (req) => {
        req.query.keyName = `${key}-other`;
      },
    });
    expectError(query, 403, 'AccessDenied');
    const body = await sdkRequest(port, creds, {
      method: 'POST', path: `${M}/key/create`, query: { keyName: key }, body: '{"description":"a"}',
      tamper: (req) => {
        req.body = Buffer.from('{"description":"b"}');
      },
    });
    expectError(body, 403, 'AccessDenied', /x-amz-content-sha256 does not match/);
    // Without x-amz-content-sha256 the body's own hash is what was signed.
    const unsignedHash = await sdkRequest(port, creds, {
      method: 'POST', path: `${M}/key/create`, query: { keyName: key }, body: '{"description":"a"}', contentSha256: false,
      tamper: (req) => {
        req.body = Buffer.from('{"description":"b"}');
      },
    });
    expectError(unsignedHash, 403, 'AccessDenied');
    expectError(await sdkRequest(port, creds, { method: 'PUT', path: `${R}/key/enable`, query: { keyName: key } }), 404, 'KeyNotFound');
  });

  it('a signature for another region: 403', async () => {
    expectError(await curl(url(`${R}/key/list`), { ...creds, region: 'eu-west-1' }), 403, 'AccessDenied', /region/);
  });

  it('a missing parameter: 400', async () => {
    expectError(await curl(url(`${R}/key/enable`), creds, { method: 'PUT' }), 400, 'InvalidRequest', /keyName/);
    expectError(await curl(url(`${M}/key/create`), creds, { method: 'POST' }), 400, 'InvalidRequest', /key-id/);
  });

  it('bad parameters and bodies: 400', async () => {
    expectError(await curl(url(`${R}/key/enable`, { keyName: 'no/slashes' }), creds, { method: 'PUT' }), 400, 'InvalidKeyId');
    expectError(await curl(url(`${R}/key/enable`, { keyName: 'a', 'key-id': 'b' }), creds, { method: 'PUT' }), 400, 'InvalidRequest', /different keys/);
    expectError(await curl(url(`${R}/key/list`, { limit: 'ten' }), creds), 400, 'InvalidRequest', /limit/);
    expectError(await curl(url(`${R}/key/list`, { limit: '5000' }), creds), 400, 'InvalidRequest', /limit/);
    expectError(await curl(url(`${R}/key/list`, { colour: 'red' }), creds), 400, 'InvalidRequest', /unknown query parameter/);
    expectError(await curl(url(`${M}/key/create`, { keyName: kid('json') }), creds, { method: 'POST', body: '{nope' }), 400, 'InvalidRequest', /JSON/);
    expectError(await curl(url(`${M}/key/create`, { keyName: kid('json') }), creds, { method: 'POST', body: '{"key_id":"x"}' }), 400, 'InvalidRequest', /unknown body field/);
    const days = await curl(url(`${R}/key/delete`, { keyName: kid('days'), pendingWindowDays: '3' }), creds, { method: 'DELETE' });
    expect([400, 404]).toContain(days.status);
  });

  it('an unknown key: 404', async () => {
    expectError(await curl(url(`${R}/key/rotate`, { keyName: 'no-such-key' }), creds, { method: 'POST' }), 404, 'KeyNotFound');
    expectError(await curl(url(`${R}/key/enable`, { keyName: 'no-such-key' }), creds, { method: 'PUT' }), 404, 'KeyNotFound');
    // MinIO's key status reports an unknown key in the body, at 200 (madmin's GetKeyStatus).
    const minio = await curl(url(`${M}/key/status`, { 'key-id': 'no-such-key' }), creds);
    expect(minio.status).toBe(200);
    expect((minio.json as Record<string, string>)['encryption-error']).toMatch(/^KeyNotFound: /);
  });

  it('the signature comes before the route: unsigned or badly signed, a path that does not exist is 403', async () => {
    expectError(await curl(url(`${R}/key/frobnicate`), undefined), 403, 'AccessDenied', /not signed/);
    expectError(await curl(url('/somewhere/else'), { ...creds, secretKey: 'not-the-secret' }), 403, 'AccessDenied', /signature does not match/);
    expectError(await curl(url(`${M}/key/create`, { keyName: 'x' }), undefined, { method: 'GET' }), 403, 'AccessDenied');
  });

  it('an unknown endpoint: 404; the wrong method: 405 with Allow', async () => {
    expectError(await curl(url(`${R}/key/frobnicate`), creds), 404, 'UnknownOperation');
    const r = await curl(url(`${M}/key/create`, { keyName: 'x' }), creds, { method: 'GET' });
    expectError(r, 405, 'UnknownOperation');
    expect(r.headers.allow).toBe('POST');
  });

  it('a body over the route limit: 413, before it is read', async () => {
    const big = JSON.stringify({ description: 'x'.repeat(70 * 1024) });
    const viaCurl = await curl(url(`${M}/key/create`, { keyName: kid('big') }), creds, { method: 'POST', body: big });
    expectError(viaCurl, 413, 'FrameTooLarge', /limit is 65536/);
    const small = await sdkRequest(port, creds, { method: 'PUT', path: `${R}/key/enable`, query: { keyName: 'x' }, body: 'y'.repeat(5000) });
    expectError(small, 413, 'FrameTooLarge', /limit is 4096/);
  });

  it('a state conflict: 409', async () => {
    const key = kid('conflict');
    await curl(url(`${R}/key/create`, { keyName: key }), creds, { method: 'POST' });
    await curl(url(`${R}/key/delete`, { keyName: key, pendingWindowDays: '7' }), creds, { method: 'DELETE' });
    expectError(await curl(url(`${R}/key/enable`, { keyName: key }), creds, { method: 'PUT' }), 409, 'KeyPendingDeletion');
  });
});

describe('audit', () => {
  it('every request, allowed or refused, is audited with source ip, access key and user agent', async () => {
    const key = kid('audited');
    expect((await curl(url(`${R}/key/create`, { keyName: key }), creds, { method: 'POST' })).status).toBe(200);
    // Unverified callers' refusals are aggregated per source and code (one line, then counts): a
    // source of their own makes these the first of their windows, so each is written at once.
    expect((await curl(url(`${R}/key/status`, { keyName: key }), wrongSecret(), { from: '127.0.0.5' })).status).toBe(403);
    expect((await curl(url(`${R}/nothing-here`), creds, { from: '127.0.0.5' })).status).toBe(404);
    const lines = auditLines();
    const created = lines.find((l) => l.op === 'create_key' && l.key_id === key);
    expect(created).toMatchObject({
      transport: 'http', outcome: 'success',
      caller: { kind: 'access-key', access_key: creds.accessKey, source_ip: '127.0.0.1' },
      claimed: { extra: { http_method: 'POST', http_path: `${R}/key/create` } },
    });
    expect((created?.claimed as { user_agent: string }).user_agent).toMatch(/^curl\//);
    const tail = lines.slice(-2);
    expect(tail[0]).toMatchObject({
      op: 'describe_key', transport: 'http', outcome: 'denied', error_code: 'AccessDenied',
      caller: { kind: 'access-key', source_ip: '127.0.0.5' },
      claimed: { extra: { unverified_access_key_sha256_16: createHash('sha256').update(creds.accessKey).digest('hex').slice(0, 16) } },
    });
    expect((tail[0]?.caller as Record<string, unknown>).access_key).toBeUndefined(); // a claim, not an identity
    expect(tail[1]).toMatchObject({ op: 'admin_http', transport: 'http', outcome: 'failure', error_code: 'UnknownOperation' });
  });

  function wrongSecret(): Creds {
    return { accessKey: creds.accessKey, secretKey: 'not-the-secret' };
  }
});

describe('policy', () => {
  it('an explicit policy decides what the admin access key may do', async () => {
    const dir = makeTempDir('kms-http-policy-');
    const secretFile = join(dir, 'admin.secret');
    writeFileSync(secretFile, creds.secretKey, { mode: 0o600 });
    const p = await freePort();
    const d = await startDaemon({
      dir,
      config: `admin_http: { listen: "127.0.0.1:${p}", access_key: ${creds.accessKey}, secret_key_file: ${secretFile} }\n` +
        `policy:\n  - { match: { access_key: ${creds.accessKey} }, allow: [list_keys, status, health] }\n`,
    });
    try {
      const base = `http://127.0.0.1:${p}`;
      expect((await curl(`${base}${R}/key/list`, creds)).status).toBe(200);
      const denied = await curl(`${base}${M}/key/create?keyName=k`, creds, { method: 'POST' });
      expectError(denied, 403, 'AccessDenied', /create_key denied/);
    } finally {
      expect(await d.stop()).toBe(0);
    }
  });
});
