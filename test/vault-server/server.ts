// A TEST SERVER that speaks the subset of HashiCorp Vault's HTTP API that rustfs-kms uses, with Vault's
// documented request and response JSON. It is not Vault and keeps everything in memory; it exists
// because no Vault binary can be installed where these tests run. The same suite runs against a real
// Vault when VAULT_ADDR and VAULT_TOKEN are set (npm run test:vault).
//
// Implemented (all under /v1/):
//   sys/health · sys/mounts/:path (transit, kv v2) · sys/auth/:path (approle, kubernetes) ·
//   sys/policies/acl/:name and sys/policy/:name (HCL `path "…" { capabilities = […] }`, enforced) ·
//   sys/namespaces/:name (X-Vault-Namespace selects a separate state per namespace)
//   auth/token/{lookup-self,renew-self,create,revoke-self} · auth/<approle>/role/:name{,/role-id,/secret-id},
//   auth/<approle>/login · auth/<kubernetes>/{config,role/:name,login} (JWT checked against the
//   configured pem_keys; no TokenReview)
//   <transit>/keys/:name{,/rotate} · <transit>/encrypt/:name · <transit>/decrypt/:name (AES-256-GCM,
//   AES-128-GCM or ChaCha20-Poly1305 per key version, `vault:vN:` ciphertexts, associated_data, derived
//   keys with context)
//   <kv>/data/:path (versions, options.cas, 400 on a check-and-set mismatch) · <kv>/metadata/:path
//   (read, list, delete) · <kv>/config
// Errors are Vault's: {"errors":[...]} with 400, 403 {"errors":["permission denied"]}, 404 {"errors":[]}.
//
// Fault switches for tests: down()/up() (the port stops/starts accepting), delayMs (slow answers),
// failNext(n, status) (5xx), sealed, expireTokens().
//
// This file imports only node: modules so that main.mjs can run it as a child process.
import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';

export interface VaultTestServerOptions {
  host?: string;
  /** 0 = any free port. */
  port?: number;
  tls?: { cert: string | Buffer; key: string | Buffer; clientCa?: string | Buffer };
  rootToken?: string;
  /** Mount a KV v2 engine at secret/ like `vault server -dev` does (default true). */
  devMounts?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  /** X-Vault-Namespace as sent ("" when absent). */
  namespace: string;
  hasToken: boolean;
  status: number;
  at: number;
  /** CN of the client certificate, when one was presented. */
  clientCertCn?: string;
}

interface Token {
  id: string;
  accessor: string;
  policies: string[];
  ns: string;
  root: boolean;
  ttl: number;
  creationTtl: number;
  issuedAt: number;
  expiresAt: number | null;
  maxExpiresAt: number | null;
  explicitMaxTtl: number;
  renewable: boolean;
  path: string;
  meta: Record<string, string> | null;
  displayName: string;
}

interface TransitKey {
  name: string;
  type: string;
  derived: boolean;
  exportable: boolean;
  versions: Map<number, { key: Buffer; created: number }>;
  latest: number;
  minDecryptionVersion: number;
  minEncryptionVersion: number;
}

interface KvVersion {
  data: Record<string, unknown> | null;
  created: string;
  deletionTime: string;
  destroyed: boolean;
}

interface KvSecret {
  versions: Map<number, KvVersion>;
  current: number;
  oldest: number;
  created: string;
  updated: string;
  maxVersions: number;
  casRequired: boolean;
  customMetadata: Record<string, string> | null;
}

interface Mount {
  type: 'transit' | 'kv';
  transit: Map<string, TransitKey>;
  kv: Map<string, KvSecret>;
  kvConfig: { maxVersions: number; casRequired: boolean; deleteVersionAfter: string };
}

interface AppRole {
  name: string;
  roleId: string;
  secretIds: Set<string>;
  policies: string[];
  ttl: number;
  maxTtl: number;
}

interface K8sRole {
  name: string;
  names: string[];
  namespaces: string[];
  policies: string[];
  ttl: number;
  maxTtl: number;
}

interface AuthMount {
  type: 'approle' | 'kubernetes' | 'token';
  approles: Map<string, AppRole>;
  k8sRoles: Map<string, K8sRole>;
  k8sConfig: { pemKeys: crypto.KeyObject[] } | null;
}

interface PolicyRule {
  pattern: RegExp;
  capabilities: Set<string>;
}

interface NsState {
  mounts: Map<string, Mount>;
  auths: Map<string, AuthMount>;
  policies: Map<string, { text: string; rules: PolicyRule[] }>;
}

class HttpError extends Error {
  constructor(readonly status: number, readonly errors: string[], readonly extra?: Record<string, unknown>) {
    super(errors.join('; '));
  }
}

interface Reply {
  status: number;
  body?: unknown;
}

interface Ctx {
  method: string;
  path: string;
  query: URLSearchParams;
  body: Record<string, unknown>;
  ns: string;
  state: NsState;
  token: Token | null;
}

const DEFAULT_TTL_S = 768 * 3600;
const MAX_BODY = 32 * 1024 * 1024;
const PERMISSION_DENIED = 'permission denied';
const AEAD = new Set(['aes256-gcm96', 'aes128-gcm96', 'chacha20-poly1305']);

export class VaultTestServer {
  readonly rootToken: string;
  readonly requests: RecordedRequest[] = [];
  /** Answers wait this long (slow Vault). */
  delayMs = 0;
  /** While true: sys/health says sealed (503) and every other request gets 503 "Vault is sealed". */
  sealed = false;
  private failCount = 0;
  private failStatus = 503;
  private readonly server: http.Server;
  private readonly sockets = new Set<Socket>();
  private readonly namespaces = new Map<string, NsState>();
  private readonly tokens = new Map<string, Token>();
  private readonly options: VaultTestServerOptions;
  private port = 0;
  private listening = false;
  private readonly startedAt = Date.now();

  constructor(options: VaultTestServerOptions = {}) {
    this.options = options;
    this.rootToken = options.rootToken ?? `hvs.root-${crypto.randomBytes(12).toString('hex')}`;
    const root = emptyNs();
    this.namespaces.set('', root);
    if (options.devMounts !== false) root.mounts.set('secret', newMount('kv'));
    this.tokens.set(this.rootToken, {
      id: this.rootToken, accessor: uuid(), policies: ['root'], ns: '', root: true, ttl: 0, creationTtl: 0,
      issuedAt: Date.now(), expiresAt: null, maxExpiresAt: null, explicitMaxTtl: 0, renewable: false,
      path: 'auth/token/root', meta: null, displayName: 'root',
    });
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) send(res, 500, { errors: [`test server: ${(err as Error).message}`] });
      });
    };
    if (options.tls !== undefined) {
      const t = options.tls;
      this.server = https.createServer({
        cert: t.cert, key: t.key,
        ...(t.clientCa !== undefined ? { ca: t.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
      }, handler);
    } else {
      this.server = http.createServer(handler);
    }
    this.server.keepAliveTimeout = 5000;
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  /** e.g. http://127.0.0.1:41234 */
  get address(): string {
    return `${this.options.tls !== undefined ? 'https' : 'http'}://${this.options.host ?? '127.0.0.1'}:${this.port}`;
  }

  async start(): Promise<this> {
    await this.listen(this.options.port ?? 0);
    return this;
  }

  async stop(): Promise<void> {
    await this.down();
  }

  /** Vault goes away: the port refuses connections and open connections are cut. */
  async down(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  /** Vault is back, on the same port. */
  async up(): Promise<void> {
    if (this.listening) return;
    await this.listen(this.port);
  }

  get isUp(): boolean {
    return this.listening;
  }

  /** The next n requests (sys/health excepted) get `status` with a Vault error body. */
  failNext(n: number, status = 503): void {
    this.failCount = n;
    this.failStatus = status;
  }

  /** Every token but the root token stops working now (as if its TTL had run out). */
  expireTokens(): number {
    let n = 0;
    for (const t of this.tokens.values()) {
      if (!t.root) {
        t.expiresAt = Date.now() - 1;
        n++;
      }
    }
    return n;
  }

  /** Requests whose path matches, for assertions. */
  requestsTo(pattern: RegExp | string): RecordedRequest[] {
    return this.requests.filter((r) => (typeof pattern === 'string' ? r.path === pattern : pattern.test(r.path)));
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, this.options.host ?? '127.0.0.1', () => {
        this.server.off('error', onError);
        this.port = (this.server.address() as AddressInfo).port;
        this.listening = true;
        resolve();
      });
    });
  }

  // ---- request handling -----------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://vault');
    const raw = await readBody(req);
    const nsHeader = headerValue(req.headers['x-vault-namespace']);
    const ns = nsHeader.replace(/^\/+|\/+$/g, '');
    let method = (req.method ?? 'GET').toUpperCase();
    const listParam = url.searchParams.get('list');
    if (method === 'GET' && (listParam === 'true' || listParam === '1')) method = 'LIST';
    const path = decodeURIComponent(url.pathname.replace(/^\/v1\//, '')).replace(/\/+$/, '');
    const tokenId = headerValue(req.headers['x-vault-token']) || bearer(headerValue(req.headers.authorization));
    const peer = (req.socket as { getPeerCertificate?: () => { subject?: { CN?: string } } }).getPeerCertificate?.();
    const record: RecordedRequest = { method, path, namespace: nsHeader, hasToken: tokenId !== '', status: 0, at: Date.now() };
    if (peer?.subject?.CN !== undefined) record.clientCertCn = peer.subject.CN;
    this.requests.push(record);
    if (this.requests.length > 50_000) this.requests.splice(0, 10_000);

    if (this.delayMs > 0) await sleep(this.delayMs);
    if (!this.listening) {
      req.socket.destroy();
      return;
    }
    let reply: Reply;
    try {
      if (!url.pathname.startsWith('/v1/')) throw new HttpError(404, []);
      let body: Record<string, unknown> = {};
      if (raw.length > 0) {
        try {
          const parsed: unknown = JSON.parse(raw.toString('utf8'));
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
          body = parsed as Record<string, unknown>;
        } catch (err) {
          throw new HttpError(400, [`failed to parse JSON input: ${(err as Error).message}`]);
        }
      }
      reply = this.route(method, path, url.searchParams, body, ns, tokenId);
    } catch (err) {
      if (err instanceof HttpError) reply = { status: err.status, body: { errors: err.errors, ...(err.extra ?? {}) } };
      else reply = { status: 500, body: { errors: [`internal error: ${(err as Error).message}`] } };
    }
    record.status = reply.status;
    send(res, reply.status, reply.body);
  }

  private route(method: string, path: string, query: URLSearchParams, body: Record<string, unknown>, ns: string, tokenId: string): Reply {
    if (path === 'sys/health') return this.health(query);
    if (this.failCount > 0) {
      this.failCount--;
      throw new HttpError(this.failStatus, [`injected fault: status ${this.failStatus}`]);
    }
    if (this.sealed) throw new HttpError(503, ['Vault is sealed']);
    const state = this.namespaces.get(ns);
    if (state === undefined) throw new HttpError(404, [`namespace not found: ${JSON.stringify(ns)}`]);

    // Logins take no token.
    const login = /^auth\/(.+)\/login$/.exec(path);
    if (login !== null && method === 'POST') return this.login(state, ns, login[1] as string, body);

    const token = this.validToken(tokenId, ns);
    if (token === null) throw new HttpError(403, [PERMISSION_DENIED]);
    const ctx: Ctx = { method, path, query, body, ns, state, token };

    if (path.startsWith('auth/token/')) return this.tokenRoutes(ctx);
    if (path.startsWith('sys/')) return this.sysRoutes(ctx);
    if (path.startsWith('auth/')) return this.authRoutes(ctx);
    const mount = longestMount(state, path);
    if (mount === null) throw new HttpError(404, [`no handler for route "${path}". route entry not found.`]);
    const rest = path.slice(mount.path.length + 1);
    if (mount.mount.type === 'transit') return this.transitRoutes(ctx, mount.path, mount.mount, rest);
    return this.kvRoutes(ctx, mount.path, mount.mount, rest);
  }

  private health(query: URLSearchParams): Reply {
    const body = {
      initialized: true,
      sealed: this.sealed,
      standby: false,
      performance_standby: false,
      replication_performance_mode: 'disabled',
      replication_dr_mode: 'disabled',
      server_time_utc: Math.floor(Date.now() / 1000),
      version: '1.15.0+test-server',
      cluster_name: 'vault-test-server',
      cluster_id: 'b1c2d3e4-0000-4000-8000-000000000000',
    };
    const sealedCode = Number(query.get('sealedcode') ?? 503);
    return { status: this.sealed ? sealedCode : Number(query.get('activecode') ?? 200), body };
  }

  // ---- tokens and ACL -------------------------------------------------------------------------

  private validToken(id: string, ns: string): Token | null {
    if (id === '') return null;
    const t = this.tokens.get(id);
    if (t === undefined) return null;
    if (t.expiresAt !== null && Date.now() >= t.expiresAt) return null;
    if (!t.root && t.ns !== ns) return null;
    return t;
  }

  private require(ctx: Ctx, capability: string, path = ctx.path): void {
    const t = ctx.token as Token;
    if (t.root || t.policies.includes('root')) return;
    let allowed = false;
    for (const name of t.policies) {
      const policy = ctx.state.policies.get(name);
      if (policy === undefined) continue;
      for (const rule of policy.rules) {
        if (!rule.pattern.test(path)) continue;
        if (rule.capabilities.has('deny')) throw new HttpError(403, [PERMISSION_DENIED]);
        if (rule.capabilities.has(capability)) allowed = true;
      }
    }
    if (!allowed) throw new HttpError(403, [PERMISSION_DENIED]);
  }

  private issueToken(ns: string, o: {
    policies: string[]; ttl: number; maxTtl: number; renewable: boolean; path: string;
    meta: Record<string, string> | null; displayName: string;
  }): Token {
    const now = Date.now();
    const id = `hvs.${crypto.randomBytes(18).toString('base64url')}`;
    const maxExpiresAt = o.maxTtl > 0 ? now + o.maxTtl * 1000 : null;
    const ttl = o.maxTtl > 0 && o.ttl > 0 ? Math.min(o.ttl, o.maxTtl) : o.ttl;
    const t: Token = {
      id, accessor: crypto.randomBytes(12).toString('hex'), policies: dedupe(['default', ...o.policies]), ns, root: false,
      ttl, creationTtl: ttl, issuedAt: now, expiresAt: ttl > 0 ? now + ttl * 1000 : null, maxExpiresAt,
      explicitMaxTtl: o.maxTtl, renewable: o.renewable, path: o.path, meta: o.meta, displayName: o.displayName,
    };
    this.tokens.set(id, t);
    return t;
  }

  private authBlock(t: Token, warnings?: string[]): Reply {
    return ok(null, {
      auth: {
        client_token: t.id,
        accessor: t.accessor,
        policies: t.policies,
        token_policies: t.policies,
        metadata: t.meta,
        lease_duration: t.expiresAt === null ? 0 : Math.max(0, Math.round((t.expiresAt - Date.now()) / 1000)),
        renewable: t.renewable,
        entity_id: '',
        token_type: 'service',
        orphan: true,
        mfa_requirement: null,
        num_uses: 0,
      },
      ...(warnings !== undefined ? { warnings } : {}),
    });
  }

  private tokenRoutes(ctx: Ctx): Reply {
    const t = ctx.token as Token;
    const sub = ctx.path.slice('auth/token/'.length);
    if (sub === 'lookup-self' && (ctx.method === 'GET' || ctx.method === 'POST')) {
      const remaining = t.expiresAt === null ? 0 : Math.max(0, Math.round((t.expiresAt - Date.now()) / 1000));
      return ok({
        accessor: t.accessor,
        creation_time: Math.floor(t.issuedAt / 1000),
        creation_ttl: t.creationTtl,
        display_name: t.displayName,
        entity_id: '',
        expire_time: t.expiresAt === null ? null : new Date(t.expiresAt).toISOString(),
        explicit_max_ttl: t.explicitMaxTtl,
        id: t.id,
        issue_time: new Date(t.issuedAt).toISOString(),
        meta: t.meta,
        num_uses: 0,
        orphan: true,
        path: t.path,
        policies: t.policies,
        renewable: t.renewable,
        ttl: remaining,
        type: 'service',
      });
    }
    if (sub === 'renew-self' && ctx.method === 'POST') {
      if (!t.renewable || t.expiresAt === null) throw new HttpError(400, ['lease is not renewable']);
      const increment = ctx.body.increment !== undefined ? duration(ctx.body.increment) : t.creationTtl;
      let ttl = increment > 0 ? increment : t.creationTtl;
      const warnings: string[] = [];
      if (t.maxExpiresAt !== null) {
        const left = Math.floor((t.maxExpiresAt - Date.now()) / 1000);
        if (ttl > left) {
          warnings.push(`TTL of "${ttl}s" exceeded the effective max_ttl of "${Math.max(0, left)}s"; TTL value is capped accordingly`);
          ttl = Math.max(0, left);
        }
      }
      t.expiresAt = Date.now() + ttl * 1000;
      return this.authBlock(t, warnings.length > 0 ? warnings : undefined);
    }
    if (sub === 'revoke-self' && ctx.method === 'POST') {
      this.tokens.delete(t.id);
      return { status: 204 };
    }
    if ((sub === 'create' || sub === 'create-orphan') && ctx.method === 'POST') {
      this.require(ctx, 'update');
      const b = ctx.body;
      const policies = Array.isArray(b.policies) ? b.policies.map(String) : [...t.policies];
      const created = this.issueToken(ctx.ns, {
        policies: policies.filter((p) => p !== 'root' || t.root),
        ttl: b.ttl !== undefined ? duration(b.ttl) : DEFAULT_TTL_S,
        maxTtl: b.explicit_max_ttl !== undefined ? duration(b.explicit_max_ttl) : 0,
        renewable: b.renewable !== false,
        path: 'auth/token/create',
        meta: isRecord(b.meta) ? stringMap(b.meta) : null,
        displayName: typeof b.display_name === 'string' ? `token-${b.display_name}` : 'token',
      });
      if (policies.includes('root') && t.root) created.root = true;
      return this.authBlock(created);
    }
    throw new HttpError(405, []);
  }

  // ---- logins ---------------------------------------------------------------------------------

  private login(state: NsState, ns: string, mountPath: string, body: Record<string, unknown>): Reply {
    const mount = state.auths.get(mountPath);
    if (mount === undefined) throw new HttpError(400, [`no handler for route "auth/${mountPath}/login"`]);
    if (mount.type === 'approle') {
      const roleId = typeof body.role_id === 'string' ? body.role_id : '';
      const secretId = typeof body.secret_id === 'string' ? body.secret_id : '';
      if (roleId === '') throw new HttpError(400, ['missing role_id']);
      const role = [...mount.approles.values()].find((r) => r.roleId === roleId);
      if (role === undefined || !role.secretIds.has(secretId)) throw new HttpError(400, ['invalid role or secret ID']);
      const t = this.issueToken(ns, {
        policies: role.policies, ttl: role.ttl, maxTtl: role.maxTtl, renewable: true,
        path: `auth/${mountPath}/login`, meta: { role_name: role.name }, displayName: `${mountPath}`,
      });
      return this.authBlock(t);
    }
    if (mount.type === 'kubernetes') {
      const roleName = typeof body.role === 'string' ? body.role : '';
      const jwt = typeof body.jwt === 'string' ? body.jwt : '';
      const role = mount.k8sRoles.get(roleName);
      if (role === undefined) throw new HttpError(400, [`invalid role name "${roleName}"`]);
      if (jwt === '') throw new HttpError(400, ['missing jwt']);
      const claims = verifyJwt(jwt, mount.k8sConfig?.pemKeys ?? []);
      if (claims === null) throw new HttpError(403, [PERMISSION_DENIED]);
      const nested = isRecord(claims['kubernetes.io']) ? claims['kubernetes.io'] : undefined;
      const saName = String(claims['kubernetes.io/serviceaccount/service-account.name'] ??
        (isRecord(nested?.serviceaccount) ? nested.serviceaccount.name : '') ?? '');
      const saNamespace = String(claims['kubernetes.io/serviceaccount/namespace'] ?? nested?.namespace ?? '');
      const nameOk = role.names.includes('*') || role.names.includes(saName);
      const nsOk = role.namespaces.includes('*') || role.namespaces.includes(saNamespace);
      if (!nameOk || !nsOk) throw new HttpError(403, [`service account name not authorized`]);
      const t = this.issueToken(ns, {
        policies: role.policies, ttl: role.ttl, maxTtl: role.maxTtl, renewable: true, path: `auth/${mountPath}/login`,
        meta: { role: role.name, service_account_name: saName, service_account_namespace: saNamespace, service_account_secret_name: '', service_account_uid: String(claims.sub ?? '') },
        displayName: `${mountPath}-${saNamespace}-${saName}`,
      });
      return this.authBlock(t);
    }
    throw new HttpError(400, ['unsupported login']);
  }

  private authRoutes(ctx: Ctx): Reply {
    // auth/<mount>/role/<name>[/role-id|/secret-id], auth/<mount>/config
    const m = /^auth\/(.+?)\/(role\/([^/]+)(?:\/(role-id|secret-id))?|config)$/.exec(ctx.path);
    if (m === null) throw new HttpError(404, []);
    const mountPath = m[1] as string;
    const mount = ctx.state.auths.get(mountPath);
    if (mount === undefined) throw new HttpError(404, [`no handler for route "${ctx.path}"`]);
    if (m[2] === 'config') {
      this.require(ctx, ctx.method === 'GET' ? 'read' : 'update');
      if (ctx.method === 'GET') return ok({ pem_keys: [] });
      const pem = Array.isArray(ctx.body.pem_keys) ? ctx.body.pem_keys.map(String) : [];
      mount.k8sConfig = { pemKeys: pem.map((p) => crypto.createPublicKey(p)) };
      return { status: 204 };
    }
    const roleName = m[3] as string;
    const sub = m[4];
    const b = ctx.body;
    const policies = Array.isArray(b.token_policies) ? b.token_policies.map(String)
      : Array.isArray(b.policies) ? b.policies.map(String)
        : typeof b.token_policies === 'string' ? b.token_policies.split(',').map((s) => s.trim()).filter(Boolean) : [];
    if (mount.type === 'approle') {
      if (sub === undefined && (ctx.method === 'POST' || ctx.method === 'PUT')) {
        this.require(ctx, mount.approles.has(roleName) ? 'update' : 'create');
        const existing = mount.approles.get(roleName);
        mount.approles.set(roleName, {
          name: roleName, roleId: existing?.roleId ?? uuid(), secretIds: existing?.secretIds ?? new Set(),
          policies, ttl: b.token_ttl !== undefined ? duration(b.token_ttl) : DEFAULT_TTL_S,
          maxTtl: b.token_max_ttl !== undefined ? duration(b.token_max_ttl) : 0,
        });
        return { status: 204 };
      }
      const role = mount.approles.get(roleName);
      if (role === undefined) throw new HttpError(404, []);
      if (sub === 'role-id' && ctx.method === 'GET') {
        this.require(ctx, 'read');
        return ok({ role_id: role.roleId });
      }
      if (sub === 'secret-id' && ctx.method === 'POST') {
        this.require(ctx, 'update');
        const secretId = uuid();
        role.secretIds.add(secretId);
        return ok({ secret_id: secretId, secret_id_accessor: uuid(), secret_id_ttl: 0, secret_id_num_uses: 0 });
      }
      throw new HttpError(405, []);
    }
    if (mount.type === 'kubernetes' && sub === undefined && (ctx.method === 'POST' || ctx.method === 'PUT')) {
      this.require(ctx, mount.k8sRoles.has(roleName) ? 'update' : 'create');
      const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : typeof v === 'string' ? v.split(',').map((s) => s.trim()) : []);
      mount.k8sRoles.set(roleName, {
        name: roleName, names: list(b.bound_service_account_names), namespaces: list(b.bound_service_account_namespaces),
        policies, ttl: b.token_ttl !== undefined ? duration(b.token_ttl) : DEFAULT_TTL_S,
        maxTtl: b.token_max_ttl !== undefined ? duration(b.token_max_ttl) : 0,
      });
      return { status: 204 };
    }
    throw new HttpError(405, []);
  }

  // ---- sys ------------------------------------------------------------------------------------

  private sysRoutes(ctx: Ctx): Reply {
    const { path, method, body, state } = ctx;
    let m: RegExpExecArray | null;
    if ((m = /^sys\/mounts\/(.+)$/.exec(path)) !== null) {
      const mountPath = m[1] as string;
      if (method === 'DELETE') {
        this.require(ctx, 'delete');
        state.mounts.delete(mountPath);
        return { status: 204 };
      }
      if (method !== 'POST' && method !== 'PUT') throw new HttpError(405, []);
      this.require(ctx, 'update');
      if (state.mounts.has(mountPath)) throw new HttpError(400, [`path is already in use at ${mountPath}/`]);
      const type = String(body.type ?? '');
      const options = isRecord(body.options) ? body.options : {};
      if (type === 'transit') state.mounts.set(mountPath, newMount('transit'));
      else if (type === 'kv-v2' || (type === 'kv' && String(options.version ?? '1') === '2')) state.mounts.set(mountPath, newMount('kv'));
      else throw new HttpError(400, [`plugin not found in the catalog: ${type} (this test server knows transit and kv version 2)`]);
      return { status: 204 };
    }
    if ((m = /^sys\/auth\/(.+)$/.exec(path)) !== null) {
      const mountPath = m[1] as string;
      if (method === 'DELETE') {
        this.require(ctx, 'delete');
        state.auths.delete(mountPath);
        return { status: 204 };
      }
      this.require(ctx, 'update');
      if (state.auths.has(mountPath)) throw new HttpError(400, [`path is already in use at ${mountPath}/`]);
      const type = String(body.type ?? '');
      if (type !== 'approle' && type !== 'kubernetes') throw new HttpError(400, [`plugin not found in the catalog: ${type}`]);
      state.auths.set(mountPath, { type, approles: new Map(), k8sRoles: new Map(), k8sConfig: null });
      return { status: 204 };
    }
    if ((m = /^sys\/(?:policies\/acl|policy)\/([^/]+)$/.exec(path)) !== null) {
      const name = m[1] as string;
      if (method === 'GET') {
        this.require(ctx, 'read');
        const p = state.policies.get(name);
        if (p === undefined) throw new HttpError(404, []);
        return ok({ name, policy: p.text, rules: p.text });
      }
      if (method === 'DELETE') {
        this.require(ctx, 'delete');
        state.policies.delete(name);
        return { status: 204 };
      }
      this.require(ctx, 'update');
      const text = typeof body.policy === 'string' ? body.policy : typeof body.rules === 'string' ? body.rules : '';
      state.policies.set(name, { text, rules: parsePolicy(text) });
      return { status: 204 };
    }
    if ((m = /^sys\/namespaces\/(.+)$/.exec(path)) !== null) {
      this.require(ctx, 'update');
      const full = ctx.ns === '' ? (m[1] as string) : `${ctx.ns}/${m[1] as string}`;
      if (method === 'DELETE') {
        this.namespaces.delete(full);
        return { status: 204 };
      }
      if (!this.namespaces.has(full)) this.namespaces.set(full, emptyNs());
      return ok({ id: uuid(), path: `${full}/`, custom_metadata: {} });
    }
    throw new HttpError(404, [`no handler for route "${path}". route entry not found.`]);
  }

  // ---- transit --------------------------------------------------------------------------------

  private transitRoutes(ctx: Ctx, mountPath: string, mount: Mount, rest: string): Reply {
    const { method, body } = ctx;
    let m: RegExpExecArray | null;
    if ((m = /^keys\/([^/]+)$/.exec(rest)) !== null) {
      const name = m[1] as string;
      const key = mount.transit.get(name);
      if (method === 'GET') {
        this.require(ctx, 'read');
        if (key === undefined) throw new HttpError(404, []);
        return ok(transitKeyInfo(key));
      }
      if (method === 'POST' || method === 'PUT') {
        this.require(ctx, key === undefined ? 'create' : 'update');
        if (key === undefined) {
          const type = typeof body.type === 'string' ? body.type : 'aes256-gcm96';
          if (!AEAD.has(type)) throw new HttpError(400, [`unknown key type ${type} (this test server knows ${[...AEAD].join(', ')})`]);
          mount.transit.set(name, newTransitKey(name, type, body.derived === true, body.exportable === true));
        }
        return { status: 204 };
      }
      throw new HttpError(405, []);
    }
    if ((m = /^keys\/([^/]+)\/rotate$/.exec(rest)) !== null && method === 'POST') {
      this.require(ctx, 'update');
      const key = mount.transit.get(m[1] as string);
      if (key === undefined) throw new HttpError(400, ['key not found']);
      key.latest += 1;
      key.versions.set(key.latest, { key: crypto.randomBytes(keyBytes(key.type)), created: Math.floor(Date.now() / 1000) });
      return { status: 204 };
    }
    if ((m = /^(encrypt|decrypt)\/([^/]+)$/.exec(rest)) !== null && (method === 'POST' || method === 'PUT')) {
      const name = m[2] as string;
      let key = mount.transit.get(name);
      if (m[1] === 'encrypt') {
        this.require(ctx, key === undefined ? 'create' : 'update');
        if (key === undefined) {
          // Vault upserts a key on encrypt when the token may create it.
          key = newTransitKey(name, typeof body.type === 'string' ? body.type : 'aes256-gcm96', typeof body.context === 'string' && body.context !== '', false);
          mount.transit.set(name, key);
        }
        return ok(transitEncrypt(key, body));
      }
      this.require(ctx, 'update');
      if (key === undefined) throw new HttpError(400, ['encryption key not found']);
      return ok(transitDecrypt(key, body));
    }
    void mountPath;
    throw new HttpError(404, [`no handler for route "${ctx.path}"`]);
  }

  // ---- kv v2 ----------------------------------------------------------------------------------

  private kvRoutes(ctx: Ctx, mountPath: string, mount: Mount, rest: string): Reply {
    const { method, body, query } = ctx;
    if (rest === 'config') {
      if (method === 'GET') {
        this.require(ctx, 'read');
        return ok({ cas_required: mount.kvConfig.casRequired, delete_version_after: mount.kvConfig.deleteVersionAfter, max_versions: mount.kvConfig.maxVersions });
      }
      this.require(ctx, 'update');
      if (body.max_versions !== undefined) mount.kvConfig.maxVersions = Number(body.max_versions);
      if (body.cas_required !== undefined) mount.kvConfig.casRequired = body.cas_required === true;
      return { status: 204 };
    }
    const slash = rest.indexOf('/');
    const kind = slash < 0 ? rest : rest.slice(0, slash);
    const secretPath = slash < 0 ? '' : rest.slice(slash + 1);
    const secret = mount.kv.get(secretPath);
    if (kind === 'data') {
      if (secretPath === '') throw new HttpError(404, []);
      if (method === 'GET') {
        this.require(ctx, 'read');
        if (secret === undefined) throw new HttpError(404, []);
        const wanted = Number(query.get('version') ?? 0) || secret.current;
        const v = secret.versions.get(wanted);
        if (v === undefined) throw new HttpError(404, []);
        const metadata = { created_time: v.created, custom_metadata: secret.customMetadata, deletion_time: v.deletionTime, destroyed: v.destroyed, version: wanted };
        if (v.data === null) return { status: 404, body: envelope({ data: null, metadata }) };
        return ok({ data: v.data, metadata });
      }
      if (method === 'POST' || method === 'PUT') {
        this.require(ctx, secret === undefined ? 'create' : 'update');
        if (!isRecord(body.data)) throw new HttpError(400, ['no data provided']);
        const options = isRecord(body.options) ? body.options : {};
        const cas = options.cas;
        if (cas === undefined && (mount.kvConfig.casRequired || secret?.casRequired === true)) {
          throw new HttpError(400, ['check-and-set parameter required for this call']);
        }
        if (cas !== undefined) {
          const n = Number(cas);
          if (!Number.isInteger(n)) throw new HttpError(400, ['check-and-set parameter did not match the current version']);
          if ((secret?.current ?? 0) !== n) throw new HttpError(400, ['check-and-set parameter did not match the current version']);
        }
        const now = rfc3339(Date.now());
        const s = secret ?? {
          versions: new Map<number, KvVersion>(), current: 0, oldest: 0, created: now, updated: now,
          maxVersions: 0, casRequired: false, customMetadata: null,
        };
        s.current += 1;
        s.updated = now;
        s.versions.set(s.current, { data: JSON.parse(JSON.stringify(body.data)) as Record<string, unknown>, created: now, deletionTime: '', destroyed: false });
        const max = s.maxVersions || mount.kvConfig.maxVersions || 10;
        while (s.versions.size > max) {
          const oldest = Math.min(...s.versions.keys());
          s.versions.delete(oldest);
        }
        s.oldest = Math.min(...s.versions.keys());
        if (s.oldest === 1 && s.current <= max) s.oldest = 0;
        mount.kv.set(secretPath, s);
        return ok({ created_time: now, custom_metadata: s.customMetadata, deletion_time: '', destroyed: false, version: s.current });
      }
      if (method === 'DELETE') {
        this.require(ctx, 'delete');
        const v = secret?.versions.get(secret.current);
        if (v !== undefined) {
          v.data = null;
          v.deletionTime = rfc3339(Date.now());
        }
        return { status: 204 };
      }
      throw new HttpError(405, []);
    }
    if (kind === 'metadata') {
      if (method === 'LIST') {
        this.require(ctx, 'list', `${ctx.path}/`); // Vault checks LIST against the folder path
        const prefix = secretPath === '' ? '' : `${secretPath}/`;
        const names = new Set<string>();
        for (const p of mount.kv.keys()) {
          if (!p.startsWith(prefix)) continue;
          const tail = p.slice(prefix.length);
          const cut = tail.indexOf('/');
          names.add(cut < 0 ? tail : tail.slice(0, cut + 1));
        }
        if (names.size === 0) throw new HttpError(404, []);
        return ok({ keys: [...names].sort() });
      }
      if (method === 'GET') {
        this.require(ctx, 'read');
        if (secret === undefined) throw new HttpError(404, []);
        const versions: Record<string, unknown> = {};
        for (const [n, v] of [...secret.versions].sort((a, b) => a[0] - b[0])) {
          versions[String(n)] = { created_time: v.created, deletion_time: v.deletionTime, destroyed: v.destroyed };
        }
        return ok({
          cas_required: secret.casRequired,
          created_time: secret.created,
          current_version: secret.current,
          custom_metadata: secret.customMetadata,
          delete_version_after: '0s',
          max_versions: secret.maxVersions,
          oldest_version: secret.oldest,
          updated_time: secret.updated,
          versions,
        });
      }
      if (method === 'DELETE') {
        this.require(ctx, 'delete');
        mount.kv.delete(secretPath);
        return { status: 204 };
      }
      if (method === 'POST' || method === 'PUT') {
        this.require(ctx, secret === undefined ? 'create' : 'update');
        if (secret !== undefined) {
          if (body.max_versions !== undefined) secret.maxVersions = Number(body.max_versions);
          if (body.cas_required !== undefined) secret.casRequired = body.cas_required === true;
          if (isRecord(body.custom_metadata)) secret.customMetadata = stringMap(body.custom_metadata);
        }
        return { status: 204 };
      }
      throw new HttpError(405, []);
    }
    void mountPath;
    throw new HttpError(404, [`no handler for route "${ctx.path}"`]);
  }
}

// ---- transit crypto ----------------------------------------------------------------------------

function keyBytes(type: string): number {
  return type === 'aes128-gcm96' ? 16 : 32;
}

function newTransitKey(name: string, type: string, derived: boolean, exportable: boolean): TransitKey {
  if (!AEAD.has(type)) throw new HttpError(400, [`unknown key type ${type}`]);
  return {
    name, type, derived, exportable, latest: 1, minDecryptionVersion: 1, minEncryptionVersion: 0,
    versions: new Map([[1, { key: crypto.randomBytes(keyBytes(type)), created: Math.floor(Date.now() / 1000) }]]),
  };
}

function transitKeyInfo(k: TransitKey): Record<string, unknown> {
  const keys: Record<string, number> = {};
  for (const [v, e] of k.versions) keys[String(v)] = e.created;
  return {
    allow_plaintext_backup: false,
    auto_rotate_period: 0,
    deletion_allowed: false,
    derived: k.derived,
    exportable: k.exportable,
    imported_key: false,
    keys,
    latest_version: k.latest,
    min_available_version: 0,
    min_decryption_version: k.minDecryptionVersion,
    min_encryption_version: k.minEncryptionVersion,
    name: k.name,
    supports_decryption: true,
    supports_derivation: true,
    supports_encryption: true,
    supports_signing: false,
    type: k.type,
    ...(k.derived ? { kdf: 'hkdf_sha256', convergent_encryption: false } : {}),
  };
}

function decodeB64(value: unknown, what: string): Buffer {
  if (value === undefined || value === null || value === '') return Buffer.alloc(0);
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) {
    throw new HttpError(400, [`failed to base64-decode ${what}: illegal base64 data`]);
  }
  return Buffer.from(value, 'base64');
}

function versionKey(k: TransitKey, version: number, context: Buffer): Buffer {
  const entry = k.versions.get(version);
  if (entry === undefined) throw new HttpError(400, ['invalid key version']);
  if (!k.derived) return entry.key; // Transit ignores context on keys that are not derived
  if (context.length === 0) {
    throw new HttpError(400, ["missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"]);
  }
  return Buffer.from(crypto.hkdfSync('sha256', entry.key, Buffer.alloc(0), context, entry.key.length));
}

function cipherName(type: string): crypto.CipherGCMTypes | 'chacha20-poly1305' {
  return type === 'aes128-gcm96' ? 'aes-128-gcm' : type === 'chacha20-poly1305' ? 'chacha20-poly1305' : 'aes-256-gcm';
}

function transitEncrypt(k: TransitKey, body: Record<string, unknown>): Record<string, unknown> {
  if (typeof body.plaintext !== 'string') throw new HttpError(400, ['missing plaintext to encrypt']);
  const plaintext = decodeB64(body.plaintext, 'plaintext');
  const context = decodeB64(body.context, 'context');
  const ad = decodeB64(body.associated_data, 'associated data');
  const version = typeof body.key_version === 'number' && body.key_version > 0 ? body.key_version : k.latest;
  const key = versionKey(k, version, context);
  const nonce = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv(cipherName(k.type) as 'aes-256-gcm', key, nonce, { authTagLength: 16 });
  if (ad.length > 0) cipher.setAAD(ad);
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  return { ciphertext: `vault:v${version}:${Buffer.concat([nonce, ct]).toString('base64')}`, key_version: version };
}

function transitDecrypt(k: TransitKey, body: Record<string, unknown>): Record<string, unknown> {
  const text = typeof body.ciphertext === 'string' ? body.ciphertext : '';
  if (text === '') throw new HttpError(400, ['missing ciphertext to decrypt']);
  if (!text.startsWith('vault:v')) throw new HttpError(400, ['invalid ciphertext: no prefix']);
  const m = /^vault:v([0-9]+):(.*)$/.exec(text);
  if (m === null) throw new HttpError(400, ['invalid ciphertext: wrong number of fields']);
  const version = Number(m[1]);
  if (!Number.isSafeInteger(version) || version < 1) throw new HttpError(400, ['invalid ciphertext: version number could not be decoded']);
  if (version < k.minDecryptionVersion) throw new HttpError(400, ['ciphertext or signature version is disallowed by policy (too old)']);
  const raw = decodeB64(m[2], 'ciphertext');
  const context = decodeB64(body.context, 'context');
  const ad = decodeB64(body.associated_data, 'associated data');
  const key = versionKey(k, version, context);
  if (raw.length < 12 + 16) throw new HttpError(400, ['invalid ciphertext length']);
  const decipher = crypto.createDecipheriv(cipherName(k.type) as 'aes-256-gcm', key, raw.subarray(0, 12), { authTagLength: 16 });
  decipher.setAuthTag(raw.subarray(raw.length - 16));
  if (ad.length > 0) decipher.setAAD(ad);
  let plaintext: Buffer;
  try {
    plaintext = Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
  } catch {
    throw new HttpError(400, ['cipher: message authentication failed']);
  }
  const out = plaintext.toString('base64');
  plaintext.fill(0);
  return { plaintext: out };
}

// ---- kubernetes JWTs ---------------------------------------------------------------------------

function verifyJwt(jwt: string, keys: crypto.KeyObject[]): Record<string, unknown> | null {
  const parts = jwt.split('.');
  if (parts.length !== 3) return null;
  const [h, p, s] = parts as [string, string, string];
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as Record<string, unknown>;
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
  const signed = Buffer.from(`${h}.${p}`);
  const signature = Buffer.from(s, 'base64url');
  const alg = header.alg;
  const ok = keys.some((key) => {
    try {
      if (alg === 'RS256') return crypto.verify('sha256', signed, key, signature);
      if (alg === 'ES256') return crypto.verify('sha256', signed, { key, dsaEncoding: 'ieee-p1363' }, signature);
    } catch {
      return false;
    }
    return false;
  });
  if (!ok) return null;
  if (typeof claims.exp === 'number' && claims.exp * 1000 < Date.now()) return null;
  return claims;
}

// ---- policies ----------------------------------------------------------------------------------

/** The HCL subset Vault ACL policies use: path "glob" { capabilities = ["read", ...] }. */
export function parsePolicy(text: string): PolicyRule[] {
  const clean = text.replace(/#[^\n]*/g, '').replace(/\/\/[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
  const rules: PolicyRule[] = [];
  const re = /path\s+"([^"]+)"\s*\{([^}]*)\}/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  while ((m = re.exec(clean)) !== null) {
    const caps = /capabilities\s*=\s*\[([^\]]*)\]/.exec(m[2] as string);
    if (caps === null) throw new HttpError(400, [`failed to parse policy: path "${m[1] as string}" has no capabilities`]);
    const list = [...(caps[1] as string).matchAll(/"([^"]+)"/g)].map((x) => x[1] as string);
    rules.push({ pattern: globToRegExp(m[1] as string), capabilities: new Set(list) });
    consumed += m[0].length;
  }
  if (rules.length === 0 && clean.trim() !== '') throw new HttpError(400, ['failed to parse policy']);
  void consumed;
  return rules;
}

function globToRegExp(glob: string): RegExp {
  const trailing = glob.endsWith('*');
  const body = trailing ? glob.slice(0, -1) : glob;
  const escaped = body.split('+').map((part) => part.replace(/[.*?^${}()|[\]\\]/g, '\\$&')).join('[^/]+');
  return new RegExp(`^${escaped}${trailing ? '.*' : ''}$`);
}

// ---- helpers -----------------------------------------------------------------------------------

function emptyNs(): NsState {
  const auths = new Map<string, AuthMount>();
  auths.set('token', { type: 'token', approles: new Map(), k8sRoles: new Map(), k8sConfig: null });
  return { mounts: new Map(), auths, policies: new Map() };
}

function newMount(type: 'transit' | 'kv'): Mount {
  return { type, transit: new Map(), kv: new Map(), kvConfig: { maxVersions: 0, casRequired: false, deleteVersionAfter: '0s' } };
}

function longestMount(state: NsState, path: string): { path: string; mount: Mount } | null {
  let best: { path: string; mount: Mount } | null = null;
  for (const [p, mount] of state.mounts) {
    if ((path === p || path.startsWith(`${p}/`)) && (best === null || p.length > best.path.length)) best = { path: p, mount };
  }
  return best;
}

function envelope(data: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    request_id: uuid(),
    lease_id: '',
    renewable: false,
    lease_duration: 0,
    data,
    wrap_info: null,
    warnings: null,
    auth: null,
    mount_type: '',
    ...extra,
  };
}

function ok(data: unknown, extra: Record<string, unknown> = {}): Reply {
  return { status: 200, body: envelope(data, extra) };
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  if (status === 204 || body === undefined) {
    res.writeHead(status === 200 ? 204 : status, { 'Cache-Control': 'no-store' });
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.destroy();
        reject(new Error('request too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function headerValue(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

function bearer(v: string): string {
  const m = /^Bearer\s+(.+)$/i.exec(v);
  return m === null ? '' : (m[1] as string);
}

/** Vault durations: seconds as a number or numeric string, or "90s", "5m", "1h", "768h". */
export function duration(v: unknown): number {
  if (typeof v === 'number') return Math.floor(v);
  if (typeof v !== 'string' || v === '') return 0;
  if (/^[0-9]+$/.test(v)) return Number(v);
  let total = 0;
  for (const [, n, unit] of v.matchAll(/([0-9]+)(ms|s|m|h|d)/g)) {
    const x = Number(n);
    total += unit === 'ms' ? x / 1000 : unit === 's' ? x : unit === 'm' ? x * 60 : unit === 'h' ? x * 3600 : x * 86400;
  }
  return Math.floor(total);
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '000000Z');
}

function uuid(): string {
  return crypto.randomUUID();
}

function dedupe(list: string[]): string[] {
  return [...new Set(list)];
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringMap(v: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) out[k] = String(x);
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
