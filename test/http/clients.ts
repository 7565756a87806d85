// Two independent SigV4 clients for the admin HTTP API: curl's own signer (`--aws-sigv4`) and the
// AWS SDK's signer (@smithy/signature-v4) signing a plain node:http request. Neither shares code
// with the daemon's verifier beyond the SDK package itself.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';

export interface HttpAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** Parsed JSON when the answer is application/json. */
  json: unknown;
}

export interface Creds {
  accessKey: string;
  secretKey: string;
  region?: string;
}

/** A loopback port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** `curl --aws-sigv4 "aws:amz:REGION:s3" --user AK:SK`; the status comes from curl's -w. */
export function curl(
  url: string,
  creds: Creds | undefined,
  options: { method?: string; body?: string; headers?: string[]; /** local source address, e.g. 127.0.0.5 */ from?: string } = {},
): Promise<HttpAnswer> {
  // Headers go to stdout before the body (-D -): curl 7.88 crashes writing them to /dev/stderr.
  const args = ['-sS', '-o', '-', '-D', '-', '-w', '\n%{http_code}', '-X', options.method ?? 'GET'];
  if (options.from !== undefined) args.push('--interface', options.from);
  if (creds !== undefined) args.push('--aws-sigv4', `aws:amz:${creds.region ?? 'us-east-1'}:s3`, '--user', `${creds.accessKey}:${creds.secretKey}`);
  for (const h of options.headers ?? []) args.push('-H', h);
  if (options.body !== undefined) args.push('-H', 'content-type: application/json', '--data-binary', options.body);
  args.push(url);
  return new Promise((resolve, reject) => {
    const p = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    p.on('error', reject);
    p.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`curl exited with ${code}: ${err}`));
        return;
      }
      const nl = out.lastIndexOf('\n');
      let rest = out.slice(0, nl);
      const status = Number(out.slice(nl + 1));
      // One header block per response (an interim "100 Continue" comes first); the last one counts.
      let block = '';
      while (rest.startsWith('HTTP/')) {
        const end = rest.indexOf('\r\n\r\n');
        if (end < 0) break;
        block = rest.slice(0, end);
        rest = rest.slice(end + 4);
      }
      const text = rest;
      const headers: Record<string, string> = {};
      for (const line of block.split('\r\n')) {
        const m = /^([A-Za-z0-9-]+): (.*)$/.exec(line);
        if (m !== null) headers[(m[1] as string).toLowerCase()] = m[2] as string;
      }
      const json = (headers['content-type'] ?? '').startsWith('application/json') ? (JSON.parse(text) as unknown) : undefined;
      resolve({ status, headers, text, json });
    });
  });
}

export interface SdkRequest {
  method: string;
  path: string;
  query?: Record<string, string>;
  body?: string | Buffer;
  /** Sign as of this time (default now). */
  signingDate?: Date;
  /** Send x-amz-content-sha256 (signed) as the S3 SDKs do. Default true. */
  contentSha256?: boolean;
  /** Change the request after signing (tampering tests). */
  tamper?: (r: { path: string; query: Record<string, string>; headers: Record<string, string>; body: Buffer }) => void;
}

/** Signs with the AWS SDK's SignatureV4 and sends with node:http. */
export async function sdkRequest(port: number, creds: Creds, r: SdkRequest): Promise<HttpAnswer> {
  const body = r.body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(r.body) ? r.body : Buffer.from(r.body);
  const headers: Record<string, string> = { host: `127.0.0.1:${port}`, 'user-agent': 'sdk-signer-test/1.0' };
  if (body.length > 0) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  if (r.contentSha256 !== false) headers['x-amz-content-sha256'] = createHash('sha256').update(body).digest('hex');
  const signer = new SignatureV4({
    credentials: { accessKeyId: creds.accessKey, secretAccessKey: creds.secretKey },
    region: creds.region ?? 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false, applyChecksum: false,
  });
  const query = { ...(r.query ?? {}) };
  const signed = await signer.sign(
    { method: r.method, protocol: 'http:', hostname: '127.0.0.1', port, path: r.path, query, headers, body },
    r.signingDate !== undefined ? { signingDate: r.signingDate } : {},
  );
  const sent = { path: r.path, query, headers: { ...(signed.headers as Record<string, string>) }, body };
  r.tamper?.(sent);
  const qs = Object.entries(sent.query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&');
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: r.method, path: qs === '' ? sent.path : `${sent.path}?${qs}`, headers: sent.headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const json = (res.headers['content-type'] ?? '').startsWith('application/json') ? (JSON.parse(text) as unknown) : undefined;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('error', reject);
    req.end(sent.body);
  });
}
