// The admin HTTP API on a Unix socket (admin_http.listen as an absolute path): AdminHttpServer
// assembled from the real parts (local root, file keystore, key service, policy, pipeline, audit
// log) in this process, reached by curl over the socket. The daemon's YAML loader accepts only
// host:port today, so this is the path's only way in until the loader takes a socket path too.
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Policy } from '../../src/access/policy.js';
import { AuditLog } from '../../src/audit/log.js';
import { AdminHttpServer, readSecretKeyFile, withAdminAccessKey } from '../../src/http/index.js';
import { FileKeystore } from '../../src/keystore/file.js';
import { KeyService } from '../../src/keys/service.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { LocalRoot } from '../../src/roots/local.js';
import { Pipeline } from '../../src/ops/pipeline.js';
import { cleanupTempDirs, makeTempDir } from '../helpers/daemon.js';

const ACCESS_KEY = 'unix-admin';
const SECRET = randomBytes(18).toString('base64url');
let dir: string;
let socketPath: string;
let server: AdminHttpServer;
let service: KeyService;
let audit: AuditLog;

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

function curlUnix(method: string, path: string, secret = SECRET): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('curl', ['-sS', '--unix-socket', socketPath, '-o', '-', '-w', '\n%{http_code}', '-X', method,
      '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', `${ACCESS_KEY}:${secret}`, `http://localhost${path}`]);
    let out = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.on('error', reject);
    p.on('close', () => {
      const nl = out.lastIndexOf('\n');
      resolve({ status: Number(out.slice(nl + 1)), body: out.slice(0, nl) });
    });
  });
}

beforeAll(async () => {
  dir = makeTempDir('kms-http-unix-');
  writeFileSync(join(dir, 'admin.secret'), SECRET + '\n', { mode: 0o600 });
  socketPath = join(dir, 'admin.sock');
  service = new KeyService({
    keystore: new FileKeystore(dir),
    root: LocalRoot.open({ keyFile: join(dir, 'root.key'), saltFile: join(dir, 'root.salt'), create: true, env: {} }),
    idleTtlMs: 60_000, offlineTtlMs: 60_000,
  });
  await service.start();
  audit = AuditLog.open({ path: join(dir, 'audit.log'), fsync: 'never', fsyncIntervalMs: 1000, maxBytes: 0 });
  const policy = withAdminAccessKey(Policy.defaults(process.getuid?.() ?? 0, undefined),
    { listen: socketPath, accessKey: ACCESS_KEY, secretKeyFile: join(dir, 'admin.secret'), region: 'us-east-1' });
  const pipeline = new Pipeline({
    service, version: 'test', endpoint: dir,
    limits: { max_frame_bytes: 1, max_plaintext_bytes: 1, max_batch_count: 1, max_list_limit: 1, max_connections: 1, max_inflight_per_connection: 1 },
  }, policy, audit);
  const metrics = new Metrics();
  pipeline.setObserver(metrics.observe);
  server = await AdminHttpServer.start({
    listen: socketPath,
    credentials: { accessKey: ACCESS_KEY, secretKey: readSecretKeyFile(join(dir, 'admin.secret')), region: 'us-east-1' },
    pipeline, audit, metrics, logger: quiet,
  });
});

afterAll(async () => {
  await server?.close();
  await service?.close();
  await audit?.close();
  cleanupTempDirs();
});

describe('admin HTTP API on a Unix socket', () => {
  it('listens on a 0600 socket owned by this user', () => {
    expect(server.address).toBe(`unix:${socketPath}`);
    const st = statSync(socketPath);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
  });

  it('serves signed requests and refuses a wrong secret', async () => {
    const created = await curlUnix('POST', '/rustfs/admin/v3/kms/key/create?keyName=over-unix');
    expect(created.status, created.body).toBe(200);
    expect(JSON.parse(created.body)).toMatchObject({ key_id: 'over-unix', key_metadata: { key_state: 'Enabled' } });
    const denied = await curlUnix('GET', '/rustfs/admin/v3/kms/key/list', 'wrong-secret');
    expect(denied.status).toBe(403);
    audit.flush();
    const lines = readFileSync(join(dir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.find((l) => l.op === 'create_key')).toMatchObject({ transport: 'http', caller: { kind: 'access-key', access_key: ACCESS_KEY } });
  });

  it('refuses to take over a path that is not a stale socket', async () => {
    const file = join(dir, 'not-a-socket');
    writeFileSync(file, 'x');
    await expect(AdminHttpServer.start({
      listen: file, credentials: { accessKey: ACCESS_KEY, secretKey: SECRET, region: 'us-east-1' },
      pipeline: new Pipeline({ service, version: 't', endpoint: dir, limits: {} as never }, Policy.defaults(0, undefined), audit),
      audit, logger: quiet,
    })).rejects.toThrow(/not a socket/);
    await expect(AdminHttpServer.start({
      listen: socketPath, credentials: { accessKey: ACCESS_KEY, secretKey: SECRET, region: 'us-east-1' },
      pipeline: new Pipeline({ service, version: 't', endpoint: dir, limits: {} as never }, Policy.defaults(0, undefined), audit),
      audit, logger: quiet,
    })).rejects.toThrow(/in use/);
  });

  it('refuses a secret key file that others can read', () => {
    const loose = join(dir, 'loose.secret');
    writeFileSync(loose, SECRET, { mode: 0o644 });
    expect(() => readSecretKeyFile(loose)).toThrow(/group or others/);
  });
});
