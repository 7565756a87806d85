// The admin HTTP API's route table, after MinIO KES's: every route declares its method, path, body
// limit and timeout, the operation of the op table it runs, how the query and body become that
// operation's arguments, and how the result becomes the answer. The server (server.ts) enforces the
// declarations in one fixed order: method/path → signature → body limit → arguments → pipeline →
// status. Routes never touch keys themselves: everything goes through Pipeline.run (policy, audit).
//
// Three prefixes: /rustfs/admin/v3 (RustFS's admin contract, rustfs-routes.ts, plus this project's
// own key routes), /minio/admin/v3 (madmin ≤ 1.5.3's three KMS calls, in madmin's shapes) and
// /minio/kms/v1 (madmin ≥ 1.6.0, `mc admin kms`, madmin.ts).
import { KmsError, type ErrorCode } from '../errors.js';
import { PENDING_DAYS, type OpName, type WireKeyInfo, type WireListKeysResult } from '../ops/protocol.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RawQuery } from './sigv4.js';
import type { AdminAction } from '../access/actions.js';
import type { Authorizer } from '../ops/pipeline.js';
import type { ErrorStyle } from './errors.js';
import { KEY_PARAMS, MADMIN_ROUTES, keyCreateRoute, keyListRoute, keyParam, keyStatusRoute, kmsStatusRoute } from './madmin.js';
import { bad, single } from './params.js';
import { RUSTFS_CONTRACT_ROUTES } from './rustfs-routes.js';
import type { DeploymentInfo } from './shapes.js';

export type Prefix = 'rustfs' | 'minio' | 'kms';
export const PREFIXES: Readonly<Record<Prefix, string>> = { rustfs: '/rustfs/admin/v3', minio: '/minio/admin/v3', kms: '/minio/kms/v1' };

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** What a route sees of a request that passed method, path, signature and body limit. */
export interface RouteRequest {
  prefix: Prefix;
  query: RawQuery;
  body: Buffer;
  /** The decoded `{key_id}` segment of a path-parameter route. */
  pathKey?: string;
  /** The verified access key. */
  accessKey?: string;
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
  /** The policy in force (madmin's policy and identity routes describe it). */
  authorizer?: () => Authorizer;
  /** Reloads the config file as SIGHUP does; returns what was reloaded, throws why not. */
  reload?: () => string;
  /** What the daemon was started with (RustFS's status, config and backup routes). */
  deployment?: DeploymentInfo;
  /** The admin access key of the config. */
  adminAccessKey?: string;
  /** Empties the key cache; returns how many unwrapped versions were wiped. */
  clearCache?: () => number;
}

/**
 * How a route is authorized: an operation of the op table (its policy action), an admin action for
 * routes that run no operation, or 'signed' (a valid signature is enough: madmin's describe-self).
 */
export type RouteAuth = OpName | AdminAction | 'signed';

export interface Route {
  readonly methods: readonly HttpMethod[];
  readonly prefix: Prefix;
  /** Path after the prefix, e.g. `/kms/key/create`. */
  readonly path: string;
  /** Largest body accepted (413 beyond). */
  readonly maxBodyBytes: number;
  /** From the route match to the answer (503 beyond). */
  readonly timeoutMs: number;
  /** The operation this route runs (policy action, audit op), or the admin action it needs. */
  readonly op: RouteAuth;
  /** How errors look (default the daemon's { code, message }). */
  readonly errors?: ErrorStyle;
  /** A route-specific status for an error (RustFS answers some failures 500 where others 404). */
  readonly status?: (err: KmsError, fallback: number) => number;
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



// ---- routes shared by both prefixes -------------------------------------------------------------

const SMALL_BODY = 4096;
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

// Key create, key status and KMS status at this prefix are RustFS's (rustfs-routes.ts).
const RUSTFS_ROUTES: Route[] = [
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
  ...sharedRoutes('rustfs'),
];

// ---- /minio/admin/v3 (madmin shapes) -----------------------------------------------------------

const MINIO_ROUTES: Route[] = [
  keyCreateRoute('minio', (req) => jsonBody(req, ['description', 'tags', 'rotation_period_days'])),
  keyStatusRoute('minio'),
  keyListRoute('minio'),
  kmsStatusRoute('minio'),
  ...sharedRoutes('minio'),
];

export const ROUTES: readonly Route[] = [...RUSTFS_ROUTES, ...RUSTFS_CONTRACT_ROUTES, ...MINIO_ROUTES, ...MADMIN_ROUTES];

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
