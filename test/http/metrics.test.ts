// GET .../kms/metrics on the real daemon: strict Prometheus text that counts exactly what this test
// did, over the Unix socket (the pipeline is shared) and over HTTP.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { KmsError } from '../../src/errors.js';
import { cleanupTempDirs, killAllDaemons, makeTempDir, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { curl, freePort, sdkRequest, type Creds } from './clients.js';
import { parsePrometheus, sampleValue, type Family } from './prometheus.js';

let daemon: DaemonHandle;
let port: number;
let kms: KmsClient;
const creds: Creds = { accessKey: 'metrics-admin', secretKey: randomBytes(24).toString('base64url') };

async function scrape(prefix = '/rustfs/admin/v3'): Promise<Map<string, Family>> {
  const r = await sdkRequest(port, creds, { method: 'GET', path: `${prefix}/kms/metrics` });
  expect(r.status, r.text).toBe(200);
  expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheus(r.text);
}

const ops = (op: string, transport: string, outcome: string) => ({ op, transport, outcome });

beforeAll(async () => {
  const dir = makeTempDir('kms-metrics-');
  const secretFile = join(dir, 'admin.secret');
  writeFileSync(secretFile, creds.secretKey, { mode: 0o600 });
  port = await freePort();
  daemon = await startDaemon({
    dir,
    config: `admin_http: { listen: "127.0.0.1:${port}", access_key: ${creds.accessKey}, secret_key_file: ${secretFile} }\n`,
  });
  kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
});

afterAll(async () => {
  await kms?.close();
  if (daemon?.running) expect(await daemon.stop()).toBe(0);
  await killAllDaemons();
  cleanupTempDirs();
});

describe('metrics', () => {
  it('count exactly the generate_data_key calls made over the socket, with their latencies and errors', async () => {
    await kms.createKey('metrics-key');
    const before = await scrape();
    const N = 7;
    for (let i = 0; i < N; i++) await kms.generateDataKey('metrics-key', { context: { i: String(i) } });
    for (let i = 0; i < 2; i++) {
      await expect(kms.generateDataKey('no-such-key')).rejects.toBeInstanceOf(KmsError);
    }
    const after = await scrape();
    const diff = (name: string, labels: Record<string, string>) => sampleValue(after, name, labels) - sampleValue(before, name, labels);

    expect(diff('rustfs_kms_operations_total', ops('generate_data_key', 'socket', 'success'))).toBe(N);
    expect(diff('rustfs_kms_operations_total', ops('generate_data_key', 'socket', 'failure'))).toBe(2);
    expect(diff('rustfs_kms_operations_total', ops('generate_data_key', 'socket', 'denied'))).toBe(0);
    expect(diff('rustfs_kms_operation_errors_total', { op: 'generate_data_key', code: 'KeyNotFound' })).toBe(2);
    expect(diff('rustfs_kms_operation_duration_seconds_count', { op: 'generate_data_key', transport: 'socket' })).toBe(N + 2);
    expect(diff('rustfs_kms_operation_duration_seconds_bucket', { op: 'generate_data_key', transport: 'socket', le: '+Inf' })).toBe(N + 2);
    expect(diff('rustfs_kms_operation_duration_seconds_sum', { op: 'generate_data_key', transport: 'socket' })).toBeGreaterThan(0);
    // Nothing of this went over HTTP; the scrape itself is one status operation there.
    expect(diff('rustfs_kms_operations_total', ops('generate_data_key', 'http', 'success'))).toBe(0);
    expect(diff('rustfs_kms_operations_total', ops('status', 'http', 'success'))).toBe(1);
  });

  it('count admin HTTP answers by route and status, and refusals as denied operations', async () => {
    const before = await scrape();
    const base = `http://127.0.0.1:${port}`;
    expect((await curl(`${base}/rustfs/admin/v3/kms/key/list`, undefined)).status).toBe(403);
    expect((await curl(`${base}/rustfs/admin/v3/kms/key/list`, creds)).status).toBe(200);
    expect((await curl(`${base}/rustfs/admin/v3/kms/key/rotate?keyName=nope`, creds, { method: 'POST' })).status).toBe(404);
    expect((await curl(`${base}/rustfs/admin/v3/elsewhere`, creds)).status).toBe(404);
    const after = await scrape('/minio/admin/v3');
    const diff = (name: string, labels: Record<string, string>) => sampleValue(after, name, labels) - sampleValue(before, name, labels);
    const list = '/rustfs/admin/v3/kms/key/list';
    expect(diff('rustfs_kms_http_requests_total', { route: list, method: 'GET', status: '403' })).toBe(1);
    expect(diff('rustfs_kms_http_requests_total', { route: list, method: 'GET', status: '200' })).toBe(1);
    expect(diff('rustfs_kms_http_requests_total', { route: '/rustfs/admin/v3/kms/key/rotate', method: 'POST', status: '404' })).toBe(1);
    expect(diff('rustfs_kms_http_requests_total', { route: 'unmatched', method: 'GET', status: '404' })).toBe(1);
    expect(diff('rustfs_kms_operations_total', ops('list_keys', 'http', 'denied'))).toBe(1);
    expect(diff('rustfs_kms_operations_total', ops('list_keys', 'http', 'success'))).toBe(1);
    expect(diff('rustfs_kms_operations_total', ops('rotate_key', 'http', 'failure'))).toBe(1);
    expect(diff('rustfs_kms_operation_errors_total', { op: 'rotate_key', code: 'KeyNotFound' })).toBe(1);
  });

  it('gauges: keys by state, the key cache, locked memory, connections', async () => {
    await kms.createKey('metrics-disabled');
    await kms.disableKey('metrics-disabled');
    const m = await scrape();
    const all = await kms.listKeys({ limit: 1000 });
    for (const state of ['Enabled', 'Disabled', 'PendingDeletion']) {
      expect(sampleValue(m, 'rustfs_kms_keys', { state }), state).toBe(all.keys.filter((k) => k.state === state).length);
    }
    expect(sampleValue(m, 'rustfs_kms_keys', { state: 'Disabled' })).toBe(1);
    expect(sampleValue(m, 'rustfs_kms_key_cache_unwrapped_versions')).toBeGreaterThanOrEqual(1);
    expect(sampleValue(m, 'rustfs_kms_locked_memory_bytes')).toBeGreaterThan(0);
    expect(sampleValue(m, 'rustfs_kms_key_slots_in_use')).toBeGreaterThanOrEqual(2); // the root and at least one version
    expect(sampleValue(m, 'rustfs_kms_socket_connections')).toBe(1); // this test's client
    expect(sampleValue(m, 'rustfs_kms_http_connections')).toBeGreaterThanOrEqual(1); // the scrape's own
    expect(sampleValue(m, 'rustfs_kms_audit_records')).toBeGreaterThan(0);
    expect(m.get('rustfs_kms_operations_total')?.type).toBe('counter');
    expect(m.get('rustfs_kms_operation_duration_seconds')?.type).toBe('histogram');
    expect(m.get('rustfs_kms_keys')?.type).toBe('gauge');
  });

  it("process metrics from prom-client: CPU, RSS, heap, event-loop lag, GC, open fds of the daemon's own process", async () => {
    await kms.generateDataKey('metrics-key'); // some work, so CPU time is not zero
    const m = await scrape();
    expect(m.get('process_cpu_seconds_total')?.type).toBe('counter');
    expect(sampleValue(m, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    // The daemon's RSS, not the test's: a running daemon holds at least its heap and locked slots.
    expect(sampleValue(m, 'process_resident_memory_bytes')).toBeGreaterThan(sampleValue(m, 'rustfs_kms_locked_memory_bytes'));
    expect(sampleValue(m, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
    expect(m.get('nodejs_eventloop_lag_seconds')?.type).toBe('gauge');
    expect(m.get('nodejs_gc_duration_seconds')?.type).toBe('histogram');
    // At least stdin/out/err, the listening socket, the audit log and this test's connection.
    expect(sampleValue(m, 'process_open_fds')).toBeGreaterThanOrEqual(6);
    expect(sampleValue(m, 'process_max_fds')).toBeGreaterThan(sampleValue(m, 'process_open_fds'));
  });

  it('the strict parser refuses malformed expositions (it is not a rubber stamp)', () => {
    const bad = [
      'x 1', // no trailing newline
      '# TYPE x counter\nx -1\n',
      '# TYPE x counter\nx 1\n# HELP x late\n',
      '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n',
      '# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\nx 2\n',
      '# TYPE x gauge\nx{a="\\q"} 1\n',
      '# TYPE x gauge\nx one\n',
      '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
      '# random comment\n',
    ];
    for (const text of bad) expect(() => parsePrometheus(text), JSON.stringify(text)).toThrow();
    expect(parsePrometheus('# HELP x a\n# TYPE x gauge\nx{a="q\\"\\\\"} 1\n').get('x')?.samples[0]?.labels.a).toBe('q"\\');
  });
});
