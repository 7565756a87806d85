// MinIO's admin SDK (madmin-go ≥ 1.6.0, `mc admin kms …`): the /minio/kms/v1 API with exactly the
// shapes madmin 2.0.7 decodes (kms-commands.go; reference §2), plus the three madmin ≤ 1.5.3 calls
// under /minio/admin/v3 that routes.ts mounts from here. Every method requires exactly 200; errors are
// MinIO's JSON ({Code, Message, …}); policy and identity changes are answered 501, because this
// daemon's policy is its config file's `policy:` section.
import { cpus, availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { KmsError } from '../errors.js';
import { Policy, type PolicyRule } from '../access/policy.js';
import { LATENCY_BUCKETS_S } from '../metrics/metrics.js';
import { PENDING_DAYS, type WireHealth, type WireListKeysResult, type WireStatus } from '../ops/protocol.js';
import { NotImplementedError } from './errors.js';
import { compileGlob, globMatch, globProblem } from '../access/glob.js';
import { bad, single } from './params.js';
import type { Prefix, Route, RouteAnswer, RouteEnv, RouteRequest, RunOp } from './routes.js';

const SMALL_BODY = 4096;
const POLICY_BODY = 64 * 1024;
const TIMEOUT = 10_000;
const SLOW_TIMEOUT = 30_000;

const ok = (json: unknown): RouteAnswer => ({ status: 200, json });

// ---- key parameters ----------------------------------------------------------------------------

export const KEY_PARAMS = ['keyName', 'key-id'] as const;

/** The key named by `key-id` or this daemon's `keyName` (either; both only when equal). */
export function keyParam(req: RouteRequest): string | undefined {
  const a = single(req.query, 'keyName');
  const b = single(req.query, 'key-id');
  if (a !== undefined && b !== undefined && a !== b) throw bad('keyName and key-id name different keys; give one of them');
  const v = a ?? b;
  return v === undefined || v === '' ? undefined : v;
}

function requiredKey(req: RouteRequest): string {
  const key = keyParam(req);
  if (key === undefined) throw bad('the key is required: add ?key-id=<key id>');
  return key;
}

// ---- shapes shared with /minio/admin/v3 ----------------------------------------------------------

/** The context MinIO's own key-status handler binds its probe to. */
const MINIO_PROBE_CONTEXT = { 'MinIO admin API': 'KMSKeyStatusHandler' };

/**
 * madmin.KMSKeyStatus reports a failed probe in the body, at 200, as MinIO does, an unknown key
 * included; a bad key id or a refusal stays an error.
 */
const PROBE_REPORTED: ReadonlySet<string> = new Set(['KeyNotFound', 'KeyDisabled', 'KeyPendingDeletion', 'BackendUnavailable', 'Busy', 'Internal']);

function probeKey(req: RouteRequest, env: RouteEnv): string {
  const key = keyParam(req) ?? env.defaultKeyId;
  if (key === undefined) throw bad('the key is required: add ?key-id=<key id> (no default_key_id is configured)');
  return key;
}

/** madmin.KMSKeyStatus: a real generate-and-decrypt round trip, as MinIO's handler does. */
export function keyStatusRoute(prefix: Prefix): Route {
  return {
    methods: ['GET'], prefix, path: prefix === 'kms' ? '/key/status' : '/kms/key/status', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT,
    op: 'generate_data_key', params: KEY_PARAMS, ...(prefix === 'kms' ? { errors: 'minio' as const, status: madminStatus } : {}),
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
  };
}

/** madmin.KMSKeyInfo list: every key matching `pattern` (a glob; empty or absent = all). */
async function keyList(first: WireListKeysResult, glob: string, run: RunOp, prefix: string | undefined): Promise<RouteAnswer> {
  const out: Array<{ name: string; createdAt: string; createdBy: string }> = [];
  let page = first;
  for (;;) {
    for (const k of page.keys) if (globMatch(glob, k.key_id)) out.push({ name: k.key_id, createdAt: new Date(k.created_at).toISOString(), createdBy: '' });
    if (!page.truncated || page.next_marker === undefined) break;
    page = (await run('list_keys', { limit: 1000, marker: page.next_marker, ...(prefix !== undefined ? { prefix } : {}) })) as WireListKeysResult;
  }
  return ok(out);
}

function pattern(req: RouteRequest): { glob: string; prefix: string | undefined } {
  const p = single(req.query, 'pattern') ?? '';
  const glob = p === '' ? '*' : p;
  const problem = globProblem(glob, 'pattern');
  if (problem !== undefined) throw bad(problem);
  const literal = compileGlob(glob).literalPrefix;
  return { glob, prefix: literal === '' || Buffer.byteLength(literal) > 128 ? undefined : literal };
}

export function keyListRoute(prefix: Prefix): Route {
  return {
    methods: ['GET'], prefix, path: prefix === 'kms' ? '/key/list' : '/kms/key/list', maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT,
    op: 'list_keys', params: ['pattern'], ...(prefix === 'kms' ? { errors: 'minio' as const, status: madminStatus } : {}),
    args: (req) => {
      const p = pattern(req).prefix;
      return p !== undefined ? { limit: 1000, prefix: p } : { limit: 1000 };
    },
    respond: (result, req, run) => {
      const { glob, prefix: p } = pattern(req);
      return keyList(result as WireListKeysResult, glob, run, p);
    },
  };
}

async function healthAndStatus(result: unknown, run: RunOp): Promise<WireHealth & WireStatus> {
  const status = (await run('status', {})) as WireStatus;
  return { ...(result as WireHealth), ...status };
}

/** madmin.KMSStatus: { name, default-key-id, endpoints: { <endpoint>: online | offline } }. */
export function kmsStatusRoute(prefix: Prefix): Route {
  return {
    methods: prefix === 'kms' ? ['GET'] : ['GET', 'POST'], prefix, path: prefix === 'kms' ? '/status' : '/kms/status',
    maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, op: 'health', params: [],
    ...(prefix === 'kms' ? { errors: 'minio' as const, status: madminStatus } : {}),
    args: () => ({}),
    respond: async (result, _req, run, env) => {
      const s = await healthAndStatus(result, run);
      return ok({ name: 'rustfs-kms', 'default-key-id': env.defaultKeyId ?? '', endpoints: { [s.endpoint]: s.healthy ? 'online' : 'offline' } });
    },
  };
}

/** madmin.CreateKey: 200 with an empty body. */
export function keyCreateRoute(prefix: Prefix, body: (req: RouteRequest) => Record<string, unknown>): Route {
  return {
    methods: ['POST'], prefix, path: prefix === 'kms' ? '/key/create' : '/kms/key/create', maxBodyBytes: 64 * 1024, timeoutMs: SLOW_TIMEOUT,
    op: 'create_key', params: KEY_PARAMS, ...(prefix === 'kms' ? { errors: 'minio' as const, status: madminStatus } : {}),
    args: (req) => ({ ...body(req), key_id: requiredKey(req) }),
    respond: () => ({ status: 200 }),
  };
}

// ---- /minio/kms/v1 only ----------------------------------------------------------------------------

/**
 * madmin retries 503 ten times over about three minutes (retry.go); a backend that is down is
 * reported at once (500) instead. Busy stays 503: waiting is the right answer to it.
 */
function madminStatus(err: KmsError, fallback: number): number {
  return err.code === 'BackendUnavailable' ? 500 : fallback;
}

function kmsRoute(r: Omit<Route, 'prefix' | 'errors' | 'status' | 'maxBodyBytes' | 'timeoutMs'> & { maxBodyBytes?: number; timeoutMs?: number }): Route {
  return { maxBodyBytes: SMALL_BODY, timeoutMs: TIMEOUT, ...r, prefix: 'kms', errors: 'minio', status: madminStatus };
}

/** Bucket bounds of the latency histogram in nanoseconds (Go's time.Duration, madmin's int64 keys). */
const BOUNDS_NS = LATENCY_BUCKETS_S.map((s) => Math.round(s * 1e9));

/** 4xx-class error codes count as kes_http_request_error, the rest as _failure (as KES splits them). */
const CLIENT_ERRORS: ReadonlySet<string> = new Set([
  'InvalidRequest', 'UnknownOperation', 'InvalidKeyId', 'KeyNotFound', 'KeyAlreadyExists', 'KeyDisabled', 'KeyPendingDeletion',
  'InvalidCiphertext', 'AccessDenied', 'FrameTooLarge',
]);

function threadCount(): number {
  try {
    return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** madmin.KMSMetrics (all int64; durations in nanoseconds, as Go's time.Duration). */
function kmsMetrics(env: RouteEnv, status: WireStatus): Record<string, unknown> {
  if (env.metrics === undefined) throw new KmsError('Internal', 'metrics are not collected by this server');
  const t = env.metrics.totals();
  let clientErrors = 0;
  let failures = 0;
  for (const [code, n] of t.errorCodes) {
    if (CLIENT_ERRORS.has(code)) clientErrors += n;
    else failures += n;
  }
  const histogram: Record<string, number> = {};
  let cumulative = 0;
  BOUNDS_NS.forEach((bound, i) => {
    cumulative += t.latencyCounts[i] ?? 0;
    histogram[String(bound)] = cumulative;
  });
  const mem = process.memoryUsage();
  return {
    kes_http_request_success: t.success,
    kes_http_request_error: clientErrors,
    kes_http_request_failure: failures,
    // The socket's requests in flight, plus this one.
    kes_http_request_active: (env.metrics.gauge('rustfs_kms_socket_inflight_requests') ?? 0) + 1,
    kes_log_audit_events: env.metrics.gauge('rustfs_kms_audit_records') ?? 0,
    kes_log_error_events: failures,
    kes_http_response_time: histogram,
    kes_system_up_time: status.uptime_ms * 1_000_000,
    kes_system_num_cpu: cpus().length,
    kes_system_num_cpu_used: availableParallelism(),
    kes_system_num_threads: threadCount(),
    kes_system_mem_heap_used: mem.heapUsed,
    kes_system_mem_heap_objects: 0, // V8 does not count objects cheaply; 0 says "not measured"
    kes_system_mem_stack_used: 0,
  };
}

// ---- policy and identity, from the daemon's own policy -------------------------------------------

const RULE_NAME = /^rule-(\d{1,6})$/;
const CONFIGURED_BY = 'config file (policy:)';

function rules(env: RouteEnv): readonly PolicyRule[] {
  const a = env.authorizer?.();
  return a instanceof Policy ? a.rules : [];
}

/** Policies are the config's ordered rules, named rule-0, rule-1, … by position. */
function ruleByName(env: RouteEnv, name: string | undefined): { rule: PolicyRule; name: string } {
  if (name === undefined || name === '') throw bad('the policy is required: add ?policy=<name> (rule-0, rule-1, … in config order)');
  const m = RULE_NAME.exec(name);
  const rule = m !== null ? rules(env)[Number(m[1])] : undefined;
  if (rule === undefined) throw new KmsError('KeyNotFound', `no policy ${JSON.stringify(name.slice(0, 64))}: policies are the config's rules, rule-0 … rule-${rules(env).length - 1}`);
  return { rule, name };
}

const isAdmin = (r: PolicyRule): boolean => r.allow.includes('*') && (r.keys.length === 0 || r.keys.includes('*'));
const started = new Date(Date.now() - process.uptime() * 1000).toISOString();

function ruleFor(env: RouteEnv, accessKey: string): { rule: PolicyRule; name: string } | undefined {
  const i = rules(env).findIndex((r) => r.match.accessKey === accessKey);
  return i < 0 ? undefined : { rule: rules(env)[i] as PolicyRule, name: `rule-${i}` };
}

function kmsPolicy(rule: PolicyRule): { allow: string[]; deny: string[] } {
  return { allow: [...rule.allow], deny: [] };
}

const HOW_TO_CHANGE_POLICY =
  "this daemon's policy is the `policy:` section of its config file; edit it and reload (SIGHUP, " +
  '`systemctl reload rustfs-kms`, or POST /rustfs/admin/v3/kms/reconfigure)';

function notImplemented(what: string): () => never {
  return () => {
    throw new NotImplementedError(`${what} is not supported: ${HOW_TO_CHANGE_POLICY}`);
  };
}

// ---- the route table ---------------------------------------------------------------------------

export const MADMIN_ROUTES: readonly Route[] = [
  kmsStatusRoute('kms'),
  kmsRoute({
    methods: ['GET'], path: '/metrics', op: 'status', params: [],
    args: () => ({}),
    respond: (result, _req, _run, env) => ok(kmsMetrics(env, result as WireStatus)),
  }),
  kmsRoute({
    methods: ['GET'], path: '/apis', op: 'status', params: [],
    args: () => ({}),
    // madmin.KMSAPI has no json tags: the keys are the Go field names. Timeout in seconds.
    respond: () => ok(MADMIN_ROUTES.flatMap((r) => r.methods.map((m) => ({
      Method: m, Path: `/minio/kms/v1${r.path}`, MaxBody: r.maxBodyBytes, Timeout: Math.round(r.timeoutMs / 1000),
    })))),
  }),
  kmsRoute({
    methods: ['GET'], path: '/version', op: 'health', params: [],
    args: () => ({}),
    respond: (result) => ok({ version: (result as WireHealth).version }),
  }),
  keyCreateRoute('kms', (req) => {
    if (req.body.length > 0) throw bad('key/create takes no body (madmin sends none); the key is named by ?key-id=');
    return {};
  }),
  kmsRoute({
    // madmin.DeleteKey: schedules the deletion with the longest window; cancel it within 30 days.
    methods: ['DELETE'], path: '/key/delete', op: 'schedule_key_deletion', params: KEY_PARAMS,
    args: (req) => ({ key_id: requiredKey(req), pending_days: PENDING_DAYS.max }),
    respond: () => ({ status: 200 }),
  }),
  kmsRoute({
    methods: ['POST'], path: '/key/import', op: 'create_key', params: KEY_PARAMS, maxBodyBytes: POLICY_BODY,
    args: () => {
      throw new NotImplementedError('importing key material is not supported: keys are generated inside the daemon and never leave it; use key/create');
    },
    respond: notImplemented('key/import'),
  }),
  keyListRoute('kms'),
  keyStatusRoute('kms'),
  kmsRoute({ methods: ['POST'], path: '/policy/set', op: 'configure', params: ['policy'], maxBodyBytes: POLICY_BODY, args: () => ({}), respond: notImplemented('policy/set') }),
  kmsRoute({ methods: ['POST'], path: '/policy/assign', op: 'configure', params: ['policy'], maxBodyBytes: POLICY_BODY, args: () => ({}), respond: notImplemented('policy/assign') }),
  kmsRoute({ methods: ['DELETE'], path: '/policy/delete', op: 'configure', params: ['policy'], args: () => ({}), respond: notImplemented('policy/delete') }),
  kmsRoute({ methods: ['DELETE'], path: '/identity/delete', op: 'configure', params: ['identity'], args: () => ({}), respond: notImplemented('identity/delete') }),
  kmsRoute({
    methods: ['GET'], path: '/policy/describe', op: 'configure', params: ['policy'],
    args: () => ({}),
    respond: (_r, req, _run, env) => {
      const { name } = ruleByName(env, single(req.query, 'policy'));
      return ok({ name, created_at: started, created_by: CONFIGURED_BY });
    },
  }),
  kmsRoute({
    methods: ['GET'], path: '/policy/get', op: 'configure', params: ['policy'],
    args: () => ({}),
    respond: (_r, req, _run, env) => ok(kmsPolicy(ruleByName(env, single(req.query, 'policy')).rule)),
  }),
  kmsRoute({
    methods: ['GET'], path: '/policy/list', op: 'configure', params: ['pattern'],
    args: () => ({}),
    respond: (_r, req, _run, env) => {
      const p = single(req.query, 'pattern') ?? '';
      const glob = p === '' ? '*' : p;
      return ok(rules(env).map((_rule, i) => `rule-${i}`).filter((n) => globMatch(glob, n))
        .map((name) => ({ name, created_at: started, created_by: CONFIGURED_BY })));
    },
  }),
  kmsRoute({
    methods: ['GET'], path: '/identity/describe', op: 'configure', params: ['identity'],
    args: () => ({}),
    respond: (_r, req, _run, env) => {
      const identity = single(req.query, 'identity') ?? '';
      if (identity === '') throw bad('the identity is required: add ?identity=<access key>');
      const found = ruleFor(env, identity);
      if (found === undefined) throw new KmsError('KeyNotFound', `no policy rule names access key ${JSON.stringify(identity.slice(0, 64))}`);
      return ok({ policy: found.name, identity, isAdmin: isAdmin(found.rule), createdAt: started, createdBy: CONFIGURED_BY });
    },
  }),
  kmsRoute({
    // Any caller with a valid signature may describe itself (KES allows it to every identity).
    methods: ['GET'], path: '/identity/describe-self', op: 'signed', params: [],
    args: () => ({}),
    respond: (_r, req, _run, env) => {
      const identity = req.accessKey ?? '';
      const found = ruleFor(env, identity);
      return ok({
        policy: found !== undefined ? kmsPolicy(found.rule) : null, policyName: found?.name ?? '', identity,
        isAdmin: found !== undefined && isAdmin(found.rule), createdAt: started, createdBy: CONFIGURED_BY,
      });
    },
  }),
  kmsRoute({
    methods: ['GET'], path: '/identity/list', op: 'configure', params: ['pattern'],
    args: () => ({}),
    respond: (_r, req, _run, env) => {
      const p = single(req.query, 'pattern') ?? '';
      const glob = p === '' ? '*' : p;
      const out: Array<Record<string, string>> = [];
      rules(env).forEach((r, i) => {
        const ak = r.match.accessKey;
        if (ak !== undefined && globMatch(glob, ak) && !out.some((o) => o.identity === ak)) {
          out.push({ createdAt: started, createdBy: CONFIGURED_BY, identity: ak, policy: `rule-${i}`, error: '' });
        }
      });
      return ok(out);
    },
  }),
];
