// The MinIO-compatible admin HTTP API (off unless admin_http is configured). One request pipeline,
// KES-style, enforcing each route's declarations in a fixed order:
//
//   method/path → SigV4 signature → body limit → arguments → Pipeline.run (policy, handler, audit)
//   → status mapping
//
// The verified access key is the identity the policy sees (Caller kind 'access-key', sourceIp the
// TCP peer). Requests refused before the pipeline (unknown route, bad signature, body too large,
// bad parameters) are audited here, with the same sink, so every request leaves one audit line.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, isIP, type Socket } from 'node:net';
import { lstatSync, readFileSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { KmsError } from '../errors.js';
import type { Caller } from '../access/identity.js';
import type { AuditEvent, AuditSink, Pipeline } from '../ops/pipeline.js';
import type { OpName, WireContext } from '../ops/protocol.js';
import type { Metrics } from '../metrics/metrics.js';
import { assertPrivatePath, assertTrustedDirectory } from '../permissions.js';
import { httpStatus, PREFIXES, ROUTES, type Route, type RouteAnswer, type RouteEnv, type RouteRequest, type Prefix } from './routes.js';
import { RouteMatcher } from './route-match.js';
import { authErrorStyle, NotImplementedError, renderError, type ErrorStyle } from './errors.js';
import { isOpName } from '../ops/protocol.js';
import {
  SigV4Verifier, SignatureError, parseAuthorization, parseQuery, sha256Hex,
  type AdminCredentials, type ParsedAuthorization, type RawQuery,
} from './sigv4.js';
import type { Logger as AdminHttpLogger } from '../logging.js';
import type { Duplex } from 'node:stream';
import { ConnectionGuard } from './connections.js';

export type { Logger as AdminHttpLogger } from '../logging.js';

export interface AdminHttpLimits {
  /** Time to receive the request headers. Default 5 s. */
  headersTimeoutMs: number;
  /** Time to receive the whole request. Default 30 s. */
  requestTimeoutMs: number;
  /** A connection with no request in progress (just opened, or answered) is closed after this. Default 5 s. */
  idleTimeoutMs: number;
  /** Concurrent connections; a newcomer over it evicts the longest-idle one (see connections.ts). Default 128. */
  maxConnections: number;
  /** Concurrent connections from one source address. Default 64. */
  maxConnectionsPerSource: number;
  /** Total size of the request headers. Default 16 KiB. */
  maxHeaderBytes: number;
}

export const DEFAULT_ADMIN_HTTP_LIMITS: AdminHttpLimits = {
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 30_000,
  idleTimeoutMs: 5_000,
  maxConnections: 128,
  maxConnectionsPerSource: 64,
  maxHeaderBytes: 16 * 1024,
};

/** How often Node checks the header and request deadlines (its default, 30 s, lets them overrun that much). */
const DEADLINE_CHECK_MS = 1_000;

export interface AdminHttpOptions {
  /** `host:port` (e.g. `127.0.0.1:9000`, `[::1]:9000`, port 0 for any free port) or an absolute Unix socket path. */
  listen: string;
  credentials: AdminCredentials;
  pipeline: Pipeline;
  /** The pipeline's audit sink, for requests refused before they reach the pipeline. */
  audit: AuditSink;
  metrics?: Metrics;
  defaultKeyId?: string;
  logger: AdminHttpLogger;
  limits?: Partial<AdminHttpLimits>;
  /** Hooks and facts for RustFS's service routes (reload, cache, deployment); see RouteEnv. */
  env?: Pick<RouteEnv, 'reload' | 'deployment' | 'clearCache'>;
}

/** How a refusal is written: the error style of the route (or prefix) and the status it maps to. */
interface ErrorForm {
  style: ErrorStyle;
  resource: string;
  route?: Route;
}

const UNMATCHED = 'unmatched';
/** Audit field (under claimed.extra) for the first 16 hex digits of the SHA-256 of an access key that failed verification. */
const UNVERIFIED_KEY_FIELD = 'unverified_access_key_sha256_16';

/** A request to no route is still verified (signature first): its body is read up to this. */
const UNMATCHED_BODY_BYTES = 4096;
const UNMATCHED_TIMEOUT_MS = 10_000;
const MAX_CLAIM_BYTES = 1024;

/** Reads the SigV4 secret key: a private file (0600, ours), trailing newline stripped, never logged. */
export function readSecretKeyFile(path: string): string {
  assertPrivatePath(path, 'admin_http.secret_key_file');
  const text = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
  if (text.length === 0) throw new Error(`admin_http.secret_key_file ${path} is empty`);
  if (text.length < 8 || /[\s]/.test(text)) {
    throw new Error(`admin_http.secret_key_file ${path}: the secret key must be at least 8 characters with no whitespace`);
  }
  return text;
}

function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  if (isIP(host) === 6) return host === '::1' || host.startsWith('::ffff:127.');
  return false;
}

function parseListen(listen: string): { path: string } | { host: string; port: number } {
  if (listen.startsWith('/')) return { path: listen };
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(listen);
  if (m === null) throw new Error(`admin_http.listen: expected host:port or an absolute socket path, got ${JSON.stringify(listen)}`);
  const port = Number(m[3]);
  if (port > 65_535) throw new Error(`admin_http.listen: port ${port} is out of range`);
  return { host: (m[1] ?? m[2]) as string, port };
}

function truncate(s: string, bytes: number): string {
  return Buffer.byteLength(s) <= bytes ? s : Buffer.from(s).subarray(0, bytes).toString('utf8').replace(/\uFFFD$/, '');
}

/** A stale Unix socket (nothing listening) is replaced; anything else at the path is refused. */
async function prepareUnixPath(path: string): Promise<void> {
  assertTrustedDirectory(dirname(path), 'admin_http.listen socket directory');
  let isSocket: boolean;
  try {
    const st = lstatSync(path);
    isSocket = st.isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new Error(`admin_http.listen: ${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
  if (live) throw new Error(`admin_http.listen: ${path} is in use by another process`);
  unlinkSync(path);
}

export class AdminHttpServer {
  private readonly server: Server;
  private readonly routes = new RouteMatcher(ROUTES);
  private readonly verifier: SigV4Verifier;
  private readonly connections: ConnectionGuard;
  private readonly limits: AdminHttpLimits;
  private readonly env: RouteEnv;
  private boundAddress = '';

  private constructor(private readonly options: AdminHttpOptions) {
    this.limits = { ...DEFAULT_ADMIN_HTTP_LIMITS, ...(options.limits ?? {}) };
    this.verifier = new SigV4Verifier(options.credentials);
    this.env = {
      ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
      ...(options.defaultKeyId !== undefined ? { defaultKeyId: options.defaultKeyId } : {}),
      ...(options.env ?? {}),
      authorizer: () => options.pipeline.currentAuthorizer,
      adminAccessKey: options.credentials.accessKey,
    };
    this.connections = new ConnectionGuard(this.limits);
    this.server = createServer({ maxHeaderSize: this.limits.maxHeaderBytes, connectionsCheckingInterval: DEADLINE_CHECK_MS }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        options.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'admin HTTP request failed unexpectedly');
        if (!res.headersSent) this.writeError(res, new KmsError('Internal', 'the request failed inside the daemon; see its log'));
        else res.destroy();
      });
    });
    this.server.headersTimeout = this.limits.headersTimeoutMs;
    this.server.requestTimeout = this.limits.requestTimeoutMs;
    this.server.keepAliveTimeout = this.limits.idleTimeoutMs;
    // No server.maxConnections: refusing newcomers at a cap is what let idle connections lock the admin out.
    this.server.on('connection', (s: Socket) => this.connections.admit(s));
    // Expect: 100-continue: the client waits for our word before sending the body, so a body over
    // the route's limit (or any unauthenticated one) is refused without ever being sent.
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res, true).catch((err: unknown) => {
        options.logger.error({ err: err instanceof Error ? err.message : String(err) }, 'admin HTTP request failed unexpectedly');
        if (!res.headersSent) this.writeError(res, new KmsError('Internal', 'the request failed inside the daemon; see its log'));
        else res.destroy();
      });
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.onClientError(err, socket as Socket));
  }

  /** Starts listening; rejects (with the reason) when the address cannot be used. */
  static async start(options: AdminHttpOptions): Promise<AdminHttpServer> {
    const server = new AdminHttpServer(options);
    await server.listen();
    return server;
  }

  /** `http://host:port` or `unix:/path`. */
  get address(): string {
    return this.boundAddress;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  private async listen(): Promise<void> {
    const target = parseListen(this.options.listen);
    const listenOnce = (arg: { path: string } | { host: string; port: number }): Promise<void> =>
      new Promise((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(arg, () => {
          this.server.off('error', reject);
          resolve();
        });
      });
    if ('path' in target) {
      await prepareUnixPath(target.path);
      const previous = process.umask(0o177); // the socket is born 0600: only the daemon's user
      try {
        await listenOnce(target);
      } finally {
        process.umask(previous);
      }
      this.boundAddress = `unix:${target.path}`;
    } else {
      await listenOnce(target);
      const a = this.server.address();
      const port = typeof a === 'object' && a !== null ? a.port : target.port;
      this.boundAddress = `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${port}`;
      if (!isLoopback(target.host)) {
        this.options.logger.warn({ listen: this.options.listen },
          'the admin HTTP API listens beyond loopback without TLS: signatures protect requests, not the answers');
      }
    }
    this.options.logger.info({ address: this.boundAddress }, 'admin HTTP API listening');
  }

  /** Stops accepting, lets answers in progress finish (up to graceMs), then closes every connection. */
  async close(graceMs = 2000): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), graceMs);
    timer.unref();
    await closed;
    clearTimeout(timer);
  }

  /** A request the parser refused: answered with the reason, audited (rate-limited), and the connection always destroyed. */
  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const code = err.code ?? 'ERR_UNKNOWN';
    if (code !== 'ECONNRESET' && code !== 'EPIPE') {
      this.auditMalformed(socket.remoteAddress, code);
      if (socket.writable && socket.bytesWritten === 0) socket.write(malformedAnswer(code, this.limits));
    }
    socket.destroy();
  }

  /**
   * An unparsable request has no caller anyone vouched for: it goes through the audit log's
   * aggregation of unidentified refusals (the first per source and parser error, then one counted
   * line per interval), so a flood of them cannot fill the audit disk.
   */
  private auditMalformed(sourceIp: string | undefined, code: string): void {
    const caller: Caller = sourceIp === undefined ? { kind: 'access-key' } : { kind: 'access-key', sourceIp };
    const event: AuditEvent = {
      op: 'admin_http', transport: 'http', caller, claimed: { extra: { http_error: code.slice(0, 64) } },
      outcome: 'failure', errorCode: 'InvalidRequest', durationUs: 0,
    };
    this.options.pipeline.auditRefusalAggregated(`http-malformed ${sourceIp ?? 'unix'} ${code.slice(0, 64)}`, event);
    try {
      this.options.pipeline.flushAudit();
    } catch {
      // The audit log says once that it cannot be written; the refusal is answered all the same.
    }
  }

  // ---- one request --------------------------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse, expectContinue = false): Promise<void> {
    const started = performance.now();
    const socket = req.socket;
    this.connections.requestStarted(socket);
    res.once('close', () => this.connections.requestEnded(socket));
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    const sourceIp = req.socket.remoteAddress;
    const userAgent = req.headers['user-agent'];
    const claimed: WireContext = { extra: { http_method: truncate(method, 16), http_path: truncate(rawPath, 256) } };
    if (typeof userAgent === 'string' && userAgent !== '') claimed.user_agent = truncate(userAgent, MAX_CLAIM_BYTES);
    // 1. the route, looked up but not answered: the signature is checked first on every path, so an
    // unsigned or badly signed request is 403 whether or not the path exists.
    const match = this.routes.match(method, rawPath);
    const route = match.kind === 'route' ? match.route : undefined;
    const near = match.kind === 'none' ? undefined : match.route;
    const form: ErrorForm = {
      style: near?.errors ?? (rawPath.startsWith(PREFIXES.kms + '/') ? 'minio' : 'kms'), resource: truncate(rawPath, 256),
      ...(route !== undefined ? { route } : {}),
    };
    const refuse = (r: Route | undefined, err: KmsError, caller?: Caller, headers?: Record<string, string>): void => {
      this.refuse(res, r, err, caller ?? anonymous(sourceIp), claimed, started, headers, form);
    };
    const timeoutMs = route?.timeoutMs ?? UNMATCHED_TIMEOUT_MS;
    let finished = false;
    /** Set once the operation is in the pipeline: from then on it records its own outcome. */
    let opStarted = false;
    const timer = setTimeout(() => {
      if (finished || res.headersSent) return;
      finished = true;
      if (!opStarted) {
        refuse(route, new KmsError('BackendUnavailable', `no answer within ${timeoutMs} ms`), undefined, { Connection: 'close' });
        return;
      }
      // The operation runs on and its audit line will say how it ended; this answer must not claim
      // that it failed, nor write a second, contradicting line.
      this.writeError(res, new KmsError('BackendUnavailable',
        `no answer within ${timeoutMs} ms; the operation is still running and may take effect: check its status before retrying`),
        { Connection: 'close' }, form);
    }, timeoutMs);
    timer.unref();
    const done = (): boolean => {
      if (finished) return false;
      finished = true;
      clearTimeout(timer);
      return true;
    };

    // 2. signature (everything that needs no body; the whole signature when the body hash is declared)
    let query: RawQuery;
    try {
      query = parseQuery(rawQuery);
    } catch {
      if (done()) refuse(route, new KmsError('InvalidRequest', 'malformed query string (bad percent-encoding)'));
      return;
    }
    const signed = { method, rawPath, query, headers: req.headers };
    let auth: ParsedAuthorization;
    try {
      auth = parseAuthorization(req.headers, query, this.options.credentials, Date.now());
      if (auth.declaredPayloadHash !== undefined) await this.verifier.verify(signed, auth, auth.declaredPayloadHash);
    } catch (err) {
      if (done()) this.refuseAuth(res, route, err, sourceIp, claimed, started, form);
      return;
    }

    // 3. body limit
    let body: Buffer;
    try {
      body = await readBody(req, route?.maxBodyBytes ?? UNMATCHED_BODY_BYTES, expectContinue ? () => res.writeContinue() : undefined);
    } catch (err) {
      if (!done()) return;
      if (err instanceof KmsError) refuse(route, err, undefined, { Connection: 'close' });
      else req.destroy();
      return;
    }
    try {
      const actual = sha256Hex(body);
      if (auth.declaredPayloadHash === undefined) await this.verifier.verify(signed, auth, actual);
      else if (actual !== auth.declaredPayloadHash) throw new SignatureError('x-amz-content-sha256 does not match the body', auth.accessKey);
    } catch (err) {
      if (done()) this.refuseAuth(res, route, err, sourceIp, claimed, started, form);
      return;
    }
    const caller: Caller = { kind: 'access-key', accessKey: auth.accessKey };
    if (sourceIp !== undefined) caller.sourceIp = sourceIp;
    this.connections.requestVerified(socket);

    // Only a verified caller learns whether the path exists.
    if (match.kind === 'none') {
      if (done()) refuse(undefined, new KmsError('UnknownOperation', `no admin API endpoint at ${truncate(rawPath, 128)}`), caller);
      return;
    }
    if (match.kind === 'method') {
      const allow = match.allow.join(', ');
      if (!done()) return;
      res.statusCode = 405;
      refuse(undefined, new KmsError('UnknownOperation', `${truncate(method, 16)} is not allowed on ${rawPath}; use ${allow}`), caller, { Allow: allow });
      return;
    }
    if (route === undefined) return; // unreachable: match.kind is 'route'

    // 4. arguments
    const routeReq: RouteRequest = {
      prefix: route.prefix as Prefix, query, body, accessKey: auth.accessKey, ...(match.pathKey !== undefined ? { pathKey: match.pathKey } : {}),
    };
    let args: Record<string, unknown>;
    try {
      for (const name of query.keys()) {
        if (!route.params.includes(name)) {
          throw new KmsError('InvalidRequest',
            `unknown query parameter ${JSON.stringify(name.slice(0, 64))}${route.params.length > 0 ? ` (expected ${route.params.join(', ')})` : ''}`);
        }
      }
      args = route.args(routeReq, this.env);
    } catch (err) {
      if (done()) refuse(route, asKmsError(err), caller);
      return;
    }

    // 5. the pipeline, 6. the answer
    const run = (op: OpName, a: Record<string, unknown>): Promise<unknown> =>
      new Promise((resolve, reject) => {
        opStarted = true;
        this.options.pipeline.run(op, a, caller, claimed, 'http', (error, result) => (error === null ? resolve(result) : reject(error)));
      });
    let answer: RouteAnswer;
    try {
      let result: unknown;
      if (!isOpName(route.op)) {
        answer = await this.admin(route, routeReq, run, caller, claimed, started);
        if (done()) this.send(res, route, answer);
        return;
      }
      try {
        result = await run(route.op, args);
      } catch (err) {
        const e = asKmsError(err);
        const recovered = route.recover?.(e, routeReq, this.env);
        if (recovered === undefined) throw e;
        answer = recovered;
        if (done()) this.send(res, route, answer);
        return;
      }
      answer = await route.respond(result, routeReq, run, this.env);
    } catch (err) {
      if (done()) {
        let e = asKmsError(err, this.options.logger);
        try {
          this.options.pipeline.flushAudit();
        } catch (auditErr) {
          e = asKmsError(auditErr, this.options.logger);
        }
        this.writeError(res, e, undefined, form);
        this.count(route, method, res.statusCode);
      }
      return;
    }
    if (done()) this.send(res, route, answer);
  }

  private send(res: ServerResponse, route: Route, answer: RouteAnswer): void {
    try {
      this.options.pipeline.flushAudit(); // audit lines leave before the answers they describe
    } catch (err) {
      this.writeError(res, asKmsError(err, this.options.logger)); // unrecorded: the answer is withheld
      return;
    }
    res.statusCode = answer.status;
    res.setHeader('Cache-Control', 'no-store');
    if (answer.text !== undefined) {
      res.setHeader('Content-Type', answer.contentType ?? 'text/plain; charset=utf-8');
      res.end(answer.text);
    } else if (answer.json !== undefined) {
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify(answer.json));
    } else {
      res.setHeader('Content-Length', '0');
      res.end();
    }
    this.count(route, res.req.method ?? '', answer.status);
  }

  private writeError(res: ServerResponse, err: KmsError, headers?: Record<string, string>, form?: ErrorForm): void {
    if (res.statusCode !== 405) {
      const base = err instanceof NotImplementedError ? 501 : httpStatus(err.code);
      res.statusCode = form?.route?.status?.(err, base) ?? base;
    }
    // A policy or credential refusal takes the credential channel (XML where a route's own is J or T).
    const style = err.code === 'AccessDenied' ? authErrorStyle(form?.style ?? 'kms') : form?.style ?? 'kms';
    const rendered = renderError(style, err, res.statusCode, form?.resource ?? '');
    res.setHeader('Content-Type', rendered.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    for (const [k, v] of Object.entries(headers ?? {})) res.setHeader(k, v);
    res.end(rendered.body);
  }

  /**
   * A route that runs no operation: the policy decides on its admin action ('signed' needs only the
   * signature), the route answers, and the outcome is audited here as the pipeline would.
   */
  private async admin(route: Route, req: RouteRequest, run: RunOpFn, caller: Caller, claimed: WireContext, started: number): Promise<RouteAnswer> {
    const event: AuditEvent = { op: route.op, transport: 'http', caller, claimed, outcome: 'failure', durationUs: 0 };
    const record = (): void => {
      event.durationUs = Math.round((performance.now() - started) * 1000);
      this.options.audit.record(event);
      this.options.metrics?.observe(event);
    };
    try {
      if (route.op !== 'signed') {
        const decision = this.options.pipeline.decide(caller, route.op, []);
        if (!decision.allowed) throw new KmsError('AccessDenied', `${route.op} denied: ${decision.reason}`);
      }
      const answer = await route.respond(undefined, req, run, this.env);
      event.outcome = 'success';
      record();
      return answer;
    } catch (err) {
      const e = asKmsError(err, this.options.logger);
      event.errorCode = e.code;
      if (e.code === 'AccessDenied') event.outcome = 'denied';
      record();
      throw e;
    }
  }

  private refuseAuth(
    res: ServerResponse, route: Route | undefined, err: unknown, sourceIp: string | undefined, claimed: WireContext, started: number,
    form: ErrorForm,
  ): void {
    const authForm: ErrorForm = { ...form, style: authErrorStyle(form.style) };
    if (!(err instanceof SignatureError)) {
      this.refuse(res, route, asKmsError(err, this.options.logger), anonymous(sourceIp), claimed, started, undefined, authForm);
      return;
    }
    // An unverified access key may be a secret typed in the wrong field: only its fingerprint is recorded.
    const withKey: WireContext = err.accessKey !== undefined
      ? { ...claimed, extra: { ...claimed.extra, [UNVERIFIED_KEY_FIELD]: accessKeyFingerprint(err.accessKey) } }
      : claimed;
    this.refuse(res, route, new KmsError('AccessDenied', err.message), anonymous(sourceIp), withKey, started, undefined, authForm);
  }

  /** Answers a request that never reached the pipeline, after auditing it like the pipeline would. */
  private refuse(
    res: ServerResponse, route: Route | undefined, err: KmsError, caller: Caller, claimed: WireContext, started: number,
    headers?: Record<string, string>, form?: ErrorForm,
  ): void {
    const event: AuditEvent = {
      op: route?.op ?? 'admin_http', transport: 'http', caller, claimed,
      outcome: err.code === 'AccessDenied' ? 'denied' : 'failure', errorCode: err.code,
      durationUs: Math.round((performance.now() - started) * 1000),
    };
    let answer = err;
    try {
      // Unverified callers' refusals are aggregated per source and code: a flood cannot fill the disk.
      if (caller.accessKey === undefined) this.options.pipeline.auditRefusalAggregated(`http ${caller.sourceIp ?? '-'} ${err.code}`, event);
      else this.options.audit.record(event);
      this.options.pipeline.flushAudit();
    } catch (auditErr) {
      answer = asKmsError(auditErr, this.options.logger); // BackendUnavailable: this tick's audit lines are not on disk
      res.statusCode = httpStatus(answer.code);
    }
    this.options.metrics?.observe(event);
    this.writeError(res, answer, headers, form);
    this.count(route, res.req.method ?? '', res.statusCode);
  }

  private count(route: Route | undefined, method: string, status: number): void {
    this.options.metrics?.httpRequest(route === undefined ? UNMATCHED : PREFIXES[route.prefix] + route.path, method, status);
  }
}

/** Enough to tell keys apart in the log, not enough to recover a secret pasted as an access key. */
function accessKeyFingerprint(accessKey: string): string {
  return sha256Hex(Buffer.from(accessKey, 'utf8')).slice(0, 16);
}

/** The raw answer to an unparsable request: 431 for oversized headers, 408 for a late one, else 400; JSON naming the problem. */
function malformedAnswer(code: string, limits: AdminHttpLimits): string {
  const [status, reason, message] =
    code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large', `the request headers are over ${limits.maxHeaderBytes} bytes; the limit is ${limits.maxHeaderBytes}`]
    : code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout', `the request was not received in time; the limits are ${limits.headersTimeoutMs} ms for the headers and ${limits.requestTimeoutMs} ms for the whole request`]
    : [400, 'Bad Request', `the request is not valid HTTP/1.1 (${code.slice(0, 64)})`];
  const body = JSON.stringify({ code: 'InvalidRequest', message });
  return `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

type RunOpFn = (op: OpName, args: Record<string, unknown>) => Promise<unknown>;

function anonymous(sourceIp: string | undefined): Caller {
  return sourceIp !== undefined ? { kind: 'access-key', sourceIp } : { kind: 'access-key' };
}

function asKmsError(err: unknown, logger?: AdminHttpLogger): KmsError {
  if (err instanceof KmsError) return err;
  logger?.error({ err: err instanceof Error ? err.message : String(err) }, 'admin HTTP request failed unexpectedly');
  return new KmsError('Internal', 'the request failed inside the daemon; see its log');
}

/** The body, at most `limit` bytes; KmsError FrameTooLarge (413) beyond, without reading the rest. */
function readBody(req: IncomingMessage, limit: number, sendContinue?: () => void): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new KmsError('FrameTooLarge', `the request body is ${declared} bytes; the limit is ${limit}`));
  }
  sendContinue?.();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        cleanup();
        req.pause();
        reject(new KmsError('FrameTooLarge', `the request body is over ${limit} bytes; the limit is ${limit}`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, total));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onAborted = (): void => onError(new Error('the client aborted the request'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}
