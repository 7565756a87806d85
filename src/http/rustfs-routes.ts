// RustFS's KMS admin contract (rustfs/rustfs@20d1266496ba; reference §1): the 31 routes under
// /rustfs/admin/v3/kms with their parameters, status codes, response shapes and error channels
// (`X` S3 XML, `J` the route's own JSON with success:false, `T` plain text). Key routes run the op
// table; service-control and backup routes authorize an admin action and answer for a standalone
// daemon: configured by its file, started and stopped by systemd, restored offline.
import { randomUUID } from 'node:crypto';
import { KmsError } from '../errors.js';
import { PENDING_DAYS, type WireDataKey, type WireHealth, type WireKeyInfo, type WireListKeysResult } from '../ops/protocol.js';
import { ArgumentError, InvalidJsonError, type JsonErrorBody } from './errors.js';
import { bad, firstOf, jsonObject, optBool, optString, optStringMap, single } from './params.js';
import {
  backendEnum, backendKebab, configSummary, keyMetadata, keyResult, rfc3339, rustfsKeyInfo, unavailableImpact,
} from './shapes.js';
import type { Route, RouteAnswer, RouteEnv, RouteRequest } from './routes.js';
import { backupRoutes } from './rustfs-backup.js';

/** MAX_ADMIN_REQUEST_BODY_SIZE of RustFS (crates/config body_limits.rs). */
export const ADMIN_BODY = 1024 * 1024;
const TIMEOUT = 10_000;
const SLOW_TIMEOUT = 30_000;

const ok = (json: unknown): RouteAnswer => ({ status: 200, json });

// ---- error channels and status maps -------------------------------------------------------------

/** Failures of modern key routes that mean "the key's state forbids it" are 400 on RustFS. */
const STATE_CODES: ReadonlySet<string> = new Set(['KeyDisabled', 'KeyPendingDeletion']);

export function modernStatus(err: KmsError, fallback: number): number {
  return STATE_CODES.has(err.code) ? 400 : fallback;
}

/** Route 10: any create failure is 500, bad input stays 400, an unavailable backend 503. */
function createStatus(err: KmsError, fallback: number): number {
  return fallback === 400 || fallback === 403 || fallback === 413 || fallback === 503 ? fallback : 500;
}

/** Route 14: every KMS error is 500 (no 404); bad arguments 400. */
function cancelStatus(err: KmsError, fallback: number): number {
  return err instanceof ArgumentError || fallback === 403 || fallback === 413 || fallback === 503 ? fallback : 500;
}

/** Legacy X routes (21–26): 400 for bad input, 500 for every other failure, not-found included. */
function legacyStatus(err: KmsError, fallback: number): number {
  return fallback === 400 || fallback === 403 || fallback === 413 ? fallback : 500;
}

const KEY_RESULT_ERROR: JsonErrorBody = (err) => ({ success: false, message: err.message, key_id: '', key_metadata: null });
const LIST_ERROR: JsonErrorBody = (err) => ({ success: false, message: err.message, keys: [], truncated: false, next_marker: null });
const DESCRIBE_ERROR: JsonErrorBody = (err) => ({ success: false, message: err.message, key_metadata: null, impact: null });
const DELETE_ERROR: JsonErrorBody = (err) => ({ success: false, message: err.message, key_id: '', deletion_date: null, impact: null });

type RouteSpec = Omit<Route, 'prefix' | 'maxBodyBytes' | 'timeoutMs'> & { maxBodyBytes?: number; timeoutMs?: number };

function route(r: RouteSpec): Route {
  return { maxBodyBytes: ADMIN_BODY, timeoutMs: TIMEOUT, ...r, prefix: 'rustfs' };
}

// ---- key id, from path, body or query -------------------------------------------------------------

/** `{key_id}` from the body, else (empty body) the `keyId` query parameter. */
function bodyOrQueryKey(req: RouteRequest, fields: readonly string[]): { keyId: string; body: Record<string, unknown> | undefined } {
  const body = jsonObject(req.body, fields);
  const fromBody = optString(body, 'key_id');
  const keyId = body !== undefined ? fromBody : single(req.query, 'keyId');
  if (keyId === undefined || keyId === '') throw bad('keyId is required: send {"key_id": …} or ?keyId=<key id>');
  return { keyId, body };
}

function requiredBody(req: RouteRequest, fields: readonly string[]): Record<string, unknown> {
  const body = jsonObject(req.body, fields);
  if (body === undefined) throw new InvalidJsonError('Request body is required');
  const keyId = optString(body, 'key_id');
  if (keyId === undefined || keyId === '') throw bad('key_id is required');
  return body;
}

// ---- create ---------------------------------------------------------------------------------------

const CREATE_FIELDS = ['key_usage', 'description', 'tags'] as const;

/** RustFS names a key by tags.name (else a UUID); this daemon's keyName query also names it. */
function createArgs(req: RouteRequest, allowKeyName: boolean): Record<string, unknown> {
  const body = jsonObject(req.body, CREATE_FIELDS);
  const usage = optString(body, 'key_usage');
  if (usage !== undefined && usage !== 'EncryptDecrypt') {
    throw bad(`key_usage ${JSON.stringify(usage.slice(0, 32))} is not supported: this daemon's keys are symmetric (EncryptDecrypt) only`);
  }
  const tags = optStringMap(body, 'tags');
  const description = optString(body, 'description');
  const keyName = allowKeyName ? single(req.query, 'keyName') : undefined;
  const keyId = tags?.name ?? (keyName !== undefined && keyName !== '' ? keyName : randomUUID());
  return { key_id: keyId, ...(description !== undefined ? { description } : {}), ...(tags !== undefined ? { tags } : {}) };
}

// ---- listing (routes 11 and 25) -------------------------------------------------------------------

const norm = (s: string): string => s.toLowerCase().replace(/[_-]/g, '');
const STATUS_FILTER: Readonly<Record<string, string>> = { active: 'Enabled', disabled: 'Disabled', pendingdeletion: 'PendingDeletion', deleted: '' };
const USAGE_FILTER: Readonly<Record<string, boolean>> = { encryptdecrypt: true, signverify: false };

interface ListQuery {
  limit: number;
  marker?: string;
  state?: string;
  usage?: boolean;
}

function listQuery(req: RouteRequest): ListQuery {
  const raw = single(req.query, 'limit');
  let limit = 100;
  if (raw !== undefined) {
    if (!/^\d+$/.test(raw)) throw bad(`limit must be a non-negative integer, got ${JSON.stringify(raw.slice(0, 32))}`);
    limit = Math.min(Number(raw.length > 10 ? '4294967295' : raw), 1000); // u32 saturates; served at most 1000
  }
  const q: ListQuery = { limit };
  const marker = single(req.query, 'marker');
  if (marker !== undefined && marker !== '') q.marker = marker;
  const status = single(req.query, 'status');
  if (status !== undefined) {
    const s = STATUS_FILTER[norm(status)];
    if (s === undefined || !Object.hasOwn(STATUS_FILTER, norm(status))) throw bad('status must be Active, Disabled, PendingDeletion or Deleted');
    q.state = s;
  }
  const usage = single(req.query, 'usage');
  if (usage !== undefined) {
    if (!Object.hasOwn(USAGE_FILTER, norm(usage))) throw bad('usage must be EncryptDecrypt or SignVerify');
    q.usage = USAGE_FILTER[norm(usage)] as boolean;
  }
  return q;
}

const LIST_PARAMS = ['limit', 'marker', 'status', 'usage'];

function listArgs(req: RouteRequest): Record<string, unknown> {
  const q = listQuery(req);
  // limit=0 is an empty page; the operation still runs (limit 1) so the policy decides on it.
  return { limit: Math.max(q.limit, 1), ...(q.marker !== undefined ? { marker: q.marker } : {}) };
}

/** The page, filtered after it was cut (RustFS: pages may be short or empty while truncated). */
function listPage(result: unknown, req: RouteRequest): { keys: unknown[]; truncated: boolean; next_marker: string | null } {
  const q = listQuery(req);
  if (q.limit === 0) return { keys: [], truncated: false, next_marker: null };
  const r = result as WireListKeysResult;
  const keys = r.keys.filter((k) => (q.state === undefined || k.state === q.state) && (q.usage === undefined || q.usage));
  return { keys: keys.map((k) => rustfsKeyInfo(k)), truncated: r.truncated, next_marker: r.truncated ? r.next_marker ?? null : null };
}

// ---- per-key modern routes ------------------------------------------------------------------------

function keyStateRoute(path: string, op: 'enable_key' | 'disable_key' | 'rotate_key', message: string): Route {
  return route({
    methods: ['POST'], path, op, params: ['keyId'], errors: KEY_RESULT_ERROR, status: modernStatus,
    ...(op === 'rotate_key' ? { timeoutMs: SLOW_TIMEOUT } : {}),
    args: (req) => ({ key_id: bodyOrQueryKey(req, ['key_id']).keyId }),
    respond: (result) => ok(keyResult(message, result as WireKeyInfo)),
  });
}

// ---- status -----------------------------------------------------------------------------------------

function kmsStatus(health: WireHealth, env: RouteEnv): Record<string, unknown> {
  const d = env.deployment;
  return {
    backend_type: backendKebab(d),
    backend_status: health.healthy ? 'healthy' : 'unhealthy',
    cache_enabled: true,
    cache_stats: null, // hits and misses are not counted; the Prometheus route has the cache gauges
    default_key_id: env.defaultKeyId ?? null,
    capabilities: {
      encrypt: true, decrypt: true, generate_data_key: true, rotate: true, enable_disable: true, schedule_deletion: true,
      versioning: true, physical_delete: false, update_key_metadata: true, rewrap: true,
    },
    cluster_config: { consistent: true, nodes: [{ host: 'local', config_fingerprint: d?.configFingerprint ?? null }] },
  };
}

function svcResult(success: boolean, message: string): RouteAnswer {
  return ok({ success, message, status: 'Running' });
}

const HOW_CONFIGURED =
  'rustfs-kmsd is configured by its config file (--config, default /etc/rustfs-kms/config.yaml) and RUSTFS_KMS_* ' +
  'environment variables, not over HTTP: edit the file and reload it (POST /rustfs/admin/v3/kms/reconfigure with an empty ' +
  'body, SIGHUP, or systemctl reload rustfs-kms); the backend and key directory change only with a restart';

// ---- the table ----------------------------------------------------------------------------------------

export const RUSTFS_CONTRACT_ROUTES: readonly Route[] = [
  // 1–5: service control
  route({
    methods: ['POST'], path: '/kms/configure', op: 'configure', params: [], errors: 'text',
    args: () => ({}),
    respond: () => {
      throw new KmsError('InvalidRequest', HOW_CONFIGURED);
    },
  }),
  route({
    methods: ['POST'], path: '/kms/reconfigure', op: 'configure', params: [], errors: 'text',
    args: (req) => {
      const body = req.body.toString('utf8').trim();
      if (body !== '' && body !== '{}') {
        throw bad('reconfigure reloads the daemon\'s own config file and takes no configuration: send an empty body. ' + HOW_CONFIGURED);
      }
      return {};
    },
    respond: (_r, _req, _run, env) => {
      if (env.reload === undefined) return svcResult(false, 'reloading is not available in this process');
      try {
        return svcResult(true, env.reload());
      } catch (err) {
        return svcResult(false, (err as Error).message);
      }
    },
  }),
  route({
    methods: ['POST'], path: '/kms/start', op: 'service_control', params: [], errors: 'text',
    args: (req) => {
      optBool(jsonObject(req.body, ['force']), 'force');
      return {};
    },
    respond: () => svcResult(false, 'the KMS is already running: rustfs-kmsd serves for as long as its process runs; ' +
      'start or restart it with systemd (systemctl restart rustfs-kms)'),
  }),
  route({
    methods: ['POST'], path: '/kms/stop', op: 'service_control', params: [], errors: 'text',
    args: () => ({}),
    respond: () => svcResult(false, 'stopping the KMS over HTTP is not supported: stop rustfs-kmsd with systemd ' +
      '(systemctl stop rustfs-kms.service rustfs-kms.socket) or SIGTERM; storage nodes have no key service while it is stopped'),
  }),
  route({
    methods: ['GET'], path: '/kms/service-status', op: 'service_control', params: [],
    args: () => ({}),
    respond: async (_r, _req, run, env) => {
      const health = (await run('health', {})) as WireHealth;
      return ok({ status: 'Running', backend_type: backendEnum(env.deployment), healthy: health.healthy, config_summary: configSummary(env.deployment, env.defaultKeyId) });
    },
  }),
  // 6–9: status, config, cache
  route({
    methods: ['GET', 'POST'], path: '/kms/status', op: 'health', params: [], errors: 'xml',
    args: () => ({}),
    respond: (result, _req, _run, env) => ok(kmsStatus(result as WireHealth, env)),
  }),
  route({
    methods: ['GET'], path: '/kms/config', op: 'configure', params: [], errors: 'xml',
    args: () => ({}),
    respond: (_r, _req, _run, env) => ok({
      backend: backendKebab(env.deployment), cache_enabled: true, cache_max_keys: 0,
      cache_ttl_seconds: env.deployment?.cacheIdleTtlS ?? 0, default_key_id: env.defaultKeyId ?? null,
    }),
  }),
  route({
    methods: ['POST'], path: '/kms/clear-cache', op: 'clear_cache', params: [], errors: 'xml',
    args: () => ({}),
    respond: (_r, _req, _run, env) => {
      if (env.clearCache === undefined) throw new KmsError('Internal', 'the key cache is not reachable from this server');
      env.clearCache();
      return ok({ status: 'success', message: 'cache cleared successfully' });
    },
  }),
  // 10–20: modern key routes (J)
  route({
    methods: ['POST'], path: '/kms/keys', op: 'create_key', params: [], errors: KEY_RESULT_ERROR, status: createStatus, timeoutMs: SLOW_TIMEOUT,
    args: (req) => createArgs(req, false),
    respond: (result) => ok(keyResult('key created', result as WireKeyInfo)),
  }),
  route({
    methods: ['GET'], path: '/kms/keys', op: 'list_keys', params: LIST_PARAMS, errors: LIST_ERROR,
    args: listArgs,
    respond: (result, req) => ok({ success: true, message: '', ...listPage(result, req) }),
  }),
  route({
    methods: ['GET'], path: '/kms/keys/{key_id}', op: 'describe_key', params: ['impact'], errors: DESCRIBE_ERROR, status: modernStatus,
    args: (req) => {
      const impact = single(req.query, 'impact');
      if (impact !== undefined && impact !== 'true' && impact !== 'false') throw bad('impact must be true or false');
      return { key_id: req.pathKey ?? '' };
    },
    respond: (result, req) => {
      const k = result as WireKeyInfo;
      return ok({ success: true, message: '', key_metadata: keyMetadata(k), impact: single(req.query, 'impact') === 'true' ? unavailableImpact(k.key_id) : null });
    },
  }),
  route({
    methods: ['DELETE'], path: '/kms/keys/delete', op: 'schedule_key_deletion', errors: DELETE_ERROR, status: modernStatus,
    params: ['keyId', 'pending_window_in_days', 'force_immediate', 'confirm_key_id'],
    args: (req) => {
      const { keyId, body } = bodyOrQueryKey(req, ['key_id', 'pending_window_in_days', 'force_immediate', 'confirm_key_id']);
      let days: number | undefined;
      let immediate: boolean | undefined;
      if (body !== undefined) {
        const d = body.pending_window_in_days;
        if (d !== undefined && d !== null && (typeof d !== 'number' || !Number.isInteger(d) || d < 0)) {
          throw new InvalidJsonError('invalid JSON: pending_window_in_days must be a non-negative integer');
        }
        days = typeof d === 'number' ? d : undefined;
        immediate = optBool(body, 'force_immediate');
        const confirm = optString(body, 'confirm_key_id');
        if (confirm !== undefined && confirm !== keyId) throw bad(`confirm_key_id ${JSON.stringify(confirm.slice(0, 64))} does not match key_id`);
      } else {
        if (req.query.has('confirm_key_id')) throw bad('confirm_key_id is accepted in the JSON body only');
        const f = single(req.query, 'force_immediate');
        if (f !== undefined && f !== 'false') throw bad('immediate deletion cannot be requested in the query; use the JSON body');
        const d = single(req.query, 'pending_window_in_days');
        days = d !== undefined && /^\d{1,9}$/.test(d) ? Number(d) : undefined; // unparsable is ignored, as on RustFS
      }
      if (immediate === true) {
        throw bad(`immediate deletion is not allowed: keys are deleted after a ${PENDING_DAYS.min}–${PENDING_DAYS.max} day window (cancel-deletion undoes it)`);
      }
      const pending = days ?? PENDING_DAYS.max;
      if (pending < PENDING_DAYS.min || pending > PENDING_DAYS.max) {
        throw bad(`pending_window_in_days is ${pending}; it must be from ${PENDING_DAYS.min} to ${PENDING_DAYS.max}`);
      }
      return { key_id: keyId, pending_days: pending };
    },
    respond: (result) => {
      const k = result as WireKeyInfo;
      return ok({
        success: true, message: 'key deletion scheduled', key_id: k.key_id,
        deletion_date: k.deletion_date !== undefined ? rfc3339(k.deletion_date) : null, impact: null,
      });
    },
  }),
  route({
    methods: ['POST'], path: '/kms/keys/cancel-deletion', op: 'cancel_key_deletion', params: ['keyId'], errors: KEY_RESULT_ERROR, status: cancelStatus,
    args: (req) => ({ key_id: bodyOrQueryKey(req, ['key_id']).keyId }),
    respond: (result) => ok(keyResult('key deletion cancelled', result as WireKeyInfo)),
  }),
  keyStateRoute('/kms/keys/enable', 'enable_key', 'key enabled'),
  keyStateRoute('/kms/keys/disable', 'disable_key', 'key disabled'),
  keyStateRoute('/kms/keys/rotate', 'rotate_key', 'key rotated'),
  route({
    methods: ['POST'], path: '/kms/keys/update-description', op: 'update_key_description', params: [], errors: KEY_RESULT_ERROR, status: modernStatus,
    args: (req) => {
      const body = requiredBody(req, ['key_id', 'description']);
      const description = optString(body, 'description');
      if (description === undefined) throw bad('description is required ("" clears it)');
      return { key_id: body.key_id, description };
    },
    respond: (result) => ok(keyResult('key description updated', result as WireKeyInfo)),
  }),
  route({
    methods: ['POST'], path: '/kms/keys/tag', op: 'tag_key', params: [], errors: KEY_RESULT_ERROR, status: modernStatus,
    args: (req) => {
      const body = requiredBody(req, ['key_id', 'tags']);
      const tags = optStringMap(body, 'tags');
      if (tags === undefined) throw bad('tags is required');
      if (Object.hasOwn(tags, 'name')) throw bad('the tag "name" is reserved: it holds the key\'s name and cannot be rewritten');
      return { key_id: body.key_id, tags };
    },
    respond: (result) => ok(keyResult('key tagged', result as WireKeyInfo)),
  }),
  route({
    methods: ['POST'], path: '/kms/keys/untag', op: 'untag_key', params: [], errors: KEY_RESULT_ERROR, status: modernStatus,
    args: (req) => {
      const body = requiredBody(req, ['key_id', 'tag_keys']);
      const tagKeys = body.tag_keys;
      if (!Array.isArray(tagKeys) || tagKeys.some((k) => typeof k !== 'string')) throw new InvalidJsonError('invalid JSON: tag_keys must be a list of strings');
      return { key_id: body.key_id, tag_keys: tagKeys };
    },
    respond: (result) => ok(keyResult('key untagged', result as WireKeyInfo)),
  }),
  // 21–26: legacy routes (X)
  ...['/kms/create-key', '/kms/key/create'].map((path) => route({
    methods: ['POST'], path, op: 'create_key', errors: 'xml', status: legacyStatus, timeoutMs: SLOW_TIMEOUT,
    // RustFS ignores the query (MinIO's key-id included); this daemon's keyName still names the key.
    params: path === '/kms/key/create' ? ['keyName', 'key-id'] : ['keyName'],
    args: (req) => createArgs(req, true),
    respond: (result) => {
      const k = result as WireKeyInfo;
      return ok({ key_id: k.key_id, key_metadata: keyMetadata(k) });
    },
  })),
  ...['/kms/describe-key', '/kms/key/status'].map((path) => route({
    methods: ['GET'], path, op: 'describe_key', params: ['keyId', 'key-id', 'key', 'keyName'], errors: 'xml', status: legacyStatus,
    args: (req) => {
      const keyId = firstOf(req.query, ['keyId', 'key-id', 'key', 'keyName']);
      if (keyId === undefined) throw bad('the key is required: add ?keyId=<key id>');
      return { key_id: keyId };
    },
    respond: (result) => ok({ key_metadata: keyMetadata(result as WireKeyInfo) }),
  })),
  route({
    methods: ['GET'], path: '/kms/list-keys', op: 'list_keys', params: LIST_PARAMS, errors: 'xml', status: legacyStatus,
    args: listArgs,
    respond: (result, req) => ok(listPage(result, req)),
  }),
  route({
    methods: ['POST'], path: '/kms/generate-data-key', op: 'generate_data_key', params: [], errors: 'xml', status: legacyStatus,
    args: (req) => {
      const body = jsonObject(req.body, ['key_id', 'key_spec', 'encryption_context']);
      if (body === undefined) throw new InvalidJsonError('Request body is required');
      const keyId = optString(body, 'key_id');
      if (keyId === undefined || keyId === '') throw bad('key_id is required');
      const spec = optString(body, 'key_spec');
      const bytes = spec === 'Aes128' ? 16 : spec === 'Aes256' || spec === 'ChaCha20' ? 32 : undefined;
      if (bytes === undefined) throw new InvalidJsonError('invalid JSON: key_spec must be Aes256, Aes128 or ChaCha20');
      const context = optStringMap(body, 'encryption_context');
      return { key_id: keyId, bytes, ...(context !== undefined ? { context } : {}) };
    },
    respond: (result) => {
      const dk = result as WireDataKey;
      const plaintext = Buffer.from(dk.plaintext ?? new Uint8Array());
      try {
        return ok({ key_id: dk.key_id, plaintext_key: plaintext.toString('base64'), ciphertext_blob: Buffer.from(dk.ciphertext).toString('base64') });
      } finally {
        plaintext.fill(0);
        dk.plaintext?.fill(0);
      }
    },
  }),
  // 27–31: backup and restore
  ...backupRoutes(route),
];
