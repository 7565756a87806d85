// RustFS's KMS admin contract (rustfs/rustfs@20d1266496ba, reference §1.3): every one of the 31
// routes of a real daemon, through the AWS SDK's signer (and curl's for a few), each answer checked
// field by field against the contract's shapes, with the error channel (X, J, T) of each failure.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, makeTempDir, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { curl, freePort, sdkRequest, type Creds, type HttpAnswer } from './clients.js';
import {
  CAPABILITIES, IMPACT, KEY_INFO, KEY_METADATA, KEY_RESULT, KMS_STATUS, LIST_LEGACY, LIST_MODERN, SVC_RESULT, ZONED, expectShape,
} from './rustfs-shapes.js';

const R = '/rustfs/admin/v3/kms';
let daemon: DaemonHandle;
let port: number;
const creds: Creds = { accessKey: 'rustfs-admin', secretKey: randomBytes(24).toString('base64url') };

function send(method: string, path: string, query: Record<string, string> = {}, body?: unknown, c: Creds = creds): Promise<HttpAnswer> {
  const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return sdkRequest(port, c, { method, path: R + path, query, ...(text !== undefined ? { body: text } : {}) });
}

function expectOk(r: HttpAnswer): Record<string, unknown> {
  expect(r.status, r.text).toBe(200);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  return r.json as Record<string, unknown>;
}

/** RustFS's X channel: S3 XML <Error><Code>…</Code><Message>…</Message>…</Error>. */
function expectXml(r: HttpAnswer, status: number, code: string, mention?: RegExp): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/xml/);
  expect(r.text).toMatch(new RegExp(`<Error><Code>${code}</Code><Message>`));
  if (mention !== undefined) expect(r.text).toMatch(mention);
}

/** RustFS's J channel: the route's own JSON type with success:false and a message. */
function expectJ(r: HttpAnswer, status: number, mention?: RegExp): Record<string, unknown> {
  expect(r.status, r.text).toBe(status);
  const body = r.json as Record<string, unknown>;
  expect(body.success).toBe(false);
  expect(typeof body.message).toBe('string');
  if (mention !== undefined) expect(body.message).toMatch(mention);
  return body;
}

let n = 0;
const kid = (p: string) => `${p}-${++n}-${randomBytes(3).toString('hex')}`;

async function createKey(name: string, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await send('POST', '/keys', {}, { tags: { name }, ...extra });
  expect(r.status, r.text).toBe(200);
}

beforeAll(async () => {
  const dir = makeTempDir('kms-rustfs-');
  const secretFile = join(dir, 'admin.secret');
  writeFileSync(secretFile, creds.secretKey + '\n', { mode: 0o600 });
  port = await freePort();
  daemon = await startDaemon({
    dir,
    config: `admin_http: { listen: "127.0.0.1:${port}", access_key: ${creds.accessKey}, secret_key_file: ${secretFile} }\n` +
      'default_key_id: rustfs-default\n' +
      'policy:\n' +
      `  - { match: { uid: ${process.getuid?.() ?? 0} }, allow: ["*"] }\n` +
      `  - { match: { access_key: ${creds.accessKey} }, allow: ["*"] }\n`,
  });
}, 60_000);

afterAll(async () => {
  if (daemon?.running) expect(await daemon.stop()).toBe(0);
  await killAllDaemons();
  cleanupTempDirs();
});

describe('service control (routes 1–9)', () => {
  it('1 configure: 400 plain text saying how a standalone daemon is configured', async () => {
    const r = await send('POST', '/configure', {}, { backend_type: 'Local', key_dir: '/tmp/x' });
    expect(r.status).toBe(400);
    expect(r.headers['content-type']).toMatch(/^text\/plain/);
    expect(r.text).toMatch(/configured by its config file/);
    expect(r.text).toMatch(/reconfigure/);
  });

  it('2 reconfigure: reloads the config file as SIGHUP does; a configuration body is refused (T)', async () => {
    const r = expectOk(await send('POST', '/reconfigure'));
    expectShape(r, SVC_RESULT);
    expect(r).toMatchObject({ success: true, status: 'Running' });
    expect(r.message).toMatch(/reloaded policy and log level/);
    await expect.poll(() => readFileSync(join(daemon.stateDir, 'audit.log'), 'utf8')).toMatch(/"daemon_reload"/);
    const refused = await send('POST', '/reconfigure', {}, { backend_type: 'Local', key_dir: '/x' });
    expect(refused.status).toBe(400);
    expect(refused.text).toMatch(/send an empty body/);
    const badJson = await send('POST', '/start', {}, '{nope');
    expect(badJson.status).toBe(400);
    expect(badJson.headers['content-type']).toMatch(/^text\/plain/);
  });

  it('3 start, 4 stop: 200 success:false, saying that systemd starts and stops the daemon', async () => {
    for (const [path, mention] of [['/start', /already running/], ['/stop', /systemctl stop/]] as const) {
      const r = expectOk(await send('POST', path, {}, path === '/start' ? { force: true } : undefined));
      expectShape(r, SVC_RESULT);
      expect(r).toMatchObject({ success: false, status: 'Running' });
      expect(r.message).toMatch(mention);
    }
    expect(daemon.running).toBe(true);
  });

  it('5 service-status: Running, the backend in enum spelling, a ConfigSummary', async () => {
    const r = expectOk(await send('GET', '/service-status'));
    expectShape(r, { status: 'string', backend_type: ['Local', 'VaultKV2', 'VaultTransit', 'Static', 'AWS'], healthy: 'boolean|null', config_summary: 'object|null' });
    expect(r).toMatchObject({ status: 'Running', backend_type: 'Local', healthy: true });
    expectShape(r.config_summary, {
      backend_type: ['Local', 'VaultKV2', 'VaultTransit', 'Static', 'AWS'], default_key_id: 'string|null', timeout_seconds: 'number',
      retry_attempts: 'number', enable_cache: 'boolean', max_cached_keys: 'number', cache_ttl_seconds: 'number', cache_summary: 'object|null',
      backend_summary: 'object',
    }, 'config_summary');
    const local = (r.config_summary as Record<string, unknown>).backend_summary;
    expectShape(local, { backend_type: ['local'], key_dir: 'string', has_master_key: 'boolean', file_permissions: 'number' }, 'backend_summary');
    expect((local as { key_dir: string }).key_dir).toBe(join(daemon.stateDir, 'keys'));
  });

  it('6/7 status (GET and POST): KmsStatus with capabilities and this node\'s config fingerprint', async () => {
    for (const method of ['GET', 'POST']) {
      const r = expectOk(await send(method, '/status'));
      expectShape(r, KMS_STATUS);
      expect(r).toMatchObject({ backend_type: 'local', backend_status: 'healthy', default_key_id: 'rustfs-default' });
      expectShape(r.capabilities, CAPABILITIES, 'capabilities');
      const cluster = r.cluster_config as { consistent: boolean; nodes: Array<Record<string, unknown>> };
      expect(cluster.consistent).toBe(true);
      expect(cluster.nodes).toHaveLength(1);
      expectShape(cluster.nodes[0], { host: 'string', config_fingerprint: 'string|null', 'error?': 'string' }, 'node');
      expect(cluster.nodes[0]?.config_fingerprint).toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('8 config, 9 clear-cache', async () => {
    const c = expectOk(await send('GET', '/config'));
    expectShape(c, { backend: 'string', cache_enabled: 'boolean', cache_max_keys: 'number', cache_ttl_seconds: 'number', default_key_id: 'string|null' });
    expect(c).toMatchObject({ backend: 'local', default_key_id: 'rustfs-default' });
    const key = kid('cache');
    await createKey(key);
    const dk = expectOk(await send('POST', '/generate-data-key', {}, { key_id: key, key_spec: 'Aes256' }));
    const cleared = expectOk(await send('POST', '/clear-cache'));
    expect(cleared).toEqual({ status: 'success', message: 'cache cleared successfully' });
    // The key still works after the cache is gone: it is unwrapped again on use.
    expect((await send('POST', '/generate-data-key', {}, { key_id: key, key_spec: 'Aes128' })).status).toBe(200);
    expect(dk.key_id).toBe(key);
  });
});

describe('key routes (10–20, J channel)', () => {
  it('10 POST /keys: tags.name names the key (else a UUID); KeyResult with KeyMetadata', async () => {
    const key = kid('named');
    const r = expectOk(await send('POST', '/keys', {}, { key_usage: 'EncryptDecrypt', description: 'made by rc', tags: { name: key, team: 'storage' } }));
    expectShape(r, KEY_RESULT);
    expect(r).toMatchObject({ success: true, key_id: key });
    expectShape(r.key_metadata, KEY_METADATA, 'key_metadata');
    expect(r.key_metadata).toMatchObject({ key_id: key, key_state: 'Enabled', key_usage: 'EncryptDecrypt', description: 'made by rc', deletion_date: null, tags: { name: key, team: 'storage' } });
    expect((r.key_metadata as { creation_date: string }).creation_date).toMatch(ZONED);

    const anon = expectOk(await send('POST', '/keys'));
    expect(anon.key_id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expectXml(await send('POST', '/keys', {}, '{nope'), 400, 'InvalidRequest', /invalid JSON/);
    expectXml(await send('POST', '/keys', {}, { key_id: 'x' }), 400, 'InvalidRequest', /unknown field/);
    const dup = expectJ(await send('POST', '/keys', {}, { tags: { name: key } }), 500, /exists/);
    expectShape(dup, KEY_RESULT);
    expectJ(await send('POST', '/keys', {}, { key_usage: 'SignVerify' }), 400, /symmetric/);
  });

  it('11 GET /keys: the listing contract (default 100, cap 1000, bad limit 400, marker exclusive, filters after the cut)', async () => {
    const base = kid('page');
    for (const s of ['a', 'b', 'c']) await createKey(`${base}-${s}`);
    await send('POST', '/keys/disable', {}, { key_id: `${base}-b` });
    const first = expectOk(await send('GET', '/keys', { limit: '2', marker: `${base}-` }));
    expectShape(first, LIST_MODERN);
    const keys = first.keys as Array<Record<string, unknown>>;
    for (const k of keys) expectShape(k, KEY_INFO, 'KeyInfo');
    expect(keys.map((k) => k.key_id)).toEqual([`${base}-a`, `${base}-b`]);
    expect(first).toMatchObject({ success: true, truncated: true, next_marker: `${base}-b` });
    expect(keys[0]).toMatchObject({ algorithm: 'AES_256', usage: 'EncryptDecrypt', status: 'Active', version: 1, rotated_at: null, created_by: null, rotation_due: false });
    expect(keys[0]?.created_at).toMatch(ZONED);
    expect(keys[1]?.status).toBe('Disabled');
    const next = expectOk(await send('GET', '/keys', { limit: '1', marker: `${base}-b` }));
    expect((next.keys as Array<{ key_id: string }>).map((k) => k.key_id)).toEqual([`${base}-c`]);
    // Filters apply after the page is cut: a short page that is still truncated.
    const disabled = expectOk(await send('GET', '/keys', { limit: '2', marker: `${base}-`, status: 'disabled' }));
    expect((disabled.keys as Array<{ key_id: string }>).map((k) => k.key_id)).toEqual([`${base}-b`]);
    expect(disabled.truncated).toBe(true);
    const pending = expectOk(await send('GET', '/keys', { limit: '2', marker: `${base}-`, status: 'Pending_Deletion' }));
    expect(pending.keys).toEqual([]);
    expect(expectOk(await send('GET', '/keys', { limit: '0' }))).toEqual({ success: true, message: '', keys: [], truncated: false, next_marker: null });
    expect(expectOk(await send('GET', '/keys', { usage: 'sign-verify', limit: '5' })).keys).toEqual([]);
    const big = expectOk(await send('GET', '/keys', { limit: '99999999999' }));
    expect((big.keys as unknown[]).length).toBeLessThanOrEqual(1000);
    const dflt = expectOk(await send('GET', '/keys'));
    expect((dflt.keys as unknown[]).length).toBeLessThanOrEqual(100);
    for (const limit of ['abc', '-1', '']) {
      const r = expectJ(await send('GET', '/keys', { limit }), 400, /limit/);
      expectShape(r, LIST_MODERN);
    }
    expectJ(await send('GET', '/keys', { status: 'Gone' }), 400, /status/);
    expectJ(await send('GET', '/keys', { usage: 'Signing' }), 400, /usage/);
  });

  it('12 GET /keys/{key_id}: KeyMetadata, and an impact report only with impact=true', async () => {
    const key = kid('describe');
    await createKey(key, { description: 'd' });
    const r = expectOk(await send('GET', `/keys/${key}`));
    expectShape(r, { success: 'boolean', message: 'string', key_metadata: 'object|null', impact: 'object|null' });
    expect(r.impact).toBeNull();
    expectShape(r.key_metadata, KEY_METADATA, 'key_metadata');
    const withImpact = expectOk(await send('GET', `/keys/${key}`, { impact: 'true' }));
    expectShape(withImpact.impact, IMPACT, 'impact');
    expect(withImpact.impact).toMatchObject({ key_id: key, completeness: 'unavailable', references: [] });
    expect((withImpact.impact as { coverage: { not_scanned: string[] } }).coverage.not_scanned).toHaveLength(4);
    expectJ(await send('GET', `/keys/${key}`, { impact: 'yes' }), 400, /impact/);
    const missing = expectJ(await send('GET', '/keys/no-such-key'), 404);
    expect(missing).toEqual({ success: false, message: missing.message, key_metadata: null, impact: null });
    expectJ(await send('GET', '/keys/bad%2Fid'), 400);
  });

  it('13 DELETE /keys/delete and 14 cancel-deletion: windows 7–30, no immediate deletion, confirm_key_id', async () => {
    const key = kid('del');
    await createKey(key);
    expectJ(await send('DELETE', '/keys/delete', {}, { key_id: key, pending_window_in_days: 3 }), 400, /7 to 30/);
    expectJ(await send('DELETE', '/keys/delete', {}, { key_id: key, force_immediate: true }), 400, /immediate deletion is not allowed/);
    expectJ(await send('DELETE', '/keys/delete', {}, { key_id: key, confirm_key_id: 'other' }), 400, /confirm_key_id/);
    expectJ(await send('DELETE', '/keys/delete', { keyId: key, force_immediate: 'true' }), 400, /query/);
    expectJ(await send('DELETE', '/keys/delete', { keyId: key, confirm_key_id: key }), 400, /body only/);
    expectJ(await send('DELETE', '/keys/delete'), 400, /keyId is required/);
    expectJ(await send('DELETE', '/keys/delete', {}, { key_id: 'no-such-key' }), 404);
    const before = Date.now();
    const r = expectOk(await send('DELETE', '/keys/delete', {}, { key_id: key, pending_window_in_days: 7, confirm_key_id: key }));
    expectShape(r, { success: 'boolean', message: 'string', key_id: 'string', deletion_date: 'string|null', impact: 'object|null' });
    expect(r).toMatchObject({ success: true, key_id: key, impact: null });
    const when = Date.parse(r.deletion_date as string);
    expect(when).toBeGreaterThanOrEqual(before + 7 * 86_400_000 - 2000);
    expect(r.deletion_date).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);

    const cancelled = expectOk(await send('POST', '/keys/cancel-deletion', { keyId: key }));
    expectShape(cancelled, KEY_RESULT);
    expect(cancelled.key_metadata).toMatchObject({ key_state: 'Disabled', deletion_date: null });
    // Every KMS error of cancel-deletion is 500 (no 404), a missing key id 400.
    expectJ(await send('POST', '/keys/cancel-deletion', {}, { key_id: 'no-such-key' }), 500);
    expectJ(await send('POST', '/keys/cancel-deletion', {}, { key_id: key }), 500, /not pending deletion/);
    expectJ(await send('POST', '/keys/cancel-deletion'), 400, /keyId/);
    // The query form, with the default 30-day window.
    const q = expectOk(await send('DELETE', '/keys/delete', { keyId: key, pending_window_in_days: 'soon' }));
    expect(Date.parse(q.deletion_date as string)).toBeGreaterThanOrEqual(before + 30 * 86_400_000 - 2000);
  });

  it('15–17 enable, disable, rotate: KeyResult; invalid state 400, unknown key 404', async () => {
    const key = kid('state');
    await createKey(key);
    const disabled = expectOk(await send('POST', '/keys/disable', {}, { key_id: key }));
    expectShape(disabled, KEY_RESULT);
    expect(disabled.key_metadata).toMatchObject({ key_state: 'Disabled' });
    expectJ(await send('POST', '/keys/rotate', { keyId: key }), 400, /disabled/);
    const enabled = expectOk(await send('POST', '/keys/enable', { keyId: key }));
    expect(enabled.key_metadata).toMatchObject({ key_state: 'Enabled' });
    const rotated = expectOk(await send('POST', '/keys/rotate', {}, { key_id: key }));
    expect(rotated).toMatchObject({ success: true, key_id: key });
    const listed = expectOk(await send('GET', '/keys', { marker: key.slice(0, -1), limit: '1' }));
    expect((listed.keys as Array<{ key_id: string; version: number; rotated_at: string }>)[0]).toMatchObject({ key_id: key, version: 2 });
    expectJ(await send('POST', '/keys/enable', {}, { key_id: 'no-such-key' }), 404);
    expectXml(await send('POST', '/keys/enable', {}, '[1]'), 400, 'InvalidRequest', /JSON object/);
  });

  it('18–20 update-description, tag, untag: the new operations, with their limits', async () => {
    const key = kid('meta');
    await createKey(key, { tags: { name: key, team: 'a' } });
    const d = expectOk(await send('POST', '/keys/update-description', {}, { key_id: key, description: 'new words' }));
    expectShape(d, KEY_RESULT);
    expect(d.key_metadata).toMatchObject({ description: 'new words' });
    expect(expectOk(await send('POST', '/keys/update-description', {}, { key_id: key, description: '' })).key_metadata).toMatchObject({ description: null });
    const t = expectOk(await send('POST', '/keys/tag', {}, { key_id: key, tags: { team: 'b', tier: 'hot' } }));
    expect(t.key_metadata).toMatchObject({ tags: { name: key, team: 'b', tier: 'hot' } });
    const u = expectOk(await send('POST', '/keys/untag', {}, { key_id: key, tag_keys: ['tier', 'absent'] }));
    expect((u.key_metadata as { tags: Record<string, string> }).tags).toEqual({ name: key, team: 'b' });
    expectJ(await send('POST', '/keys/tag', {}, { key_id: key, tags: { name: 'renamed' } }), 400, /reserved/);
    expectJ(await send('POST', '/keys/tag', {}, { key_id: key, tags: { big: 'x'.repeat(300) } }), 400, /256/);
    expectJ(await send('POST', '/keys/update-description', {}, { key_id: key, description: 'x'.repeat(1100) }), 400, /1024/);
    expectJ(await send('POST', '/keys/tag', {}, { key_id: 'no-such-key', tags: { a: 'b' } }), 404);
    expectXml(await send('POST', '/keys/update-description'), 400, 'InvalidRequest', /body is required/);
    expectXml(await send('POST', '/keys/untag', {}, { key_id: key, tag_keys: 'tier' }), 400, 'InvalidRequest', /list of strings/);
  });
});

describe('legacy routes (21–26, X channel)', () => {
  it('21/22 create-key and key/create: { key_id, key_metadata }; MinIO\'s key-id query is ignored', async () => {
    const key = kid('legacy');
    const r = expectOk(await send('POST', '/create-key', {}, { tags: { name: key } }));
    expectShape(r, { key_id: 'string', key_metadata: 'object' });
    expectShape(r.key_metadata, KEY_METADATA, 'key_metadata');
    const viaMinioPath = expectOk(await send('POST', '/key/create', { 'key-id': 'ignored-name' }));
    expect(viaMinioPath.key_id).not.toBe('ignored-name');
    const named = kid('keyname');
    expect(expectOk(await send('POST', '/key/create', { keyName: named })).key_id).toBe(named);
    expectXml(await send('POST', '/create-key', {}, { tags: { name: key } }), 500, 'InternalError', /exists/);
    expectXml(await send('POST', '/create-key', {}, '{'), 400, 'InvalidRequest');
  });

  it('23/24 describe-key and key/status: { key_metadata }; keyId, key-id or key; not found is 500 X', async () => {
    const key = kid('desc');
    await createKey(key);
    for (const [path, param] of [['/describe-key', 'keyId'], ['/key/status', 'key-id'], ['/describe-key', 'key']] as const) {
      const r = expectOk(await send('GET', path, { [param]: key }));
      expect(Object.keys(r)).toEqual(['key_metadata']);
      expectShape(r.key_metadata, KEY_METADATA, 'key_metadata');
    }
    expectXml(await send('GET', '/describe-key'), 400, 'InvalidRequest', /keyId/);
    expectXml(await send('GET', '/key/status', { keyId: 'no-such-key' }), 500, 'InternalError', /does not exist/);
  });

  it('25 list-keys: the same listing without success/message; bad limit 400 InvalidRequest (X)', async () => {
    const r = expectOk(await send('GET', '/list-keys', { limit: '3' }));
    expectShape(r, LIST_LEGACY);
    for (const k of r.keys as unknown[]) expectShape(k, KEY_INFO, 'KeyInfo');
    expectXml(await send('GET', '/list-keys', { limit: 'ten' }), 400, 'InvalidRequest', /limit/);
  });

  it('26 generate-data-key: base64 plaintext and ciphertext; key_spec sizes; curl signs it too', async () => {
    const key = kid('dk');
    await createKey(key);
    const r = expectOk(await send('POST', '/generate-data-key', {}, { key_id: key, key_spec: 'Aes128', encryption_context: { bucket: 'b' } }));
    expectShape(r, { key_id: 'string', plaintext_key: 'string', ciphertext_blob: 'string' });
    expect(Buffer.from(r.plaintext_key as string, 'base64')).toHaveLength(16);
    expect(Buffer.from(r.ciphertext_blob as string, 'base64')[0]).toBe(0x01); // envelope v1
    const viaCurl = await curl(`http://127.0.0.1:${port}${R}/generate-data-key`, creds, { method: 'POST', body: JSON.stringify({ key_id: key, key_spec: 'Aes256' }) });
    expect(viaCurl.status, viaCurl.text).toBe(200);
    expect(Buffer.from((viaCurl.json as { plaintext_key: string }).plaintext_key, 'base64')).toHaveLength(32);
    expectXml(await send('POST', '/generate-data-key', {}, { key_id: key, key_spec: 'Des' }), 400, 'InvalidRequest', /key_spec/);
    expectXml(await send('POST', '/generate-data-key'), 400, 'InvalidRequest', /body is required/);
    expectXml(await send('POST', '/generate-data-key', {}, { key_id: 'no-such-key', key_spec: 'Aes256' }), 500, 'InternalError');
  });
});

describe('backup and restore (27–31)', () => {
  it('27 GET backup, 28 POST backup: the wrapped records in <state_dir>/backups', async () => {
    const s = expectOk(await send('GET', '/backup'));
    expectShape(s, {
      service_status: 'string', backend: 'string|null', responsibility: ['full-material', 'reference-only', 'metadata-plus-external-root', null] as unknown as readonly string[],
      export_supported: 'boolean', deployment_identity: 'string|null', backup_root: 'string|null', backup_kek_configured: 'boolean',
      backup_kek_id: 'string|null', backup_kek_version: 'object|null', target_key_dir: 'string|null', 'unavailable_reason?': 'string',
    });
    expect(s).toMatchObject({ service_status: 'Running', export_supported: true, backup_root: join(daemon.stateDir, 'backups'), target_key_dir: join(daemon.stateDir, 'keys') });
    await createKey(kid('backed-up'));
    const b = expectOk(await send('POST', '/backup', {}, { backup_id: 'nightly-1' }));
    expectShape(b, {
      backup_id: 'string', snapshot_generation: 'number', deployment_identity: 'string', artifact_count: 'number', manifest_digest: 'string',
      backup_kek_id: 'string', backup_kek_version: 'number', sanitized_config_included: 'boolean',
    });
    expect(b.backup_id).toBe('nightly-1');
    expect(b.manifest_digest).toMatch(/^[0-9a-f]{64}$/);
    const file = join(daemon.stateDir, 'backups', 'nightly-1.json');
    expect(existsSync(file)).toBe(true);
    const text = readFileSync(file, 'utf8');
    expect(JSON.parse(text)).toMatchObject({ format: 'rustfs-kms-key-backup', key_count: b.artifact_count });
    expect(text).toContain('wrappedMaterial');
    expectJ(await send('POST', '/backup', {}, { backup_id: 'nightly-1' }), 409, /already exists/);
    expectJ(await send('POST', '/backup', {}, { backup_id: '.hidden' }), 400, /leading dot/);
    expectXml(await send('POST', '/backup', {}, { backup_id: 'x', extra: 1 }), 400, 'InvalidRequest', /unknown field/);
  });

  it('29 restore/dry-run: a report with conflicts; 30 restore: confirmations, then 409 (stop the daemon first); 31 abort', async () => {
    const key = kid('drift');
    await createKey(key);
    expectOk(await send('POST', '/backup', {}, { backup_id: 'before-rotate' }));
    await send('POST', '/keys/rotate', {}, { key_id: key });
    const dry = expectOk(await send('POST', '/restore/dry-run', {}, { bundle: 'before-rotate' }));
    expectShape(dry, { report: 'object', config_comparison: 'object|null' });
    const report = dry.report as { blockers: unknown[]; conflicts: Array<{ key_id: string; kind: string; detail: string }> };
    expectShape(report, { backup_id: 'string', target_deployment_identity: 'string', blockers: 'array', conflicts: 'array', external_mismatches: 'array' }, 'report');
    expect(report.blockers).toEqual([]);
    expect(report.conflicts).toContainEqual({ key_id: key, kind: 'version-regression', detail: expect.stringMatching(/newer on disk/) });
    expectJ(await send('POST', '/restore/dry-run', {}, { bundle: 'missing' }), 400, /no backup named/);

    expectJ(await send('POST', '/restore', {}, { bundle: 'before-rotate', confirm_backup_id: 'other', confirm_conflict_policy: 'fail' }), 400, /confirm_backup_id/);
    expectJ(await send('POST', '/restore', {}, { bundle: 'before-rotate', confirm_backup_id: 'before-rotate', confirm_conflict_policy: 'overwrite' }), 400, /confirm_conflict_policy/);
    const refused = expectJ(await send('POST', '/restore', {}, { bundle: 'before-rotate', confirm_backup_id: 'before-rotate', confirm_conflict_policy: 'fail' }), 409, /rustfs-kms restore/);
    expect(Object.keys(refused).sort()).toEqual(['message', 'success']);

    expectJ(await send('POST', '/restore/abort', {}, { confirm_target_key_dir: '/elsewhere' }), 400, /key directory/);
    expectJ(await send('POST', '/restore/abort', {}, { confirm_target_key_dir: join(daemon.stateDir, 'keys') }), 409, /no restore is in progress/);
  });
});

describe('credentials and policy on RustFS routes', () => {
  it('unsigned → 403 X AccessDenied on J, T and X routes alike', async () => {
    for (const path of ['/keys', '/configure', '/status', '/backup']) {
      const r = await curl(`http://127.0.0.1:${port}${R}${path}`, undefined, { method: path === '/status' ? 'GET' : 'POST' });
      expectXml(r, 403, 'AccessDenied', /not signed/);
    }
  });

  it('kms:* action names in the config decide RustFS routes (and the key routes\' own keys)', async () => {
    const dir = makeTempDir('kms-rustfs-policy-');
    const secretFile = join(dir, 'admin.secret');
    writeFileSync(secretFile, creds.secretKey + '\n', { mode: 0o600 });
    const p = await freePort();
    const d = await startDaemon({
      dir,
      config: `admin_http: { listen: "127.0.0.1:${p}", access_key: ${creds.accessKey}, secret_key_file: ${secretFile} }\n` +
        'policy:\n' +
        `  - { match: { access_key: ${creds.accessKey} }, allow: ["kms:Configure", "kms:DescribeKey", "kms:TagResource"], keys: ["app-*"] }\n`,
    });
    try {
      const call = (method: string, path: string, body?: unknown): Promise<HttpAnswer> =>
        sdkRequest(p, creds, { method, path: R + path, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      expect((await call('POST', '/keys', { tags: { name: 'app-1' } })).status).toBe(200); // kms:Configure grants create
      expect((await call('GET', '/keys/app-1')).status).toBe(200);
      expect((await call('POST', '/keys/tag', { key_id: 'app-1', tags: { a: 'b' } })).status).toBe(200);
      expectXml(await call('POST', '/keys', { tags: { name: 'other-1' } }), 403, 'AccessDenied', /does not cover key other-1/);
      expectXml(await call('POST', '/keys/untag', { key_id: 'app-1', tag_keys: ['a'] }), 403, 'AccessDenied');
      expectXml(await call('GET', '/status'), 403, 'AccessDenied');
      expectXml(await call('POST', '/clear-cache'), 403, 'AccessDenied', /clear_cache denied/);
      expect((await call('GET', '/config')).status).toBe(200); // kms:Configure
      const audit = readFileSync(join(d.stateDir, 'audit.log'), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(audit).toContainEqual(expect.objectContaining({ op: 'clear_cache', outcome: 'denied', error_code: 'AccessDenied' }));
      expect(audit).toContainEqual(expect.objectContaining({ op: 'configure', outcome: 'success' }));
    } finally {
      expect(await d.stop()).toBe(0);
    }
  });
});
