// A TEST SERVER, NOT AZURE: the parts of Azure Key Vault's REST API (keys: get, wrapkey, unwrapkey)
// and of a Microsoft Entra ID authority (OpenID configuration, the v2.0 token endpoint) that the real
// @azure/keyvault-keys and @azure/identity clients use, written from Microsoft's public REST reference,
// over HTTPS with a CA made at test time. It really wraps: RSA-OAEP-256 with its own RSA keys, A256KW
// with its own AES keys; key versions (rotation), Azure's error JSON, Key Vault's challenge-based
// auth (an unauthenticated request gets 401 + WWW-Authenticate), and fault switches (down, 429 with
// Retry-After, 5xx, slow, 403 per operation, disabled versions). It counts every call.
import { constants, createCipheriv, createDecipheriv, generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TestPki } from './tls.js';

type Kty = 'RSA' | 'RSA-HSM' | 'oct-HSM';
interface KeyVersion {
  version: string;
  enabled: boolean;
  created: number;
  rsa?: { privateKey: KeyObject; publicKey: KeyObject };
  aes?: Buffer;
}
interface TestKey {
  name: string;
  kty: Kty;
  versions: KeyVersion[];
}

export type KeyOp = 'get' | 'wrapKey' | 'unwrapKey';

export interface Credentials {
  tenant: string;
  clientId: string;
  clientSecret?: string;
  /** For workload identity: the federated token the client must present as its assertion. */
  federatedToken?: string;
}

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url');
const AES_KW_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

export class TestAzure {
  readonly calls = { get: 0, wrapKey: 0, unwrapKey: 0, token: 0, challenge: 0, openid: 0 };
  private readonly keys = new Map<string, TestKey>();
  private readonly tokens = new Set<string>();
  private readonly sockets = new Set<Socket>();
  private down = false;
  private throttle = 0;
  private fail5xx = 0;
  private slowMs = 0;
  private readonly denied = new Set<KeyOp>();
  private server!: Server;
  url = '';

  constructor(private readonly pki: TestPki, private readonly creds: Credentials) {}

  async start(): Promise<this> {
    this.server = createServer({ cert: this.pki.cert, key: this.pki.key }, (req, res) => {
      void this.handle(req, res).catch((err: unknown) => this.error(res, 500, 'InternalServerError', String(err)));
    });
    this.server.on('secureConnection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- keys and switches -------------------------------------------------------------------

  createKey(name: string, kty: Kty = 'RSA'): string {
    const key: TestKey = this.keys.get(name) ?? { name, kty, versions: [] };
    this.keys.set(name, key);
    const version: KeyVersion = { version: randomBytes(16).toString('hex'), enabled: true, created: Math.floor(Date.now() / 1000) };
    if (kty === 'oct-HSM') version.aes = randomBytes(32);
    else version.rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    key.versions.push(version);
    return version.version;
  }

  /** Key Vault's "rotate": a new current version; the old ones stay (and stay enabled). */
  rotateKey(name: string): string {
    const key = this.keys.get(name);
    if (key === undefined) throw new Error(`no test key ${name}`);
    return this.createKey(name, key.kty);
  }

  currentVersion(name: string): string {
    const v = this.keys.get(name)?.versions.at(-1);
    if (v === undefined) throw new Error(`no test key ${name}`);
    return v.version;
  }

  setEnabled(name: string, version: string, enabled: boolean): void {
    const v = this.keys.get(name)?.versions.find((x) => x.version === version);
    if (v === undefined) throw new Error(`no test key ${name}/${version}`);
    v.enabled = enabled;
  }

  /** Connections are cut at once (a network outage). */
  setDown(down: boolean): void {
    this.down = down;
    if (down) for (const s of this.sockets) s.destroy();
  }
  throttleNext(n: number): void {
    this.throttle = n;
  }
  failNext(n: number): void {
    this.fail5xx = n;
  }
  setSlow(ms: number): void {
    this.slowMs = ms;
  }
  deny(op: KeyOp, denied = true): void {
    if (denied) this.denied.add(op);
    else this.denied.delete(op);
  }
  resetCalls(): void {
    for (const k of Object.keys(this.calls) as (keyof TestAzure['calls'])[]) this.calls[k] = 0;
  }

  // ---- HTTP ---------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.down) {
      req.socket.destroy();
      return;
    }
    const body = await readBody(req);
    if (this.slowMs > 0) await new Promise((r) => setTimeout(r, this.slowMs));
    const url = new URL(req.url ?? '/', this.url);
    const parts = url.pathname.split('/').filter((p) => p !== '');

    // Entra ID (the authority): /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/oauth2/v2.0/token
    if (parts.length === 4 && parts[1] === 'v2.0' && parts[2] === '.well-known' && parts[3] === 'openid-configuration') {
      this.calls.openid += 1;
      return this.openid(res, parts[0] as string);
    }
    if (parts.length === 4 && parts[1] === 'oauth2' && parts[2] === 'v2.0' && parts[3] === 'token' && req.method === 'POST') {
      this.calls.token += 1;
      return this.token(res, parts[0] as string, new URLSearchParams(body.toString('utf8')));
    }
    if (parts[0] !== 'keys') return this.error(res, 404, 'NotFound', `no route ${req.method} ${url.pathname}`);

    // Key Vault: challenge first, then faults, then the operation.
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ') || !this.tokens.has(auth.slice(7))) {
      this.calls.challenge += 1;
      res.setHeader('WWW-Authenticate', `Bearer authorization="${this.url}/${this.creds.tenant}", resource="https://vault.azure.net"`);
      return this.error(res, 401, 'Unauthorized', 'AKV10000: Request is missing a Bearer or PoP token.');
    }
    // Key Vault's versions: 7.x, and dated ones (2025-07-01) since.
    if (!/^(7\.\d+|20\d\d-\d\d-\d\d)(-preview)?$/.test(url.searchParams.get('api-version') ?? '')) {
      return this.error(res, 400, 'BadParameter', 'api-version is missing or not a Key Vault API version');
    }
    const name = parts[1] ?? '';
    const versionName = parts[2];
    const op: KeyOp = parts[3] === 'wrapkey' ? 'wrapKey' : parts[3] === 'unwrapkey' ? 'unwrapKey' : 'get';
    if (op === 'get' && req.method !== 'GET') return this.error(res, 405, 'MethodNotAllowed', 'only GET here');
    this.calls[op] += 1;
    if (this.throttle > 0) {
      this.throttle -= 1;
      res.setHeader('Retry-After', '1');
      return this.error(res, 429, 'Throttled', 'Operations per second limit reached (test server)');
    }
    if (this.fail5xx > 0) {
      this.fail5xx -= 1;
      return this.error(res, 503, 'ServiceUnavailable', 'The service is unavailable (test server)');
    }
    if (this.denied.has(op)) {
      return this.error(res, 403, 'Forbidden', `The user, group or application does not have keys ${op === 'get' ? 'get' : op} permission on key vault (test server)`);
    }
    const key = this.keys.get(name);
    const version = versionName === undefined || versionName === '' ? key?.versions.at(-1) : key?.versions.find((v) => v.version === versionName);
    if (key === undefined || version === undefined) {
      return this.error(res, 404, 'KeyNotFound', `A key with (name/id) ${name}${versionName !== undefined ? `/${versionName}` : ''} was not found in this key vault.`);
    }
    const kid = `${this.url}/keys/${key.name}/${version.version}`;
    if (op === 'get') return json(res, 200, this.bundle(key, version, kid));
    if (!version.enabled) return this.error(res, 403, 'Forbidden', `Operation ${op} is not allowed on a disabled key.`);
    let request: { alg?: unknown; value?: unknown };
    try {
      request = JSON.parse(body.toString('utf8')) as typeof request;
    } catch {
      return this.error(res, 400, 'BadParameter', 'The request body is not JSON.');
    }
    if (typeof request.value !== 'string' || typeof request.alg !== 'string') return this.error(res, 400, 'BadParameter', 'alg and value are required.');
    const input = Buffer.from(request.value, 'base64url');
    try {
      const value = op === 'wrapKey' ? this.wrap(key, version, request.alg, input) : this.unwrap(key, version, request.alg, input);
      return json(res, 200, { kid, value: b64u(value) });
    } catch (err) {
      return this.error(res, 400, 'BadParameter', `${op} failed: ${(err as Error).message.slice(0, 100)}`);
    }
  }

  private wrap(key: TestKey, v: KeyVersion, alg: string, input: Buffer): Buffer {
    if (key.kty === 'oct-HSM') {
      if (alg !== 'A256KW') throw new Error(`algorithm ${alg} is not supported on an oct-HSM key`);
      const c = createCipheriv('id-aes256-wrap', v.aes as Buffer, AES_KW_IV);
      return Buffer.concat([c.update(input), c.final()]);
    }
    if (alg !== 'RSA-OAEP-256') throw new Error(`algorithm ${alg} is not supported by this test server`);
    return publicEncrypt({ key: v.rsa!.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, input);
  }

  private unwrap(key: TestKey, v: KeyVersion, alg: string, input: Buffer): Buffer {
    if (key.kty === 'oct-HSM') {
      if (alg !== 'A256KW') throw new Error(`algorithm ${alg} is not supported on an oct-HSM key`);
      const d = createDecipheriv('id-aes256-wrap', v.aes as Buffer, AES_KW_IV);
      return Buffer.concat([d.update(input), d.final()]);
    }
    if (alg !== 'RSA-OAEP-256') throw new Error(`algorithm ${alg} is not supported by this test server`);
    return privateDecrypt({ key: v.rsa!.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, input);
  }

  private bundle(key: TestKey, v: KeyVersion, kid: string): unknown {
    const jwk: Record<string, unknown> = { kid, kty: key.kty, key_ops: ['wrapKey', 'unwrapKey', 'encrypt', 'decrypt'] };
    if (v.rsa !== undefined) {
      const pub = v.rsa.publicKey.export({ format: 'jwk' });
      jwk.n = pub.n;
      jwk.e = pub.e;
    }
    return { key: jwk, attributes: { enabled: v.enabled, created: v.created, updated: v.created, recoveryLevel: 'Recoverable+Purgeable', recoverableDays: 90 } };
  }

  private openid(res: ServerResponse, tenant: string): void {
    const base = `${this.url}/${tenant}`;
    json(res, 200, {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      issuer: `${base}/v2.0`,
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      tenant_region_scope: null,
    });
  }

  private token(res: ServerResponse, tenant: string, form: URLSearchParams): void {
    const fail = (error: string, description: string) => json(res, 400, { error, error_description: description, error_codes: [7000215] });
    if (tenant !== this.creds.tenant) return fail('invalid_request', `AADSTS90002: Tenant '${tenant}' not found (test server).`);
    if (form.get('grant_type') !== 'client_credentials') return fail('unsupported_grant_type', 'AADSTS70003: only client_credentials (test server).');
    if (form.get('client_id') !== this.creds.clientId) return fail('unauthorized_client', 'AADSTS700016: Application not found (test server).');
    const secretOk = this.creds.clientSecret !== undefined && form.get('client_secret') === this.creds.clientSecret;
    const assertionOk = this.creds.federatedToken !== undefined && form.get('client_assertion') === this.creds.federatedToken &&
      form.get('client_assertion_type') === 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
    if (!secretOk && !assertionOk) return fail('invalid_client', 'AADSTS7000215: Invalid client secret provided (test server).');
    if (!(form.get('scope') ?? '').split(' ').includes('https://vault.azure.net/.default')) {
      return fail('invalid_scope', 'AADSTS70011: expected the scope https://vault.azure.net/.default (test server).');
    }
    const token = randomBytes(24).toString('base64url');
    this.tokens.add(token);
    json(res, 200, { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: token });
  }

  private error(res: ServerResponse, status: number, code: string, message: string): void {
    json(res, status, { error: { code, message } });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
