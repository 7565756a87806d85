// The admin HTTP API's route table, after MinIO KES's: every route declares its method, path, body
// limit and timeout, the operation of the op table it runs, how the query and body become that
// operation's arguments, and how the result becomes the answer. The server (server.ts) enforces the
// declarations in one fixed order: method/path → signature → body limit → arguments → pipeline →
// status. Routes never touch keys themselves: everything goes through Pipeline.run (policy, audit).
//
// Two prefixes serve the same routes: /rustfs/admin/v3 (canonical; answers in this project's JSON
// shapes) and /minio/admin/v3 (for `mc admin kms`; answers in MinIO madmin's shapes where madmin
// defines one: key create, key status, key list, KMS status).
import { KmsError, type ErrorCode } from '../errors.js';
import { compileGlob, globProblem, type Glob } from '../access/glob.js';
import { PENDING_DAYS, type OpName, type WireHealth, type WireKeyInfo, type WireListKeysResult, type WireStatus } from '../ops/protocol.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RawQuery } from './sigv4.js';

export type Prefix = 'rustfs' | 'minio';
export const PREFIXES: Readonly<Record<Prefix, string>> = { rustfs: '/rustfs/admin/v3', minio: '/minio/admin/v3' };

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** What a route sees of a request that passed method, path, signature and body limit. */
export interface RouteRequest {
  prefix: Prefix;
  query: RawQuery;
  body: Buffer;
}

export interface RouteAnswer {
  status: number;
  /** Serialised as JSON (application/json). */
  json?: unknown;
  /** Sent as is, with `contentType`. */
  text?: string;
  contentType?: string;
}

/** Runs one more operation through the pipeline for the same caller (audited like the first). */
export type RunOp = (op: OpName, args: Record<string, unknown>) => Promise<unknown>;

export interface RouteEnv {
  metrics?: Metrics;
  /** `default_key_id` of the config: MinIO's key status with no key id, and KMS status. */
  defaultKeyId?: string;
}

export interface Route {
  readonly methods: readonly HttpMethod[];
  readonly prefix: Prefix;
  /** Path after the prefix, e.g. `/kms/key/create`. */
  readonly path: string;
  /** Largest body accepted (413 beyond). */
  readonly maxBodyBytes: number;
  /** From the route match to the answer (503 beyond). */
  readonly timeoutMs: number;
  /** The operation of the op table this route runs (policy action, audit op). */
  readonly op: OpName;
  /** Query parameters the route accepts; any other is a 400. */
  readonly params: readonly string[];
  /** Query and body → the operation's wire arguments; throws KmsError (400) naming the parameter. */
  args(req: RouteRequest, env: RouteEnv): Record<string, unknown>;
  /** The operation's result → the answer; may run further operations. */
  respond(result: unknown, req: RouteRequest, run: RunOp, env: RouteEnv): RouteAnswer | Promise<RouteAnswer>;
  /** Failures of `op` that are an answer rather than an error (MinIO's key-status probe). */
  recover?(err: KmsError, req: RouteRequest, env: RouteEnv): RouteAnswer | undefined;
}

// ---- status mapping ----------------------------------------------------------------------------

/** Codes a backend may use for "this root/keystore cannot do that" (none of today's does). */
const UNSUPPORTED_CODES: ReadonlySet<string> = new Set(['Unsupported', 'NotSupported', 'UnsupportedOperation', 'NotImplemented']);

export function httpStatus(code: ErrorCode | string): number {
  switch (code) {
    case 'InvalidRequest':
    case 'InvalidKeyId':
    case 'InvalidCiphertext':
      return 400;
    case 'AccessDenied':
      return 403;
    case 'KeyNotFound':
    case 'UnknownOperation':
      return 404;
    case 'KeyAlreadyExists':
    case 'KeyDisabled':
    case 'KeyPendingDeletion':
      return 409;
    case 'FrameTooLarge':
      return 413;
    case 'Busy':
    case 'BackendUnavailable':
      return 503;
    default:
      return UNSUPPORTED_CODES.has(code) ? 501 : 500;
  }
}

// ---- parameters --------------------------------------------------------------------------------

function bad(message: string): KmsError {
  return new KmsError('InvalidRequest', message);
}

function single(query: RawQuery, name: string): string | undefined {
  const values = query.get(name);
  if (values === undefined) return undefined;
  if (values.length > 1) throw bad(`query parameter ${name} is given ${values.length} times`);
  return values[0];
}

const KEY_PARAMS = ['keyName', 'key-id'] as const;

/** The key named by `keyName` or MinIO's `key-id` (either; both only when equal). */
function keyParam(req: RouteRequest): string | undefined {
  const a = single(req.query, 'keyName');
  const b = single(req.query, 'key-id');
  if (a !== undefined && b !== undefined && a !== b) throw bad('keyName and key-id name different keys; give one of them');
  const v = a ?? b;
  return v === undefined || v === '' ? undefined : v;
}

function requiredKey(req: RouteRequest): string {
  const key = keyParam(req);
  if (key === undefined) throw bad('the key is required: add ?keyName=<key id> (or key-id=<key id>)');
  return key;
}

function integerParam(req: RouteRequest, name: string): number | undefined {
  const v = single(req.query, name);
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,9}$/.test(v)) throw bad(`query parameter ${name} must be a non-negative integer, got ${JSON.stringify(v.slice(0, 32))}`);
  return Number(v);
}

/** A JSON object body (empty body → {}); only `allowed` fields. */
function jsonBody(req: RouteRequest, allowed: readonly string[]): Record<string, unknown> {
  const text = req.body.toString('utf8').trim();
  if (text === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('the request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('the request body must be a JSON object');
  const body = value as Record<string, unknown>;
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) {
      throw bad(`unknown body field ${JSON.stringify(k.slice(0, 64))} (expected ${allowed.join(', ')}; the key is named in the query)`);
    }
  }
  return body;
}

// ---- answers -----------------------------------------------------------------------------------

const ok = (json: unknown): RouteAnswer => ({ status: 200, json });
const keyAnswer = (result: unknown): RouteAnswer => {
  const info = result as WireKeyInfo;
  return ok({ key_id: info.key_id, key_metadata: info });
};

async function healthAndStatus(result: unknown, run: RunOp): Promise<WireHealth & WireStatus> {
  const status = (await run('status', {})) as WireStatus;
  return { ...(result as WireHealth), ...status };
}

// ---- routes shared by both prefixes -------------------------------------------------------------

const SMALL_BODY = 4096;
const CREATE_BODY = 64 * 1024;
const TIMEOUT = 10_000;
/** Creating and rotating wrap new material under the root (possibly a remote Vault). */
const SLOW_TIMEOUT = 30_000;

function keyRoute(prefix: Prefix, method: HttpMethod, path: string, op: OpName): Route {
  return {
    methods: [method], prefix, path, maxBodyBytes: SMALL_BODY, timeoutMs: op === 'rotate_key' ? SLOW_TIMEOUT : TIMEOUT, op,
    params: KEY_PARAMS,
    args: (req) => ({ key_id: requiredKey(req) }),
    respond: keyAnswer,
  };
}

function sharedRoutes(prefix: Prefix): Route[] {
  return [
    keyRoute(prefix, 'PUT', '/kms/key/enable', 'enable_key'),
    keyRoute(prefix, 'PUT', '/kms/key/disable', 'disable_key'),
    keyRoute(prefix, 'POST', '/kms/key/rotate', 'rotate_key'),
    {
      methods: ['DELETE'], prefix, path: '/kms/key/delete', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'schedule_key_deletion',
      params: [...KEY_PARAMS, 'pendingWindowDays'],
      args: (req) => ({ key_id: requiredKey(req), pending_days: integerParam(req, 'pendingWindowDays') ?? PENDING_DAYS.max }),
      respond: keyAnswer,
    },
    {
      methods: ['GET'], prefix, path: '/kms/metrics', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'status', params: [],
      args: () => ({}),
      respond: async (_result, _req, _run, env) => {
        if (env.metrics === undefined) throw new KmsError('Internal', 'metrics are not collected by this server');
        return { status: 200, text: await env.metrics.render(), contentType: env.metrics.contentType };
      },
    },
  ];
}

// ---- /rustfs/admin/v3 ---------------------------------------------------------------------------

const RUSTFS_ROUTES: Route[] = [
  {
    methods: ['POST'], prefix: 'rustfs', path: '/kms/key/create', maxBodyBytes: CREATE_BODY, timeoutMs: SLOW_TIMEOUT, op: 'create_key',
    params: KEY_PARAMS,
    args: (req) => ({ ...jsonBody(req, ['description', 'tags', 'rotation_period_days']), key_id: requiredKey(req) }),
    respond: keyAnswer,
  },
  {
    methods: ['GET'], prefix: 'rustfs', path: '/kms/key/status', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'describe_key',
    params: KEY_PARAMS,
    args: (req) => ({ key_id: requiredKey(req) }),
    respond: keyAnswer,
  },
  {
    methods: ['GET'], prefix: 'rustfs', path: '/kms/key/list', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'list_keys',
    params: ['marker', 'limit', 'prefix'],
    args: (req) => {
      const args: Record<string, unknown> = {};
      const marker = single(req.query, 'marker');
      const prefix = single(req.query, 'prefix');
      const limit = integerParam(req, 'limit');
      if (marker !== undefined && marker !== '') args.marker = marker;
      if (prefix !== undefined && prefix !== '') args.prefix = prefix;
      if (limit !== undefined) args.limit = limit;
      return args;
    },
    respond: (result) => {
      const r = result as WireListKeysResult;
      return ok({ keys: r.keys, truncated: r.truncated, ...(r.next_marker !== undefined ? { next_marker: r.next_marker } : {}) });
    },
  },
  {
    methods: ['GET'], prefix: 'rustfs', path: '/kms/status', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'health', params: [],
    args: () => ({}),
    respond: async (result, _req, run, env) => ok({ ...(await healthAndStatus(result, run)), default_key_id: env.defaultKeyId ?? null }),
  },
  ...sharedRoutes('rustfs'),
];

// ---- /minio/admin/v3 (madmin shapes) -----------------------------------------------------------

/** The context MinIO's own key-status handler binds its probe to. */
const MINIO_PROBE_CONTEXT = { 'MinIO admin API': 'KMSKeyStatusHandler' };

/** madmin.KMSKeyStatus: failures of the probe are reported in the body, not as an error status. */
const PROBE_REPORTED: ReadonlySet<string> = new Set(['KeyDisabled', 'KeyPendingDeletion', 'BackendUnavailable', 'Busy', 'Internal']);

function probeKey(req: RouteRequest, env: RouteEnv): string {
  const key = keyParam(req) ?? env.defaultKeyId;
  if (key === undefined) throw bad('the key is required: add ?key-id=<key id> (no default_key_id is configured)');
  return key;
}

/** madmin.KMSKeyInfo list: every key matching `pattern` (a glob, default `*`). */
async function minioList(first: WireListKeysResult, pattern: Glob, run: RunOp, prefix: string | undefined): Promise<RouteAnswer> {
  const out: Array<{ name: string; createdAt: string; createdBy: string }> = [];
  let page = first;
  for (;;) {
    for (const k of page.keys) {
      if (pattern.test(k.key_id)) out.push({ name: k.key_id, createdAt: new Date(k.created_at).toISOString(), createdBy: '' });
    }
    if (!page.truncated || page.next_marker === undefined) break;
    const args: Record<string, unknown> = { limit: 1000, marker: page.next_marker };
    if (prefix !== undefined) args.prefix = prefix;
    page = (await run('list_keys', args)) as WireListKeysResult;
  }
  return ok(out);
}

function globPattern(req: RouteRequest): { glob: Glob; prefix: string | undefined } {
  const pattern = single(req.query, 'pattern') ?? '*';
  const problem = globProblem(pattern, 'pattern');
  if (problem !== undefined) throw bad(problem);
  const glob = compileGlob(pattern === '' ? '*' : pattern);
  return { glob, prefix: glob.literalPrefix === '' ? undefined : glob.literalPrefix };
}

const MINIO_ROUTES: Route[] = [
  {
    // madmin.CreateKey: 200 with an empty body.
    methods: ['POST'], prefix: 'minio', path: '/kms/key/create', maxBodyBytes: CREATE_BODY, timeoutMs: SLOW_TIMEOUT, op: 'create_key',
    params: KEY_PARAMS,
    args: (req) => ({ ...jsonBody(req, ['description', 'tags', 'rotation_period_days']), key_id: requiredKey(req) }),
    respond: () => ({ status: 200 }),
  },
  {
    // madmin.KMSKeyStatus: a real generate-and-decrypt probe, as MinIO's own handler does.
    methods: ['GET'], prefix: 'minio', path: '/kms/key/status', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'generate_data_key',
    params: KEY_PARAMS,
    args: (req, env) => ({ key_id: probeKey(req, env), context: MINIO_PROBE_CONTEXT }),
    respond: async (result, req, run, env) => {
      const keyId = probeKey(req, env);
      const dk = result as { plaintext: Uint8Array; ciphertext: Uint8Array };
      try {
        const opened = (await run('decrypt', { ciphertext: dk.ciphertext, context: MINIO_PROBE_CONTEXT })) as { plaintext: Uint8Array };
        const same = Buffer.compare(Buffer.from(opened.plaintext), Buffer.from(dk.plaintext)) === 0;
        opened.plaintext.fill(0);
        if (!same) return ok({ 'key-id': keyId, 'decryption-error': 'the decrypted data key differs from the generated one' });
        return ok({ 'key-id': keyId });
      } catch (err) {
        if (!(err instanceof KmsError)) throw err;
        return ok({ 'key-id': keyId, 'decryption-error': `${err.code}: ${err.message}` });
      } finally {
        dk.plaintext.fill(0);
      }
    },
    recover: (err, req, env) =>
      PROBE_REPORTED.has(err.code) ? ok({ 'key-id': probeKey(req, env), 'encryption-error': `${err.code}: ${err.message}` }) : undefined,
  },
  {
    // madmin.ListKeys: [{ name, createdAt, createdBy }] for the keys matching ?pattern=.
    methods: ['GET'], prefix: 'minio', path: '/kms/key/list', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'list_keys',
    params: ['pattern'],
    args: (req) => {
      const { prefix } = globPattern(req);
      return prefix !== undefined && Buffer.byteLength(prefix) <= 128 ? { limit: 1000, prefix } : { limit: 1000 };
    },
    respond: (result, req, run) => {
      const { glob, prefix } = globPattern(req);
      return minioList(result as WireListKeysResult, glob, run, prefix !== undefined && Buffer.byteLength(prefix) <= 128 ? prefix : undefined);
    },
  },
  {
    // madmin.KMSStatus: { name, default-key-id, endpoints: { <endpoint>: online | offline } }.
    methods: ['GET', 'POST'], prefix: 'minio', path: '/kms/status', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'health', params: [],
    args: () => ({}),
    respond: async (result, _req, run, env) => {
      const s = await healthAndStatus(result, run);
      return ok({ name: 'rustfs-kms', 'default-key-id': env.defaultKeyId ?? '', endpoints: { [s.endpoint]: s.healthy ? 'online' : 'offline' } });
    },
  },
  ...sharedRoutes('minio'),
];

export const ROUTES: readonly Route[] = [...RUSTFS_ROUTES, ...MINIO_ROUTES];

/** Full path → the routes at that path (one per method set). */
export function routeIndex(routes: readonly Route[] = ROUTES): Map<string, Route[]> {
  const index = new Map<string, Route[]>();
  for (const r of routes) {
    const full = PREFIXES[r.prefix] + r.path;
    const list = index.get(full) ?? [];
    for (const other of list) {
      if (other.methods.some((m) => r.methods.includes(m))) throw new Error(`duplicate route ${r.methods.join('|')} ${full}`);
    }
    list.push(r);
    index.set(full, list);
  }
  return index;
}
