// AWS Signature Version 4 verification for the admin HTTP API. The signature is recomputed with the
// AWS SDK's own signer (@smithy/signature-v4 with @aws-crypto/sha256-js) over the request as
// received: method, raw path, query, exactly the headers the client signed, and the payload hash
// (x-amz-content-sha256, checked against the body, or the body's own hash). The result is compared
// in constant time. No hand-written canonicalisation or HMAC here.
//
// What is required (S3 style, service "s3", the configured region, or the empty region that
// MinIO's madmin-go signs with and MinIO accepts): an Authorization header
// `AWS4-HMAC-SHA256 Credential=AK/YYYYMMDD/REGION/s3/aws4_request, SignedHeaders=…, Signature=…`;
// `host` and `x-amz-date` among the signed headers; x-amz-date within 15 minutes of our clock and on
// the credential's day; x-amz-content-sha256, when sent, a hex SHA-256 (no UNSIGNED-PAYLOAD: this is
// plain HTTP, the body must be covered) and signed. Presigned (query-string) requests are refused.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';

export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
export const SIGV4_SERVICE = 's3';
const ALGORITHM = 'AWS4-HMAC-SHA256';
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const HEX64 = /^[0-9a-f]{64}$/;
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export interface AdminCredentials {
  accessKey: string;
  secretKey: string;
  region: string;
}

/** Why a request was refused; `accessKey` is the one the client *claimed* (unverified). */
export class SignatureError extends Error {
  constructor(message: string, readonly accessKey?: string) {
    super(message);
    this.name = 'SignatureError';
  }
}

/** Query parameters as received, percent-decoded ('+' is a literal plus, as SigV4 sees it). */
export type RawQuery = Map<string, string[]>;

/** Splits `a=1&b=x%20y` into decoded pairs; throws on malformed percent-encoding. */
export function parseQuery(raw: string): RawQuery {
  const query: RawQuery = new Map();
  if (raw === '') return query;
  for (const part of raw.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = decodeURIComponent(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1));
    const list = query.get(key);
    if (list === undefined) query.set(key, [value]);
    else list.push(value);
  }
  return query;
}

/** A request's authorization, parsed and checked as far as it can be without the body. */
export interface ParsedAuthorization {
  accessKey: string;
  signedHeaders: string[];
  signature: string;
  signingDate: Date;
  /** The region of the client's credential scope: the configured one, or '' (madmin-go). */
  region: string;
  /** x-amz-content-sha256 as sent (lower-case hex), when sent. */
  declaredPayloadHash?: string;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  // Own properties only: "constructor" or "toString" must not look like headers that were sent.
  if (!Object.hasOwn(headers, name)) return undefined;
  const v = headers[name];
  if (typeof v === 'string') return v;
  return Array.isArray(v) ? v.join(',') : undefined;
}

/**
 * Checks everything that needs no body and no secret: the Authorization header's form, the access
 * key, scope, date and skew, the signed-header list. Throws SignatureError naming the problem.
 */
export function parseAuthorization(
  headers: IncomingHttpHeaders, query: RawQuery, creds: AdminCredentials, now: number,
): ParsedAuthorization {
  if (query.has('X-Amz-Signature') || query.has('X-Amz-Credential')) {
    throw new SignatureError('presigned (query-string) requests are not accepted; sign the Authorization header');
  }
  const auth = header(headers, 'authorization');
  if (auth === undefined || auth === '') throw new SignatureError('the request is not signed (no Authorization header)');
  if (!auth.startsWith(ALGORITHM + ' ')) {
    throw new SignatureError(`unsupported authorization scheme; expected ${ALGORITHM} (AWS Signature Version 4)`);
  }
  const fields = new Map<string, string>();
  for (const part of auth.slice(ALGORITHM.length + 1).split(',')) {
    const p = part.trim();
    const eq = p.indexOf('=');
    if (eq <= 0) throw new SignatureError('malformed Authorization header');
    const name = p.slice(0, eq);
    if (fields.has(name)) throw new SignatureError(`malformed Authorization header: ${name.slice(0, 32)} given twice`);
    fields.set(name, p.slice(eq + 1));
  }
  const credential = fields.get('Credential');
  const signedHeaderList = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeaderList === undefined || signature === undefined || fields.size !== 3) {
    throw new SignatureError('malformed Authorization header: expected Credential, SignedHeaders and Signature');
  }
  const scope = credential.split('/');
  if (scope.length !== 5) throw new SignatureError('malformed credential scope; expected AK/YYYYMMDD/REGION/s3/aws4_request');
  const [accessKey, day, region, service, terminator] = scope as [string, string, string, string, string];
  if (accessKey !== creds.accessKey) throw new SignatureError('unknown access key', accessKey);
  // madmin-go signs with an empty region and MinIO verifies with the scope as sent; a non-empty
  // region must still be this server's.
  if (region !== creds.region && region !== '') {
    throw new SignatureError(`credential scope region ${JSON.stringify(region.slice(0, 64))} is not this server's (${creds.region})`, accessKey);
  }
  if (service !== SIGV4_SERVICE || terminator !== 'aws4_request') {
    throw new SignatureError(`credential scope must name service "${SIGV4_SERVICE}" and end in aws4_request`, accessKey);
  }
  if (!HEX64.test(signature)) throw new SignatureError('malformed signature (expected 64 lower-case hex digits)', accessKey);

  const amzDate = header(headers, 'x-amz-date');
  if (amzDate === undefined) throw new SignatureError('x-amz-date header is required', accessKey);
  const m = AMZ_DATE.exec(amzDate);
  if (m === null) throw new SignatureError('x-amz-date must look like 20240131T235959Z', accessKey);
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  const signingDate = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  if (Number.isNaN(signingDate.getTime()) || signingDate.toISOString().replace(/[-:]|\.\d{3}/g, '') !== amzDate) {
    throw new SignatureError('x-amz-date is not a valid time', accessKey);
  }
  const skew = Math.abs(now - signingDate.getTime());
  if (skew > MAX_CLOCK_SKEW_MS) {
    throw new SignatureError(
      `request time ${amzDate} is ${Math.round(skew / 60_000)} minutes from the server's clock; at most 15 are allowed`,
      accessKey,
    );
  }
  if (day !== amzDate.slice(0, 8)) throw new SignatureError('credential scope date is not the day of x-amz-date', accessKey);

  const signedHeaders = signedHeaderList.split(';');
  for (const name of signedHeaders) {
    if (name === '' || name !== name.toLowerCase()) throw new SignatureError('SignedHeaders must be lower-case names separated by ";"', accessKey);
    if (name === 'authorization') throw new SignatureError('the Authorization header cannot be signed', accessKey);
    if (header(headers, name) === undefined) {
      throw new SignatureError(`signed header ${JSON.stringify(name.slice(0, 64))} is not in the request`, accessKey);
    }
  }
  for (const required of ['host', 'x-amz-date']) {
    if (!signedHeaders.includes(required)) throw new SignatureError(`${required} must be a signed header`, accessKey);
  }
  const parsed: ParsedAuthorization = { accessKey, signedHeaders, signature, signingDate, region };
  const declared = header(headers, 'x-amz-content-sha256');
  if (declared !== undefined) {
    if (!HEX64.test(declared)) {
      throw new SignatureError('x-amz-content-sha256 must be the hex SHA-256 of the body (unsigned or streaming payloads are not accepted)', accessKey);
    }
    if (!signedHeaders.includes('x-amz-content-sha256')) throw new SignatureError('x-amz-content-sha256 must be a signed header', accessKey);
    parsed.declaredPayloadHash = declared;
  }
  return parsed;
}

export function sha256Hex(body: Buffer): string {
  return body.length === 0 ? EMPTY_SHA256 : createHash('sha256').update(body).digest('hex');
}

export interface SignedRequest {
  method: string;
  /** The path exactly as received (still percent-encoded), without the query. */
  rawPath: string;
  query: RawQuery;
  headers: IncomingHttpHeaders;
}

/** Recomputes and compares the signature. `payloadHash` is the hex SHA-256 the client signed. */
export class SigV4Verifier {
  private readonly signer: SignatureV4;

  constructor(private readonly creds: AdminCredentials) {
    this.signer = new SignatureV4({
      credentials: { accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey },
      region: creds.region,
      service: SIGV4_SERVICE,
      sha256: Sha256,
      // S3 signs the path as sent (encoded once), not normalised and double-encoded.
      uriEscapePath: false,
      // Sign exactly the headers the client listed; never add x-amz-content-sha256 ourselves.
      applyChecksum: false,
    });
  }

  async verify(request: SignedRequest, auth: ParsedAuthorization, payloadHash: string): Promise<void> {
    const headers: Record<string, string> = {};
    for (const name of auth.signedHeaders) headers[name] = header(request.headers, name) as string;
    // The signer takes the payload hash from this header when present (it is not signed then
    // unless the client signed it, in which case it is already in `headers` with this value).
    headers['x-amz-content-sha256'] = payloadHash;
    const signable = new Set(auth.signedHeaders);
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of request.query) query[k] = v.length === 1 ? (v[0] as string) : v;
    const host = header(request.headers, 'host') ?? '';
    const signed = await this.signer.sign(
      { method: request.method, protocol: 'http:', hostname: host, path: request.rawPath, query, headers },
      // Only what the client signed is canonicalised, even headers the SDK would never sign itself.
      {
        signingDate: auth.signingDate, signingRegion: auth.region,
        signableHeaders: signable, unsignableHeaders: unsignableExcept(headers, signable),
      },
    );
    const expected = /Signature=([0-9a-f]{64})$/.exec(String(signed.headers.authorization ?? ''))?.[1];
    if (expected === undefined) throw new SignatureError('the signature could not be computed', auth.accessKey);
    const a = Buffer.from(expected, 'latin1');
    const b = Buffer.from(auth.signature, 'latin1');
    if (a.length !== b.length || !timingSafeEqual(a, b)) {
      throw new SignatureError('the request signature does not match (wrong secret key, or the request was altered)', auth.accessKey);
    }
  }

  get accessKey(): string {
    return this.creds.accessKey;
  }
}

/** Headers in `headers` that the client did not sign: kept out of the canonical request. */
function unsignableExcept(headers: Record<string, string>, signed: ReadonlySet<string>): Set<string> {
  const out = new Set<string>();
  for (const name of Object.keys(headers)) if (!signed.has(name)) out.add(name);
  return out;
}
