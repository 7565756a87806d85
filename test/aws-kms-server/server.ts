// A TEST SERVER that speaks the part of the AWS KMS API rustfs-kms uses, from AWS's public API
// reference. It is NOT AWS KMS: it keeps keys in memory and exists because AWS is not reachable where
// the tests run. The real @aws-sdk/client-kms talks to it unchanged (endpoint override only).
//
// Protocol: AWS JSON 1.1 — `POST /`, `X-Amz-Target: TrentService.<Operation>`, `Content-Type:
// application/x-amz-json-1.1`, blobs in base64; errors `{"__type": "<Name>", "message": ...}` with
// 400 (500 for KMSInternalException). Every request's SigV4 signature (service "kms") is recomputed
// with @smithy/signature-v4 from the configured access key and secret and compared.
// Operations: Encrypt, Decrypt, DescribeKey, GenerateRandom, CreateKey, CreateAlias, EnableKey,
// DisableKey, RotateKeyOnDemand, UpdateAlias. Keys are ids, key ARNs, alias/NAME or alias ARNs.
// Ciphertext blobs really encrypt: AES-256-GCM under the key's backing key (one per rotation; old
// ones stay for Decrypt), the EncryptionContext authenticated, so a wrong context or key fails.
//
// Fault switches: down()/up(), throttle(n) (n × 400 ThrottlingException), failNext(n, status) (5xx
// KMSInternalException), delayMs, deny(action) (AccessDeniedException). `requests` records each call.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';

export interface AwsKmsTestServerOptions {
  accessKeyId?: string;
  secretAccessKey?: string;
  region?: string;
  account?: string;
}

export interface RecordedCall {
  operation: string;
  status: number;
  /** The __type of an error answer. */
  error?: string;
}

interface TestKey {
  id: string;
  arn: string;
  state: 'Enabled' | 'Disabled' | 'PendingDeletion';
  /** Backing keys, oldest first; Encrypt uses the last. */
  backing: Buffer[];
  created: number;
}

class KmsError extends Error {
  constructor(readonly type: string, message: string, readonly status = 400) {
    super(message);
  }
}

const MAGIC = Buffer.from('TKMS1', 'latin1');
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]*)\/kms\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/;

export class AwsKmsTestServer {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly region: string;
  readonly account: string;
  readonly requests: RecordedCall[] = [];
  delayMs = 0;
  private readonly keys = new Map<string, TestKey>();
  private readonly aliases = new Map<string, string>();
  private readonly denied = new Set<string>();
  private throttles = 0;
  private failures: { n: number; status: number } = { n: 0, status: 500 };
  private server: http.Server;
  private readonly sockets = new Set<Socket>();
  private port = 0;
  private readonly signer: SignatureV4;

  constructor(o: AwsKmsTestServerOptions = {}) {
    this.accessKeyId = o.accessKeyId ?? 'AKIATESTSERVER000001';
    this.secretAccessKey = o.secretAccessKey ?? crypto.randomBytes(30).toString('base64');
    this.region = o.region ?? 'eu-west-1';
    this.account = o.account ?? '111122223333';
    this.signer = new SignatureV4({
      credentials: { accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey },
      region: this.region, service: 'kms', sha256: Sha256, applyChecksum: false,
    });
    this.server = this.makeServer();
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    await this.listen(0);
    return this;
  }

  async close(): Promise<void> {
    await this.down();
  }

  /** The port refuses connections (open ones are cut) until up(). */
  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async up(): Promise<void> {
    this.server = this.makeServer();
    await this.listen(this.port);
  }

  throttle(n: number): void {
    this.throttles = n;
  }

  failNext(n: number, status = 500): void {
    this.failures = { n, status };
  }

  /** Refuses `action` (e.g. "kms:Encrypt") with AccessDeniedException until allow(). */
  deny(action: string): void {
    this.denied.add(action);
  }

  allow(action: string): void {
    this.denied.delete(action);
  }

  /** Calls of one operation so far. */
  count(operation: string): number {
    return this.requests.filter((r) => r.operation === operation).length;
  }

  // ---- key administration, also reachable through the API ----------------------------------------

  createKey(): { keyId: string; arn: string } {
    const id = crypto.randomUUID();
    const arn = `arn:aws:kms:${this.region}:${this.account}:key/${id}`;
    this.keys.set(id, { id, arn, state: 'Enabled', backing: [crypto.randomBytes(32)], created: Math.floor(Date.now() / 1000) });
    return { keyId: id, arn };
  }

  createAlias(alias: string, keyId: string): void {
    if (!/^alias\/[a-zA-Z0-9:/_-]{1,250}$/.test(alias) || alias.startsWith('alias/aws/')) throw new KmsError('ValidationException', `Alias must start with the prefix "alias/"`);
    if (this.aliases.has(alias)) throw new KmsError('AlreadyExistsException', `An alias with the name ${this.aliasArn(alias)} already exists`);
    this.aliases.set(alias, this.resolve(keyId).id);
  }

  /** Points an existing alias at another key (UpdateAlias). */
  updateAlias(alias: string, keyId: string): void {
    if (!this.aliases.has(alias)) throw new KmsError('NotFoundException', `Alias ${this.aliasArn(alias)} is not found.`);
    this.aliases.set(alias, this.resolve(keyId).id);
  }

  setState(keyId: string, state: TestKey['state']): void {
    this.resolve(keyId, true).state = state;
  }

  /** A new backing key for Encrypt; Decrypt still opens blobs of every earlier one (AWS rotation). */
  rotate(keyId: string): void {
    this.resolve(keyId, true).backing.push(crypto.randomBytes(32));
  }

  // ---- HTTP ---------------------------------------------------------------------------------------

  private makeServer(): http.Server {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return server;
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : target;
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    let status = 200;
    let answer: Record<string, unknown>;
    try {
      if (req.method !== 'POST' || req.url !== '/') throw new KmsError('UnknownOperationException', `${req.method} ${req.url} is not a KMS request`, 404);
      if (!String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) throw new KmsError('SerializationException', 'Content-Type must be application/x-amz-json-1.1');
      await this.verifySignature(req, body);
      if (this.failures.n > 0) {
        this.failures.n -= 1;
        throw new KmsError('KMSInternalException', 'The request was rejected because an internal exception occurred (test switch).', this.failures.status);
      }
      if (this.throttles > 0) {
        this.throttles -= 1;
        throw new KmsError('ThrottlingException', 'Rate exceeded');
      }
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        throw new KmsError('SerializationException', 'Start of structure or map found where not expected.');
      }
      answer = this.dispatch(operation, input);
    } catch (err) {
      const e = err instanceof KmsError ? err : new KmsError('KMSInternalException', (err as Error).message, 500);
      status = e.status;
      answer = { __type: e.type, message: e.message };
    }
    this.requests.push({ operation, status, ...(status !== 200 ? { error: String(answer.__type) } : {}) });
    const text = JSON.stringify(answer);
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': crypto.randomUUID(), 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async verifySignature(req: http.IncomingMessage, body: Buffer): Promise<void> {
    const m = AUTH.exec(String(req.headers.authorization ?? ''));
    if (m === null) throw new KmsError('MissingAuthenticationTokenException', 'Missing Authentication Token');
    const [, accessKey, day, region, signedList, signature] = m as unknown as [string, string, string, string, string, string];
    if (accessKey !== this.accessKeyId) throw new KmsError('UnrecognizedClientException', 'The security token included in the request is invalid.');
    const date = AMZ_DATE.exec(String(req.headers['x-amz-date'] ?? ''));
    if (date === null || !String(req.headers['x-amz-date']).startsWith(day)) throw new KmsError('InvalidSignatureException', 'X-Amz-Date is missing or not on the credential day');
    if (region !== this.region) throw new KmsError('InvalidSignatureException', `Credential should be scoped to a valid region, not '${region}'.`);
    const signedHeaders = signedList.split(';');
    if (!signedHeaders.includes('host') || !signedHeaders.includes('x-amz-date')) throw new KmsError('InvalidSignatureException', 'host and x-amz-date must be signed');
    const headers: Record<string, string> = {};
    for (const h of signedHeaders) headers[h] = String(req.headers[h] ?? '');
    headers['x-amz-content-sha256'] = crypto.createHash('sha256').update(body).digest('hex');
    const unsignable = new Set(Object.keys(headers).filter((h) => !signedHeaders.includes(h)));
    const [, y, mo, d, h, mi, s] = date.map(Number) as [number, number, number, number, number, number, number];
    const signed = await this.signer.sign(
      { method: 'POST', protocol: 'http:', hostname: headers.host ?? '', path: '/', query: {}, headers, body },
      { signingDate: new Date(Date.UTC(y, mo - 1, d, h, mi, s)), signableHeaders: new Set(signedHeaders), unsignableHeaders: unsignable },
    );
    const expected = /Signature=([0-9a-f]{64})$/.exec(String(signed.headers.authorization ?? ''))?.[1] ?? '';
    if (expected.length !== signature.length || !crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) {
      throw new KmsError('InvalidSignatureException', 'The request signature we calculated does not match the signature you provided.');
    }
  }

  // ---- operations -----------------------------------------------------------------------------------

  private dispatch(op: string, input: Record<string, unknown>): Record<string, unknown> {
    switch (op) {
      case 'Encrypt': return this.encrypt(input);
      case 'Decrypt': return this.decrypt(input);
      case 'DescribeKey': {
        this.authorize('kms:DescribeKey');
        return { KeyMetadata: this.metadata(this.resolve(str(input, 'KeyId'))) };
      }
      case 'GenerateRandom': {
        const n = input.NumberOfBytes;
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 1024) throw new KmsError('ValidationException', 'NumberOfBytes must be from 1 to 1024');
        return { Plaintext: crypto.randomBytes(n).toString('base64') };
      }
      case 'CreateKey': return { KeyMetadata: this.metadata(this.resolve(this.createKey().keyId)) };
      case 'CreateAlias': this.createAlias(str(input, 'AliasName'), str(input, 'TargetKeyId')); return {};
      case 'UpdateAlias': this.updateAlias(str(input, 'AliasName'), str(input, 'TargetKeyId')); return {};
      case 'EnableKey': this.setState(str(input, 'KeyId'), 'Enabled'); return {};
      case 'DisableKey': this.setState(str(input, 'KeyId'), 'Disabled'); return {};
      case 'RotateKeyOnDemand': this.rotate(str(input, 'KeyId')); return { KeyId: this.resolve(str(input, 'KeyId')).arn };
      default: throw new KmsError('UnknownOperationException', `Unknown operation ${op}`);
    }
  }

  private encrypt(input: Record<string, unknown>): Record<string, unknown> {
    this.authorize('kms:Encrypt');
    const key = this.usable(this.resolve(str(input, 'KeyId')));
    const plaintext = Buffer.from(str(input, 'Plaintext'), 'base64');
    if (plaintext.length < 1 || plaintext.length > 4096) throw new KmsError('ValidationException', 'Plaintext must be 1 to 4096 bytes');
    const version = key.backing.length - 1;
    const header = Buffer.concat([MAGIC, Buffer.from(key.id, 'latin1'), u32(version)]);
    const nonce = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', key.backing[version] as Buffer, nonce);
    cipher.setAAD(Buffer.concat([header, contextBytes(input.EncryptionContext)]));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return { CiphertextBlob: Buffer.concat([header, nonce, ct, cipher.getAuthTag()]).toString('base64'), KeyId: key.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
  }

  private decrypt(input: Record<string, unknown>): Record<string, unknown> {
    this.authorize('kms:Decrypt');
    const blob = Buffer.from(str(input, 'CiphertextBlob'), 'base64');
    const invalid = new KmsError('InvalidCiphertextException', ''); // AWS says nothing more
    if (blob.length < MAGIC.length + 36 + 4 + 12 + 16 || !blob.subarray(0, MAGIC.length).equals(MAGIC)) throw invalid;
    const id = blob.subarray(MAGIC.length, MAGIC.length + 36).toString('latin1');
    const owner = this.keys.get(id);
    if (owner === undefined) throw invalid;
    if (input.KeyId !== undefined && this.resolve(str(input, 'KeyId')).id !== owner.id) {
      throw new KmsError('IncorrectKeyException', 'The key ID in the request does not identify a KMS key that can perform this operation.');
    }
    this.usable(owner);
    const headerEnd = MAGIC.length + 36 + 4;
    const backing = owner.backing[blob.readUInt32BE(MAGIC.length + 36)];
    if (backing === undefined) throw invalid;
    try {
      const decipher = crypto.createDecipheriv('aes-256-gcm', backing, blob.subarray(headerEnd, headerEnd + 12));
      decipher.setAAD(Buffer.concat([blob.subarray(0, headerEnd), contextBytes(input.EncryptionContext)]));
      decipher.setAuthTag(blob.subarray(blob.length - 16));
      const plaintext = Buffer.concat([decipher.update(blob.subarray(headerEnd + 12, blob.length - 16)), decipher.final()]);
      return { Plaintext: plaintext.toString('base64'), KeyId: owner.arn, EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
    } catch {
      throw invalid;
    }
  }

  private authorize(action: string): void {
    if (this.denied.has(action)) {
      throw new KmsError('AccessDeniedException',
        `User: arn:aws:iam::${this.account}:user/rustfs-kms-test is not authorized to perform: ${action} because no identity-based policy allows the ${action} action`);
    }
  }

  private usable(key: TestKey): TestKey {
    if (key.state === 'Disabled') throw new KmsError('DisabledException', `${key.arn} is disabled.`);
    if (key.state === 'PendingDeletion') throw new KmsError('KMSInvalidStateException', `${key.arn} is pending deletion.`);
    return key;
  }

  private aliasArn(alias: string): string {
    return `arn:aws:kms:${this.region}:${this.account}:${alias}`;
  }

  /** A key id, key ARN, alias/NAME or alias ARN → the key (NotFoundException as AWS words it). */
  private resolve(ref: string, _admin = false): TestKey {
    const arn = /^arn:aws:kms:([a-z0-9-]+):(\d{12}):(.+)$/.exec(ref);
    const local = arn !== null ? arn[3] as string : ref;
    const elsewhere = arn !== null && (arn[1] !== this.region || arn[2] !== this.account);
    if (local.startsWith('alias/')) {
      const id = elsewhere ? undefined : this.aliases.get(local);
      const key = id !== undefined ? this.keys.get(id) : undefined;
      if (key === undefined) throw new KmsError('NotFoundException', `Alias ${this.aliasArn(local)} is not found.`);
      return key;
    }
    const id = local.startsWith('key/') ? local.slice(4) : local;
    const key = elsewhere ? undefined : this.keys.get(id);
    if (key === undefined) throw new KmsError('NotFoundException', `Key '${arn !== null ? ref : `arn:aws:kms:${this.region}:${this.account}:key/${id}`}' does not exist`);
    return key;
  }

  private metadata(key: TestKey): Record<string, unknown> {
    return {
      AWSAccountId: this.account, KeyId: key.id, Arn: key.arn, CreationDate: key.created, Enabled: key.state === 'Enabled',
      KeyState: key.state, KeyUsage: 'ENCRYPT_DECRYPT', KeySpec: 'SYMMETRIC_DEFAULT', CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'], KeyManager: 'CUSTOMER', Origin: 'AWS_KMS', MultiRegion: false, Description: '',
    };
  }
}

function str(input: Record<string, unknown>, name: string): string {
  const v = input[name];
  if (typeof v !== 'string' || v === '') throw new KmsError('ValidationException', `1 validation error detected: Value at '${name[0]?.toLowerCase()}${name.slice(1)}' failed to satisfy constraint: Member must not be null`);
  return v;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** The EncryptionContext as authenticated data: sorted pairs, so the order of the map does not matter. */
function contextBytes(ctx: unknown): Buffer {
  if (ctx === undefined || ctx === null) return Buffer.alloc(0);
  if (typeof ctx !== 'object') throw new KmsError('ValidationException', 'EncryptionContext must be a map');
  const pairs = Object.entries(ctx as Record<string, unknown>).map(([k, v]) => [k, String(v)]).sort(([a], [b]) => (a! < b! ? -1 : 1));
  return Buffer.from(JSON.stringify(pairs), 'utf8');
}
