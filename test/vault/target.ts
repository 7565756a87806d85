// Which Vault the suite talks to. By default: the in-process Vault API TEST SERVER
// (test/vault-server/server.ts). With `npm run test:vault` (KMS_TEST_VAULT=auto) and VAULT_ADDR plus
// VAULT_TOKEN (a token that may mount engines, write policies and enable auth methods) set: that real
// Vault, with VAULT_CACERT for its CA when it speaks https. Every test sets up its own uniquely named
// mounts through Vault's HTTP API, so both targets are prepared the same way; tests that need the test
// server's fault switches or its own TLS certificates skip against a real Vault and say why.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { join } from 'node:path';
import { VaultTestServer, type VaultTestServerOptions } from '../vault-server/server.js';
import { repoRoot } from '../helpers/daemon.js';

export const REAL_VAULT =
  (process.env.KMS_TEST_VAULT === 'auto' || process.env.KMS_TEST_VAULT === 'real') &&
  (process.env.VAULT_ADDR ?? '') !== '' && (process.env.VAULT_TOKEN ?? '') !== '';

export const NEEDS_TEST_SERVER = 'needs the Vault test server\'s fault switches or certificates (not available against a real Vault)';

export interface ApiResult {
  status: number;
  body: Record<string, any> | undefined;
}

export interface ApiOptions {
  namespace?: string;
  token?: string;
}

export interface VaultTarget {
  kind: 'test-server' | 'vault';
  address: string;
  adminToken: string;
  /** CA file a client needs for this address (https only). */
  caFile?: string;
  /** Only for the test server. */
  server?: VaultTestServer;
  /** Namespaces work (Vault Enterprise, or the test server). */
  namespaces: boolean;
  api(method: string, path: string, body?: unknown, options?: ApiOptions): Promise<ApiResult>;
  /** api() that throws unless the status is 2xx. */
  must(method: string, path: string, body?: unknown, options?: ApiOptions): Promise<Record<string, any> | undefined>;
  close(): Promise<void>;
}

export interface TargetOptions {
  /** Test server only: serve https with these PEMs (and require client certificates signed by clientCa). */
  tls?: VaultTestServerOptions['tls'];
  /** CA for the client when tls is set. */
  caFile?: string;
  /** Client certificate and key the admin requests present (when the server requires one). */
  clientCert?: string;
  clientKey?: string;
}

export async function openTarget(options: TargetOptions = {}): Promise<VaultTarget> {
  if (REAL_VAULT) {
    const address = (process.env.VAULT_ADDR as string).replace(/\/+$/, '');
    const caFile = process.env.VAULT_CACERT;
    const target = makeTarget('vault', address, process.env.VAULT_TOKEN as string, caFile, undefined);
    const health = await target.api('GET', 'sys/health?standbyok=true');
    const version = typeof health.body?.version === 'string' ? health.body.version : '';
    target.namespaces = version.includes('+ent');
    return target;
  }
  const server = await new VaultTestServer(options.tls !== undefined ? { tls: options.tls } : {}).start();
  const client = options.clientCert !== undefined && options.clientKey !== undefined
    ? { cert: readFileSync(options.clientCert), key: readFileSync(options.clientKey) } : undefined;
  return makeTarget('test-server', server.address, server.rootToken, options.caFile, server, client);
}

function makeTarget(
  kind: VaultTarget['kind'], address: string, adminToken: string, caFile: string | undefined, server: VaultTestServer | undefined,
  client?: { cert: Buffer; key: Buffer },
): VaultTarget {
  const tls = { ...(caFile !== undefined ? { ca: readFileSync(caFile) } : {}), ...(client ?? {}) };
  const target: VaultTarget = {
    kind, address, adminToken, namespaces: kind === 'test-server',
    ...(caFile !== undefined ? { caFile } : {}),
    ...(server !== undefined ? { server } : {}),
    api: (method, path, body, opts = {}) => request(address, tls, method, path, body, opts.token ?? adminToken, opts.namespace),
    async must(method, path, body, opts = {}) {
      const r = await target.api(method, path, body, opts);
      if (r.status < 200 || r.status >= 300) throw new Error(`${method} ${path} → ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    },
    async close() {
      await server?.stop();
    },
  };
  return target;
}

function request(
  address: string, tls: { ca?: Buffer; cert?: Buffer; key?: Buffer }, method: string, path: string, body: unknown, token: string, namespace: string | undefined,
): Promise<ApiResult> {
  const url = new URL(`${address}/v1/${path}`);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string> = { 'X-Vault-Token': token, 'X-Vault-Request': 'true' };
  if (namespace !== undefined && namespace !== '') headers['X-Vault-Namespace'] = namespace;
  if (payload !== undefined) {
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = String(payload.length);
  }
  const mod = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(url, { method, headers, ...tls, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: Record<string, any> | undefined;
        try {
          parsed = text === '' ? undefined : (JSON.parse(text) as Record<string, any>);
        } catch {
          parsed = { raw: text };
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// ---- backends ----------------------------------------------------------------------------------

export interface Backends {
  id: string;
  namespace: string;
  transitMount: string;
  transitKey: string;
  kvMount: string;
  prefix: string;
}

/** Fresh transit and KV v2 mounts (unique names) and a Transit key, in `namespace` ("" = root). */
export async function setupBackends(target: VaultTarget, namespace = '', options: { derived?: boolean } = {}): Promise<Backends> {
  const id = `kmst-${randomBytes(4).toString('hex')}`;
  const b: Backends = { id, namespace, transitMount: `${id}-transit`, transitKey: 'rustfs-kms', kvMount: `${id}-kv`, prefix: 'rustfs-kms' };
  const ns = { namespace };
  await target.must('POST', `sys/mounts/${b.transitMount}`, { type: 'transit' }, ns);
  await target.must('POST', `sys/mounts/${b.kvMount}`, { type: 'kv', options: { version: '2' } }, ns);
  await target.must('POST', `${b.transitMount}/keys/${b.transitKey}`, options.derived === true ? { derived: true } : {}, ns);
  return b;
}

export async function teardownBackends(target: VaultTarget, b: Backends): Promise<void> {
  for (const m of [b.transitMount, b.kvMount]) {
    await target.api('DELETE', `sys/mounts/${m}`, undefined, { namespace: b.namespace }).catch(() => undefined);
  }
}

/** The ACL policy from docs/operations.md (the block after `<!-- vault-policy -->`), for these mounts. */
export function documentedPolicy(b: Backends): string {
  const doc = readFileSync(join(repoRoot, 'docs', 'operations.md'), 'utf8');
  const m = /<!-- vault-policy -->\s*```hcl\n([\s\S]*?)```/.exec(doc);
  if (m === null) throw new Error('docs/operations.md has no ```hcl block after <!-- vault-policy -->');
  return (m[1] as string)
    .replaceAll('"transit/', `"${b.transitMount}/`)
    .replaceAll('"secret/', `"${b.kvMount}/`)
    .replaceAll('/rustfs-kms/', `/${b.prefix}/`);
}

export interface AppRoleCreds {
  mount: string;
  roleId: string;
  secretId: string;
}

/** An AppRole auth mount with role "rustfs-kms" holding the documented policy. */
export async function setupAppRole(
  target: VaultTarget, b: Backends, role: { tokenTtl?: string; tokenMaxTtl?: string } = {},
): Promise<AppRoleCreds> {
  const ns = { namespace: b.namespace };
  const mount = `${b.id}-approle`;
  await target.must('POST', `sys/auth/${mount}`, { type: 'approle' }, ns);
  await target.must('PUT', `sys/policies/acl/${b.id}`, { policy: documentedPolicy(b) }, ns);
  await target.must('POST', `auth/${mount}/role/rustfs-kms`, {
    token_policies: [b.id], token_ttl: role.tokenTtl ?? '1h', token_max_ttl: role.tokenMaxTtl ?? '4h',
  }, ns);
  const roleId = (await target.must('GET', `auth/${mount}/role/rustfs-kms/role-id`, undefined, ns))?.data?.role_id as string;
  const secretId = (await target.must('POST', `auth/${mount}/role/rustfs-kms/secret-id`, {}, ns))?.data?.secret_id as string;
  return { mount, roleId, secretId };
}

export async function teardownAuth(target: VaultTarget, b: Backends, mount: string): Promise<void> {
  await target.api('DELETE', `sys/auth/${mount}`, undefined, { namespace: b.namespace }).catch(() => undefined);
  await target.api('DELETE', `sys/policies/acl/${b.id}`, undefined, { namespace: b.namespace }).catch(() => undefined);
}

/** A child token with the documented policy (ttl e.g. "1h"). */
export async function policyToken(target: VaultTarget, b: Backends, ttl = '1h', explicitMaxTtl?: string): Promise<string> {
  const ns = { namespace: b.namespace };
  await target.must('PUT', `sys/policies/acl/${b.id}`, { policy: documentedPolicy(b) }, ns);
  const body = await target.must('POST', 'auth/token/create', {
    policies: [b.id], ttl, renewable: true, no_parent: true, ...(explicitMaxTtl !== undefined ? { explicit_max_ttl: explicitMaxTtl } : {}),
  }, ns);
  return body?.auth?.client_token as string;
}

// ---- Kubernetes service-account JWTs (test server only) -----------------------------------------

export interface K8sSigner {
  publicPem: string;
  jwt(claims: Record<string, unknown>): string;
}

export function k8sSigner(): K8sSigner {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    jwt(claims) {
      const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: 'test' })).toString('base64url');
      const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
      const signature = sign('sha256', Buffer.from(`${header}.${payload}`), privateKey).toString('base64url');
      return `${header}.${payload}.${signature}`;
    },
  };
}

// ---- a test CA (openssl) -----------------------------------------------------------------------

export interface TestPki {
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA that signed nothing here (for "wrong CA" checks). */
  otherCaFile: string;
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with openssl in `dir`. */
export function makePki(dir: string): TestPki {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ca = (name: string) => {
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
      '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  };
  ca('ca');
  ca('other-ca');
  const leaf = (name: string, cn: string, ext: string) => {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    writeFileSync(join(dir, `${name}.ext`), ext);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`,
      '-days', '2', '-extfile', `${name}.ext`);
  };
  leaf('server', 'vault.test', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:vault.test\nextendedKeyUsage=serverAuth\n');
  leaf('client', 'rustfs-kms-host', 'extendedKeyUsage=clientAuth\n');
  return {
    caFile: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    otherCaFile: join(dir, 'other-ca.pem'),
  };
}
