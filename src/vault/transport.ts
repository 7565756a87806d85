// The HTTP layer under node-vault. node-vault 0.12 sends through axios and lets a caller replace that
// layer through its documented `request-promise` option; we do, because its own layer has edges a key
// manager cannot accept:
//   - it sets `strictSSL: !process.env.VAULT_SKIP_VERIFY`, so VAULT_SKIP_VERIFY=false (a non-empty,
//     truthy string) turns certificate verification OFF;
//   - axios picks up HTTP_PROXY / HTTPS_PROXY from the environment, and node-vault cannot pass it
//     `proxy: false`;
//   - axios follows redirects (with the X-Vault-Token header) and has no timeout unless one is given.
// This transport verifies certificates always (CA file, optional client certificate, optional SNI name),
// never reads proxy variables or VAULT_* variables, never follows redirects, and puts a hard deadline
// on every request. Request and response bytes are wiped once handled; the strings JSON needs cannot be.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { VERSION } from '../package-info.js';

export interface TransportTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
}

export interface TransportOptions {
  /** http(s) origin, optionally with a path prefix; no trailing slash. */
  address: string;
  tls: TransportTls;
  /** Deadline of every request unless the call gives its own. */
  timeoutMs: number;
  /** Largest response body accepted (default 8 MiB). */
  maxResponseBytes?: number;
}

/** What node-vault hands its request layer (the subset it uses). */
export interface TransportRequest {
  method: string;
  uri: string;
  headers?: Record<string, string>;
  json?: unknown;
  /** Per-call deadline in ms. */
  timeout?: number;
}

/** What node-vault expects back. */
export interface TransportResponse {
  statusCode: number;
  body: unknown;
  request: { path: string };
}

/** A request that got no HTTP answer: refused, reset, timed out, TLS failure, unparseable reply. */
export class VaultTransportError extends Error {
  constructor(message: string, readonly code: string) {
    super(message);
    this.name = 'VaultTransportError';
  }
}

const LOGIN_PATH = /\/v1\/auth\/.+\/login(?:\/[^/]+)?$/;

export class VaultTransport {
  private readonly agent: http.Agent;
  private readonly secure: boolean;
  private readonly maxResponseBytes: number;
  private closed = false;

  constructor(private readonly options: TransportOptions) {
    this.secure = options.address.startsWith('https:');
    this.maxResponseBytes = options.maxResponseBytes ?? 8 * 1024 * 1024;
    if (this.secure) {
      const { caFile, certFile, keyFile, serverName } = options.tls;
      this.agent = new https.Agent({
        keepAlive: true,
        maxSockets: 32,
        rejectUnauthorized: true, // whatever VAULT_SKIP_VERIFY says
        minVersion: 'TLSv1.2',
        ...(caFile !== undefined ? { ca: readFileSync(caFile) } : {}),
        ...(certFile !== undefined ? { cert: readFileSync(certFile) } : {}),
        ...(keyFile !== undefined ? { key: readFileSync(keyFile) } : {}),
        ...(serverName !== undefined ? { servername: serverName } : {}),
      });
    } else {
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    }
  }

  /** True when TLS settings are configured but the address is plain http (they are then unused). */
  get tlsIgnored(): boolean {
    const t = this.options.tls;
    return !this.secure && (t.caFile !== undefined || t.certFile !== undefined || t.serverName !== undefined);
  }

  /** node-vault's `request-promise` hook: `.defaults(rpDefaults)` returns the request function. */
  asRequestPromise(): { defaults: (ignored: unknown) => (req: TransportRequest) => Promise<TransportResponse> } {
    // rpDefaults (json, strictSSL from VAULT_SKIP_VERIFY, ...) are deliberately ignored.
    return { defaults: () => (req: TransportRequest) => this.send(req) };
  }

  /**
   * One request. A kept-alive connection that the server closed while idle fails at once with a
   * reset; that request never reached Vault, so it is sent again once on a fresh connection.
   */
  async send(req: TransportRequest): Promise<TransportResponse> {
    try {
      return await this.sendOnce(req);
    } catch (err) {
      if (err instanceof StaleConnection) return this.sendOnce(req);
      throw err;
    }
  }

  private sendOnce(req: TransportRequest): Promise<TransportResponse> {
    if (this.closed) return Promise.reject(new VaultTransportError('Vault client is closed', 'ECLOSED'));
    const url = new URL(req.uri);
    const timeoutMs = req.timeout ?? this.options.timeoutMs;
    const headers: Record<string, string> = {
      'User-Agent': `rustfs-kmsd/${VERSION}`,
      Accept: 'application/json',
      'X-Vault-Request': 'true',
    };
    for (const [k, v] of Object.entries(req.headers ?? {})) {
      if (typeof v === 'string') headers[k] = v;
    }
    // Login endpoints take no token; a stale one must not be sent along.
    if (LOGIN_PATH.test(url.pathname)) delete headers['X-Vault-Token'];
    let body: Buffer | undefined;
    if (req.json !== undefined && req.json !== null && (req.method === 'POST' || req.method === 'PUT' || req.method === 'PATCH')) {
      body = Buffer.from(JSON.stringify(req.json), 'utf8');
      headers['Content-Type'] ??= 'application/json';
      headers['Content-Length'] = String(body.length);
    }
    const mod = this.secure ? https : http;
    return new Promise<TransportResponse>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const finish = (err: Error | null, res?: TransportResponse) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        body?.fill(0);
        for (const c of chunks) c.fill(0);
        if (err !== null) reject(err);
        else resolve(res as TransportResponse);
      };
      let answered = false;
      const request = mod.request(url, { method: req.method, headers, agent: this.agent }, (res) => {
        answered = true;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > this.maxResponseBytes) {
            request.destroy(new VaultTransportError(`response larger than ${this.maxResponseBytes} bytes`, 'ETOOBIG'));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => finish(wrapError(err, timeoutMs)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 300 && status < 400) {
            finish(new VaultTransportError(`answered ${status} redirecting to ${res.headers.location ?? '?'}; redirects are not followed`, 'EREDIRECT'));
            return;
          }
          let parsed: unknown;
          if (size > 0) {
            const all = Buffer.concat(chunks, size);
            try {
              parsed = JSON.parse(all.toString('utf8'));
            } catch {
              parsed = undefined;
              if (status < 300) {
                all.fill(0);
                finish(new VaultTransportError(`answered ${status} with a body that is not JSON`, 'EBADBODY'));
                return;
              }
            }
            all.fill(0);
          }
          finish(null, { statusCode: status, body: parsed, request: { path: url.pathname } });
        });
      });
      const timer = setTimeout(() => {
        request.destroy(new VaultTransportError(`no answer within ${timeoutMs} ms`, 'ETIMEDOUT'));
      }, timeoutMs);
      request.on('error', (err) => {
        const code = (err as NodeJS.ErrnoException).code;
        if (!answered && request.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE')) {
          finish(new StaleConnection(err.message, code));
          return;
        }
        finish(wrapError(err, timeoutMs));
      });
      request.end(body);
    });
  }

  close(): void {
    this.closed = true;
    this.agent.destroy();
  }
}

class StaleConnection extends VaultTransportError {}

function wrapError(err: Error, timeoutMs: number): VaultTransportError {
  if (err instanceof VaultTransportError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  if (code === 'ECONNRESET' && /socket hang up/.test(err.message)) {
    return new VaultTransportError('connection closed before an answer (socket hang up)', code);
  }
  if (code === 'ETIMEDOUT') return new VaultTransportError(`no answer within ${timeoutMs} ms`, code);
  return new VaultTransportError(err.message, code);
}
