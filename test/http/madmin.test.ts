// MinIO's own admin SDK against the real daemon: a Go client built on madmin-go 2.0.7 from Debian's
// packages (test/http/madmin-client) calls every KMS method madmin offers over /minio/kms/v1, signed
// the way madmin signs (empty region in the credential scope). Skips, saying why, without Go or madmin.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, makeTempDir, repoRoot, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { curl, freePort, sdkRequest, type Creds } from './clients.js';
import { buildMadminClient } from './madmin-build.js';

interface Answer {
  ok: boolean;
  status: number;
  code?: string;
  message?: string;
  value?: unknown;
}

const build = buildMadminClient();
const skip = 'skip' in build ? build.skip : undefined;
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

let daemon: DaemonHandle;
let port: number;
const creds: Creds = { accessKey: 'test-admin', secretKey: randomBytes(24).toString('base64url') };

/** Runs madmin calls in one client process; one answer per call, in order. */
function madmin(calls: string[][], c: Creds = creds): Promise<Answer[]> {
  if (!('binary' in build)) throw new Error(skip);
  return new Promise((resolve, reject) => {
    const p = spawn(build.binary, [`127.0.0.1:${port}`, c.accessKey, c.secretKey], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) reject(new Error(`madmin-client exited with ${code}: ${err}`));
      else resolve(out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Answer));
    });
    p.stdin.end(calls.map((c) => JSON.stringify(c)).join('\n') + '\n');
  });
}

async function one(...call: string[]): Promise<Answer> {
  return (await madmin([call]))[0] as Answer;
}

function expectRefused(a: Answer, status: number, code: string, mention?: RegExp): void {
  expect(a.ok, JSON.stringify(a)).toBe(false);
  expect(a.status).toBe(status);
  expect(a.code).toBe(code);
  if (mention !== undefined) expect(a.message).toMatch(mention);
}

const key = `mc-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  if (skip !== undefined) return;
  const dir = makeTempDir('kms-madmin-');
  const secretFile = join(dir, 'admin.secret');
  writeFileSync(secretFile, creds.secretKey + '\n', { mode: 0o600 });
  port = await freePort();
  daemon = await startDaemon({
    dir,
    config: `admin_http: { listen: "127.0.0.1:${port}", access_key: ${creds.accessKey}, secret_key_file: ${secretFile} }\n` +
      'default_key_id: default-key\n' +
      'policy:\n' +
      `  - { match: { uid: ${process.getuid?.() ?? 0} }, allow: ["*"] }\n` +
      `  - { match: { access_key: ${creds.accessKey} }, allow: ["*"] }\n` +
      '  - { match: { access_key: auditor }, allow: ["kms:ListKeys", "kms:DescribeKey"], keys: ["audit-*"] }\n',
  });
}, 120_000);

afterAll(async () => {
  if (daemon?.running) expect(await daemon.stop()).toBe(0);
  await killAllDaemons();
  cleanupTempDirs();
});

describe.skipIf(skip !== undefined)(`madmin-go 2.0.7 (Debian) against /minio/kms/v1${skip !== undefined ? ` — skipped: ${skip}` : ''}`, () => {
  it('KMSStatus, KMSVersion, KMSAPIs, KMSMetrics decode into madmin\'s types', async () => {
    const [status, version, apis, metrics] = await madmin([['KMSStatus'], ['KMSVersion'], ['KMSAPIs'], ['KMSMetrics']]);
    expect(status).toMatchObject({ ok: true, status: 200 });
    // Values come back re-encoded by Go from madmin's own structs: its json tags name the fields.
    const s = status?.value as { name: string; 'default-key-id': string; endpoints: Record<string, string> };
    expect(s.name).toBe('rustfs-kms');
    expect(s['default-key-id']).toBe('default-key');
    expect(Object.values(s.endpoints)).toEqual(['online']);

    expect(version).toMatchObject({ ok: true, status: 200, value: { version: VERSION } });

    expect(apis?.ok).toBe(true);
    const list = apis?.value as Array<{ Method: string; Path: string; MaxBody: number; Timeout: number }>;
    expect(list).toContainEqual({ Method: 'POST', Path: '/minio/kms/v1/key/create', MaxBody: 65536, Timeout: 30 });
    expect(list).toContainEqual({ Method: 'GET', Path: '/minio/kms/v1/key/status', MaxBody: 4096, Timeout: 10 });
    expect(list.length).toBe(19);

    expect(metrics?.ok, JSON.stringify(metrics)).toBe(true);
    const m = metrics?.value as Record<string, unknown>;
    expect(m.kes_http_request_success as number).toBeGreaterThan(0);
    expect(m.kes_system_up_time as number).toBeGreaterThan(0);
    expect(m.kes_system_num_cpu as number).toBeGreaterThan(0);
    expect(m.kes_system_mem_heap_used as number).toBeGreaterThan(0);
    const hist = m.kes_http_response_time as Record<string, number>;
    expect(Object.keys(hist).length).toBeGreaterThan(0);
    expect(hist['10000000000']).toBeGreaterThanOrEqual(hist['50000'] ?? 0); // cumulative, bounds in ns
  });

  it('CreateKey, GetKeyStatus, ListKeys, DeleteKey: a key\'s life as mc sees it', async () => {
    const [created, again, healthy, listed, all, unknown] = await madmin([
      ['CreateKey', key], ['CreateKey', key], ['GetKeyStatus', key], ['ListKeys', `${key.slice(0, 5)}*`], ['ListKeys', ''],
      ['GetKeyStatus', 'no-such-key'],
    ]);
    expect(created).toEqual({ ok: true, status: 200 });
    expectRefused(again as Answer, 409, 'KeyAlreadyExists');
    expect(healthy).toMatchObject({ ok: true, status: 200, value: { 'key-id': key } });
    expect(Object.keys(healthy?.value as object).sort()).toEqual(['key-id']); // no error fields: healthy
    const names = (listed?.value as Array<{ name: string; createdAt: string }>).map((k) => k.name);
    expect(names).toEqual([key]);
    expect(Number.isNaN(Date.parse((listed?.value as Array<{ createdAt: string }>)[0]?.createdAt ?? ''))).toBe(false);
    expect((all?.value as Array<{ name: string }>).map((k) => k.name)).toContain(key);
    // MinIO reports an unknown key in the body, at 200.
    expect(unknown).toMatchObject({ ok: true, status: 200 });
    expect((unknown?.value as Record<string, string>)['encryption-error']).toMatch(/KeyNotFound/);

    const [deleted, after] = await madmin([['DeleteKey', key], ['GetKeyStatus', key]]);
    expect(deleted).toEqual({ ok: true, status: 200 });
    expect((after?.value as Record<string, string>)['encryption-error']).toMatch(/KeyPendingDeletion/);
    const listed2 = await sdkRequest(port, creds, { method: 'GET', path: '/rustfs/admin/v3/kms/key/list', query: { prefix: key } });
    expect((listed2.json as { keys: Array<{ state: string }> }).keys[0]?.state).toBe('PendingDeletion');
  });

  it('ImportKey and the policy/identity changes: 501 with MinIO\'s error JSON and the reason', async () => {
    const answers = await madmin([
      ['ImportKey', 'imported', '{"bytes":"AAAA"}'], ['SetKMSPolicy', 'p', '{"allow":["*"]}'], ['AssignPolicy', 'p', '{"identity":"x"}'],
      ['DeletePolicy', 'rule-0'], ['DeleteIdentity', 'auditor'],
    ]);
    for (const a of answers) expectRefused(a, 501, 'NotImplemented', /not supported/);
    expect(answers[0]?.message).toMatch(/generated inside the daemon/);
    expect(answers[1]?.message).toMatch(/policy:. section of its config file/);
  });

  it('ListPolicies, DescribePolicy, GetPolicy: the config\'s rules, by position', async () => {
    const [list, described, got, missing] = await madmin([['ListPolicies', ''], ['DescribePolicy', 'rule-1'], ['GetPolicy', 'rule-2'], ['GetPolicy', 'rule-9']]);
    expect((list?.value as Array<{ name: string }>).map((p) => p.name)).toEqual(['rule-0', 'rule-1', 'rule-2']);
    expect(described).toMatchObject({ ok: true, value: { name: 'rule-1', created_by: 'config file (policy:)' } });
    expect(got).toMatchObject({ ok: true, value: { allow: ['kms:ListKeys', 'kms:DescribeKey'], deny: [] } });
    expectRefused(missing as Answer, 404, 'KeyNotFound', /rule-0 … rule-2/);
  });

  it('DescribeIdentity, DescribeSelfIdentity, ListIdentities: access keys of the policy', async () => {
    const [admin, auditor, self, list, nobody] = await madmin([
      ['DescribeIdentity', creds.accessKey], ['DescribeIdentity', 'auditor'], ['DescribeSelfIdentity'], ['ListIdentities', ''], ['DescribeIdentity', 'nobody'],
    ]);
    expect(admin).toMatchObject({ ok: true, value: { policy: 'rule-1', identity: creds.accessKey, isAdmin: true } });
    expect(auditor).toMatchObject({ ok: true, value: { policy: 'rule-2', identity: 'auditor', isAdmin: false } });
    expect(self).toMatchObject({ ok: true, value: { policyName: 'rule-1', identity: creds.accessKey, isAdmin: true, policy: { allow: ['*'], deny: [] } } });
    expect((list?.value as Array<{ identity: string; policy: string }>).map((i) => [i.identity, i.policy])).toEqual([
      [creds.accessKey, 'rule-1'], ['auditor', 'rule-2'],
    ]);
    expect(nobody?.ok).toBe(false);
    expect(nobody?.status).toBe(404);
  });

  it('a wrong secret key: 403 AccessDenied on every method, before any route is looked up', async () => {
    const wrong: Creds = { accessKey: creds.accessKey, secretKey: creds.secretKey + 'x' };
    const calls = [
      ['KMSStatus'], ['KMSMetrics'], ['KMSAPIs'], ['KMSVersion'], ['CreateKey', 'x'], ['DeleteKey', 'x'], ['ImportKey', 'x', 'y'],
      ['ListKeys', ''], ['GetKeyStatus', 'x'], ['SetKMSPolicy', 'p', '{}'], ['AssignPolicy', 'p', '{}'], ['DescribePolicy', 'p'],
      ['GetPolicy', 'p'], ['ListPolicies', ''], ['DeletePolicy', 'p'], ['DescribeIdentity', 'i'], ['DescribeSelfIdentity'],
      ['ListIdentities', ''], ['DeleteIdentity', 'i'],
    ];
    const answers = await madmin(calls, wrong);
    expect(answers.length).toBe(19);
    answers.forEach((a, i) => {
      expect(a.status, JSON.stringify(calls[i])).toBe(403);
      expect(a.code).toBe('AccessDenied');
      expect(a.message).toMatch(/signature does not match/);
    });
  });

  it('unsigned or badly signed requests to paths that do not exist are 403, not 404', async () => {
    const unsigned = await curl(`http://127.0.0.1:${port}/minio/kms/v1/no-such-thing`, undefined);
    expect(unsigned.status).toBe(403);
    expect(unsigned.json).toMatchObject({ Code: 'AccessDenied', Resource: '/minio/kms/v1/no-such-thing' });
    const wrong = await curl(`http://127.0.0.1:${port}/nowhere/at/all`, { ...creds, secretKey: 'wrong-secret' });
    expect(wrong.status).toBe(403);
    const signed = await curl(`http://127.0.0.1:${port}/minio/kms/v1/no-such-thing`, creds);
    expect(signed.status).toBe(404);
    expect(signed.json).toMatchObject({ Code: 'UnknownOperation' });
  });
});
