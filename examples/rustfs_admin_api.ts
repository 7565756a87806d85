// The admin HTTP API, signed with AWS Signature V4 by the AWS SDK's signer: KMS status, key list,
// create, key status, disable, enable. Run: npm run build && npm run example:admin
//
// Against a running daemon (admin_http configured):
//   npm run example:admin -- --url http://127.0.0.1:9000 --access-key admin --secret-key-file /etc/rustfs-kms/admin.secret
// Without --url it starts a development daemon with the admin API in a temporary directory, and
// stops it at the end.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';

interface Admin {
  url: URL;
  accessKey: string;
  secretKey: string;
  region: string;
}

/** One signed request; resolves with the status and the parsed JSON body (or text). */
async function call(admin: Admin, method: string, path: string, query: Record<string, string> = {}): Promise<{ status: number; body: unknown }> {
  const signer = new SignatureV4({
    credentials: { accessKeyId: admin.accessKey, secretAccessKey: admin.secretKey },
    region: admin.region, service: 's3', sha256: Sha256, uriEscapePath: false,
  });
  const signed = await signer.sign({
    method, protocol: 'http:', hostname: admin.url.hostname, port: Number(admin.url.port), path, query,
    headers: { host: admin.url.host },
  });
  const qs = new URLSearchParams(query).toString().replace(/\+/g, '%20');
  return new Promise((resolveCall, reject) => {
    const req = request(
      { method, host: admin.url.hostname, port: admin.url.port, path: qs === '' ? path : `${path}?${qs}`, headers: signed.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          if ((res.headers['content-type'] ?? '').startsWith('application/json')) body = JSON.parse(text);
          resolveCall({ status: res.statusCode ?? 0, body });
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolvePort(port));
    });
  });
}

/** A development daemon with the admin API on a free loopback port. */
async function startDaemon(): Promise<{ admin: Admin; proc: ChildProcess; dir: string }> {
  const here = dirname(fileURLToPath(import.meta.url));
  const daemonJs = resolve(here, '..', 'src', 'daemon', 'main.js');
  const dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-admin-'));
  chmodSync(dir, 0o700);
  const secretKey = randomBytes(24).toString('base64url');
  writeFileSync(join(dir, 'admin.secret'), secretKey + '\n', { mode: 0o600 });
  const port = await freePort();
  writeFileSync(join(dir, 'config.yaml'),
    `admin_http: { listen: "127.0.0.1:${port}", access_key: example-admin, secret_key_file: ${join(dir, 'admin.secret')} }\n`, { mode: 0o600 });
  const proc = spawn(process.execPath, [daemonJs, '--dev', '--state-dir', join(dir, 'state'), '--socket', join(dir, 'kms.sock'),
    '--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  await new Promise<void>((resolveStart, reject) => {
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('serving on ')) resolveStart();
    });
    proc.once('exit', (code) => reject(new Error(`rustfs-kmsd exited with ${code}:\n${stderr}`)));
  });
  console.log(`started rustfs-kmsd (pid ${proc.pid}) with the admin API on http://127.0.0.1:${port}`);
  return { admin: { url: new URL(`http://127.0.0.1:${port}`), accessKey: 'example-admin', secretKey, region: 'us-east-1' }, proc, dir };
}

function show(what: string, r: { status: number; body: unknown }): void {
  console.log(`\n${what} → ${r.status}\n${typeof r.body === 'string' ? r.body : JSON.stringify(r.body, null, 2)}`);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { url: { type: 'string' }, 'access-key': { type: 'string' }, 'secret-key-file': { type: 'string' }, region: { type: 'string' } },
  });
  let started: Awaited<ReturnType<typeof startDaemon>> | undefined;
  let admin: Admin;
  if (values.url !== undefined) {
    if (values['access-key'] === undefined || values['secret-key-file'] === undefined) {
      throw new Error('--url needs --access-key and --secret-key-file');
    }
    admin = {
      url: new URL(values.url), accessKey: values['access-key'], region: values.region ?? 'us-east-1',
      secretKey: readFileSync(values['secret-key-file'], 'utf8').replace(/\r?\n$/, ''),
    };
  } else {
    started = await startDaemon();
    admin = started.admin;
  }
  const P = '/rustfs/admin/v3/kms';
  const key = `example-key-${Date.now()}`;
  try {
    show('KMS status', await call(admin, 'GET', `${P}/status`));
    show('key list', await call(admin, 'GET', `${P}/key/list`));
    show(`create ${key}`, await call(admin, 'POST', `${P}/key/create`, { keyName: key }));
    show(`status of ${key}`, await call(admin, 'GET', `${P}/key/status`, { keyName: key }));
    show(`disable ${key}`, await call(admin, 'PUT', `${P}/key/disable`, { keyName: key }));
    show(`enable ${key}`, await call(admin, 'PUT', `${P}/key/enable`, { keyName: key }));
    show('MinIO-style status of the key (mc admin kms key status)', await call(admin, 'GET', '/minio/admin/v3/kms/key/status', { 'key-id': key }));
  } finally {
    if (started !== undefined) {
      const { proc, dir } = started;
      await new Promise<void>((r) => {
        proc.once('exit', () => r());
        proc.kill('SIGTERM');
      });
      rmSync(dir, { recursive: true, force: true });
      console.log('\nstopped the example daemon');
    }
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
