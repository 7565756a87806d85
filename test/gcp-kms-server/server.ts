// A TEST SERVER for the subset of Google Cloud KMS's REST API (v1) that rustfs-kms uses, written from
// Google's public REST reference. It is NOT Google Cloud: it keeps keys in memory and exists because
// Google Cloud cannot be reached where these tests run. The real @google-cloud/kms client talks to it
// unchanged (apiEndpoint/port/protocol override plus a service-account key file whose token_uri points
// here). The same suite runs against the real service with `npm run test:cloud` (test/cloud/README.md).
//
// Implemented:
//   POST /v1/{name=projects/*/locations/*/keyRings/*/cryptoKeys/**}:encrypt   (EncryptRequest/Response,
//        base64 plaintext and additionalAuthenticatedData, the CRC32C fields, protectionLevel)
//   POST /v1/{name=...cryptoKeys/**}:decrypt                                  (DecryptRequest/Response)
//   GET  /v1/{name=projects/*/locations/*/keyRings/*/cryptoKeys/*}            (CryptoKey with its primary)
//   POST /token   OAuth 2.0 JWT-bearer grant (RFC 7523): the assertion's RS256 signature is checked
//        against the registered service account's public key; an opaque access token comes back.
// Bearer tokens accepted: those /token issued, and self-signed service-account JWTs (RS256 by a
// registered key, kid = private_key_id), which is what google-auth-library sends for a service-account
// key file when the client sets useJWTAccessWithScope, as @google-cloud/kms does.
// Ciphertexts really encrypt: AES-256-GCM under the key version's own key, AAD = key name ‖ the
// request's additionalAuthenticatedData, so a wrong AAD fails with 400 INVALID_ARGUMENT "Decryption
// failed". Key versions: rotate() makes a new primary; older versions still decrypt while ENABLED.
// Errors are Google's JSON: {"error":{"code":403,"message":"...","status":"PERMISSION_DENIED"}}.
// Fault switches: down()/up(), failNext(n, 429 | 500 | 503), delayMs; counts of calls per kind.
//
// Imports only node: modules.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
type Permission = 'encrypt' | 'decrypt' | 'get';
type VersionState = 'ENABLED' | 'DISABLED' | 'DESTROYED';

interface KeyVersion {
  material: Buffer;
  state: VersionState;
}

interface CryptoKey {
  name: string;
  versions: KeyVersion[]; // index + 1 = version number
  primary: number;
}

interface ServiceAccount {
  email: string;
  keyId: string;
  publicKey: crypto.KeyObject;
  permissions: Set<Permission>;
}

export interface ServiceAccountKeyFile {
  type: 'service_account';
  project_id: string;
  private_key_id: string;
  private_key: string;
  client_email: string;
  client_id: string;
  token_uri: string;
}

const STATUS_HTTP: Record<string, number> = {
  INVALID_ARGUMENT: 400, FAILED_PRECONDITION: 400, UNAUTHENTICATED: 401, PERMISSION_DENIED: 403,
  NOT_FOUND: 404, RESOURCE_EXHAUSTED: 429, INTERNAL: 500, UNAVAILABLE: 503,
};
const HTTP_STATUS: Record<number, string> = { 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE' };
const PERMISSION_NAME: Record<Permission, string> = {
  encrypt: 'cloudkms.cryptoKeyVersions.useToEncrypt',
  decrypt: 'cloudkms.cryptoKeyVersions.useToDecrypt',
  get: 'cloudkms.cryptoKeys.get',
};
const KEY_PATH = /^\/v1\/(projects\/[^/]+\/locations\/[^/]+\/keyRings\/[^/]+\/cryptoKeys\/[^/:]+)(?::(encrypt|decrypt))?$/;
const MAX_PLAINTEXT = 64 * 1024;
const CT_MAGIC = Buffer.from('TSKMS1'); // marks this server's ciphertexts

class ApiError extends Error {
  constructor(readonly status: string, message: string) {
    super(message);
  }
}

/** CRC32C (Castagnoli), as Cloud KMS computes it. */
export function crc32c(data: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of data) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? 0x82f63b78 ^ (crc >>> 1) : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}


export class GcpKmsTestServer {
  private server = http.createServer((req, res) => void this.handle(req, res));
  private sockets = new Set<Socket>();
  private listening = false;
  private keys = new Map<string, CryptoKey>();
  private accounts = new Map<string, ServiceAccount>();
  private tokens = new Map<string, { email: string; expires: number }>();
  private failCount = 0;
  private failHttp = 503;
  port = 0;
  /** Delay before every answer (a slow service). */
  delayMs = 0;
  /** Requests by kind, answered or not (the daemon's cloud calls per data key are counted here). */
  readonly calls = { encrypt: 0, decrypt: 0, get: 0, token: 0, failed: 0 };
  /** AAD of every decrypt request, base64 (to show the binding that was sent). */
  readonly decryptAads: string[] = [];

  constructor() {
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  static async start(): Promise<GcpKmsTestServer> {
    const s = new GcpKmsTestServer();
    await s.listen(0);
    return s;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    await this.down();
  }

  /** The service goes away: the port refuses connections and open connections are cut. */
  async down(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** Back, on the same port. */
  async up(): Promise<void> {
    if (!this.listening) await this.listen(this.port);
  }

  /** The next n API requests (token requests excepted) get `httpStatus` with Google's error body. */
  failNext(n: number, httpStatus = 503): void {
    this.failCount = n;
    this.failHttp = httpStatus;
  }

  /** Makes a symmetric ENCRYPT_DECRYPT key with one enabled version. */
  createKey(name: string): void {
    this.keys.set(name, { name, versions: [{ material: crypto.randomBytes(32), state: 'ENABLED' }], primary: 1 });
  }

  /** A new key version becomes primary; older versions stay as they are. */
  rotate(name: string): number {
    const key = this.key(name);
    key.versions.push({ material: crypto.randomBytes(32), state: 'ENABLED' });
    key.primary = key.versions.length;
    return key.primary;
  }

  setVersionState(name: string, version: number, state: VersionState): void {
    const v = this.key(name).versions[version - 1];
    if (v === undefined) throw new Error(`no version ${version} of ${name}`);
    v.state = state;
  }

  /**
   * A service account allowed `permissions`; returns its key file (a new RSA key) with token_uri
   * pointing at this server.
   */
  serviceAccount(email: string, permissions: Permission[] = ['encrypt', 'decrypt', 'get']): ServiceAccountKeyFile {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const keyId = crypto.randomBytes(20).toString('hex');
    this.accounts.set(email, { email, keyId, publicKey, permissions: new Set(permissions) });
    return {
      type: 'service_account',
      project_id: email.split('@')[1]?.split('.')[0] ?? 'test-project',
      private_key_id: keyId,
      private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      client_email: email,
      client_id: String(crypto.randomInt(1, 2 ** 47)),
      token_uri: `${this.endpoint}/token`,
    };
  }

  setPermissions(email: string, permissions: Permission[]): void {
    const account = this.accounts.get(email);
    if (account === undefined) throw new Error(`no service account ${email}`);
    account.permissions = new Set(permissions);
  }

  private key(name: string): CryptoKey {
    const key = this.keys.get(name);
    if (key === undefined) throw new ApiError('NOT_FOUND', `${name} not found.`);
    return key;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        this.listening = true;
        resolve();
      });
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const url = new URL(req.url ?? '/', 'http://x');
    try {
      if (req.method === 'POST' && url.pathname === '/token') {
        this.calls.token += 1;
        return this.send(res, 200, this.token(new URLSearchParams(body)));
      }
      const m = KEY_PATH.exec(decodeURIComponent(url.pathname));
      const kind = m?.[2] === 'encrypt' ? 'encrypt' : m?.[2] === 'decrypt' ? 'decrypt' : 'get';
      if (m === null || (kind === 'get' ? req.method !== 'GET' : req.method !== 'POST')) {
        throw new ApiError('NOT_FOUND', `The requested URL ${url.pathname} was not found on this server.`);
      }
      this.calls[kind] += 1;
      if (this.failCount > 0) {
        this.failCount -= 1;
        this.calls.failed += 1;
        const status = HTTP_STATUS[this.failHttp] ?? 'UNAVAILABLE';
        const message = status === 'RESOURCE_EXHAUSTED' ? "Quota exceeded for quota metric 'Cryptographic requests' (test server)." : 'The service is currently unavailable (test server fault switch).';
        return this.send(res, this.failHttp, { error: { code: this.failHttp, message, status } });
      }
      const account = this.authenticate(req.headers.authorization);
      const name = m[1] as string;
      if (!account.permissions.has(kind)) {
        throw new ApiError('PERMISSION_DENIED', `Permission '${PERMISSION_NAME[kind]}' denied on resource '${name}' (or it may not exist).`);
      }
      if (kind === 'get') return this.send(res, 200, this.getKey(name));
      const json = JSON.parse(body === '' ? '{}' : body) as Record<string, unknown>;
      return this.send(res, 200, kind === 'encrypt' ? this.encrypt(name, json) : this.decrypt(name, json));
    } catch (err) {
      const e = err instanceof ApiError ? err : new ApiError('INVALID_ARGUMENT', `Invalid JSON payload received. ${(err as Error).message}`);
      const code = STATUS_HTTP[e.status] ?? 500;
      return this.send(res, code, { error: { code, message: e.message, status: e.status } });
    }
  }

  private send(res: http.ServerResponse, status: number, json: unknown): void {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
    res.end(JSON.stringify(json));
  }

  /** The JWT's claims, if its RS256 signature verifies under a registered service account's key. */
  private verifyJwt(jwt: string): { account: ServiceAccount; claims: Record<string, unknown> } {
    const [h, p, s] = jwt.split('.');
    if (h === undefined || p === undefined || s === undefined) throw new ApiError('UNAUTHENTICATED', 'Request had invalid authentication credentials.');
    const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as { alg?: string; kid?: string };
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const account = this.accounts.get(String(claims.iss));
    const ok = account !== undefined && header.alg === 'RS256' && (header.kid === undefined || header.kid === account.keyId) &&
      crypto.verify('sha256', Buffer.from(`${h}.${p}`), account.publicKey, Buffer.from(s, 'base64url'));
    if (!ok || typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) {
      throw new ApiError('UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token.');
    }
    return { account, claims };
  }

  private token(form: URLSearchParams): Record<string, unknown> {
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') throw new ApiError('INVALID_ARGUMENT', 'unsupported_grant_type');
    const { account, claims } = this.verifyJwt(form.get('assertion') ?? '');
    if (claims.aud !== `${this.endpoint}/token`) throw new ApiError('UNAUTHENTICATED', 'invalid_grant: Invalid JWT audience.');
    const token = `ya29.test-${crypto.randomBytes(24).toString('base64url')}`;
    this.tokens.set(token, { email: account.email, expires: Date.now() + 3600_000 });
    return { access_token: token, expires_in: 3600, token_type: 'Bearer' };
  }

  private authenticate(header: string | undefined): ServiceAccount {
    const token = /^Bearer (\S+)$/.exec(header ?? '')?.[1];
    if (token === undefined) throw new ApiError('UNAUTHENTICATED', 'Request is missing required authentication credential. Expected OAuth 2 access token.');
    const issued = this.tokens.get(token);
    if (issued !== undefined && issued.expires > Date.now()) return this.accounts.get(issued.email) as ServiceAccount;
    const { account, claims } = this.verifyJwt(token); // a self-signed service-account JWT
    const scopes = String(claims.scope ?? '').split(' ');
    if (!scopes.includes(CLOUD_PLATFORM_SCOPE) && !String(claims.aud ?? '').includes('cloudkms')) {
      throw new ApiError('UNAUTHENTICATED', 'Request had insufficient authentication scopes.');
    }
    return account;
  }

  private getKey(name: string): Record<string, unknown> {
    const key = this.key(name);
    const primary = key.versions[key.primary - 1] as KeyVersion;
    return {
      name,
      primary: { name: `${name}/cryptoKeyVersions/${key.primary}`, state: primary.state, protectionLevel: 'SOFTWARE', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
      purpose: 'ENCRYPT_DECRYPT',
      versionTemplate: { protectionLevel: 'SOFTWARE', algorithm: 'GOOGLE_SYMMETRIC_ENCRYPTION' },
    };
  }

  private field(json: Record<string, unknown>, name: string, required: boolean): Buffer {
    const v = json[name];
    if (v === undefined || v === null || v === '') {
      if (required) throw new ApiError('INVALID_ARGUMENT', `${name} is required.`);
      return Buffer.alloc(0);
    }
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) throw new ApiError('INVALID_ARGUMENT', `Invalid value at '${name}' (TYPE_BYTES), Base64 decoding failed.`);
    return Buffer.from(v, 'base64');
  }

  /** Checks a client's CRC32C field when present; true when it was given and matched. */
  private checkCrc(json: Record<string, unknown>, name: string, data: Buffer): boolean {
    const v = json[name];
    if (v === undefined || v === null) return false;
    const given = Number(typeof v === 'object' ? (v as { value?: unknown }).value : v);
    if (given !== crc32c(data)) throw new ApiError('INVALID_ARGUMENT', `The checksum in field ${name} did not match the data.`);
    return true;
  }

  private encrypt(name: string, json: Record<string, unknown>): Record<string, unknown> {
    const key = this.key(name);
    const plaintext = this.field(json, 'plaintext', true);
    const aad = this.field(json, 'additionalAuthenticatedData', false);
    if (plaintext.length > MAX_PLAINTEXT) throw new ApiError('INVALID_ARGUMENT', `The plaintext is larger than ${MAX_PLAINTEXT} bytes.`);
    const verifiedPlaintext = this.checkCrc(json, 'plaintextCrc32c', plaintext);
    const verifiedAad = this.checkCrc(json, 'additionalAuthenticatedDataCrc32c', aad);
    const version = key.versions[key.primary - 1] as KeyVersion;
    if (version.state !== 'ENABLED') {
      throw new ApiError('FAILED_PRECONDITION', `${name}/cryptoKeyVersions/${key.primary} is not enabled, current state is: ${version.state}.`);
    }
    const nonce = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', version.material, nonce);
    cipher.setAAD(Buffer.concat([Buffer.from(name), aad]));
    const versionBytes = Buffer.alloc(4);
    versionBytes.writeUInt32BE(key.primary);
    const ciphertext = Buffer.concat([CT_MAGIC, versionBytes, nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return {
      name: `${name}/cryptoKeyVersions/${key.primary}`,
      ciphertext: ciphertext.toString('base64'),
      ciphertextCrc32c: String(crc32c(ciphertext)),
      verifiedPlaintextCrc32c: verifiedPlaintext,
      verifiedAdditionalAuthenticatedDataCrc32c: verifiedAad,
      protectionLevel: 'SOFTWARE',
    };
  }

  private decrypt(name: string, json: Record<string, unknown>): Record<string, unknown> {
    const key = this.key(name);
    const ciphertext = this.field(json, 'ciphertext', true);
    const aad = this.field(json, 'additionalAuthenticatedData', false);
    this.decryptAads.push(aad.toString('base64'));
    this.checkCrc(json, 'ciphertextCrc32c', ciphertext);
    this.checkCrc(json, 'additionalAuthenticatedDataCrc32c', aad);
    const failed = new ApiError('INVALID_ARGUMENT', "Decryption failed: verify that 'name' refers to the correct CryptoKey.");
    const head = CT_MAGIC.length;
    if (ciphertext.length < head + 4 + 12 + 16 || !ciphertext.subarray(0, head).equals(CT_MAGIC)) throw failed;
    const number = ciphertext.readUInt32BE(head);
    const version = key.versions[number - 1];
    if (version === undefined) throw failed;
    if (version.state !== 'ENABLED') {
      throw new ApiError('FAILED_PRECONDITION', `${name}/cryptoKeyVersions/${number} is not enabled, current state is: ${version.state}.`);
    }
    const nonce = ciphertext.subarray(head + 4, head + 16);
    const decipher = crypto.createDecipheriv('aes-256-gcm', version.material, nonce);
    decipher.setAAD(Buffer.concat([Buffer.from(name), aad]));
    decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
    let plaintext: Buffer;
    try {
      plaintext = Buffer.concat([decipher.update(ciphertext.subarray(head + 16, ciphertext.length - 16)), decipher.final()]);
    } catch {
      throw failed;
    }
    return {
      plaintext: plaintext.toString('base64'),
      plaintextCrc32c: String(crc32c(plaintext)),
      usedPrimary: number === key.primary,
      protectionLevel: 'SOFTWARE',
    };
  }
}

