// One Vault client per daemon, shared by the vault-transit root and the vault-kv keystore. Built on
// node-vault (paths, headers, login commands, error bodies) over our own transport (transport.ts).
//
// What it adds on top of node-vault:
//   - auth by token, token file, AppRole (role id and secret id from files) or Kubernetes (role and
//     service-account JWT file); X-Vault-Namespace on every request;
//   - renew-self at 2/3 of the token's TTL; a new login when renewal is capped by the max TTL, when
//     the token is about to expire, or when Vault refuses it (403: log in again once, then retry);
//   - retries with exponential back-off and jitter for failures that may pass (no answer, 429, 5xx),
//     and a hard deadline on every request (config timeout_secs / RUSTFS_KMS_TIMEOUT_SECS); while Vault
//     is known to be down, calls try once and fail fast instead of stalling callers;
//   - typed errors: VaultUnavailableError (no usable answer; names the address) and VaultResponseError
//     (Vault answered 4xx, with its `errors` list).
// node-vault's environment fallbacks (VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE, VAULT_PREFIX,
// VAULT_SKIP_VERIFY) are overridden or unused, and its debug output (which would print request bodies,
// secret ids included) is silenced.
import { lstatSync, readFileSync } from 'node:fs';
import NodeVault from 'node-vault';
import { KmsError } from '../errors.js';
import { VaultTransport, VaultTransportError, type TransportTls } from './transport.js';
import type { Logger as VaultLogger } from '../logging.js';

export type VaultAuthOptions =
  | { method: 'token'; token?: string; tokenFile?: string }
  | { method: 'approle'; roleIdFile: string; secretIdFile: string; mount: string }
  | { method: 'kubernetes'; role: string; jwtFile: string; mount: string };

export type { Logger as VaultLogger } from '../logging.js';

export interface VaultClientOptions {
  address: string;
  /** "" = the root namespace (no X-Vault-Namespace header). */
  namespace: string;
  auth: VaultAuthOptions;
  tls: TransportTls;
  /** Deadline of one request. */
  timeoutMs: number;
  /** Further attempts after a failure that may pass. */
  retryAttempts: number;
  logger?: VaultLogger;
  /** Environment to check for misleading VAULT_* settings (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
}

export interface CallOptions {
  /** Deadline of this call's requests (default: the client's). */
  timeoutMs?: number;
  /** Attempts in total (default 1 + retryAttempts; 1 while Vault is known to be down). */
  attempts?: number;
}

/** A JSON object as Vault returns it; undefined for 204 No Content. */
export type VaultBody = Record<string, unknown> | undefined;

/** Vault answered with a 4xx status (or a 5xx once retries are exhausted is reported as unavailable). */
export class VaultResponseError extends Error {
  constructor(readonly address: string, readonly path: string, readonly status: number, readonly errors: string[]) {
    super(`Vault at ${address} answered ${status} for ${path}${errors.length > 0 ? `: ${errors.join('; ')}` : ''}`);
    this.name = 'VaultResponseError';
  }
}

/** Vault refused the login (bad credentials, missing role, unreadable credential file). */
export class VaultLoginError extends Error {
  constructor(readonly address: string, readonly method: string, readonly reason: string, readonly status?: number) {
    super(`Vault login (${method}) at ${address} failed: ${reason}`);
    this.name = 'VaultLoginError';
  }
}

/** No usable answer from Vault: unreachable, timed out, sealed, or failing with 5xx. */
export class VaultUnavailableError extends Error {
  constructor(readonly address: string, readonly reason: string) {
    super(`Vault at ${address} is unavailable: ${reason}`);
    this.name = 'VaultUnavailableError';
  }
}

export interface VaultState {
  /** The last request got an answer (any status but 5xx). */
  reachable: boolean;
  /** A token is held and was accepted by the last request that used it. */
  authenticated: boolean;
  detail?: string;
}

const RETRYABLE_STATUS = new Set([412, 429, 500, 502, 503, 504]);
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2000;
const RENEW_FRACTION = 2 / 3;

interface TokenInfo {
  ttlS: number;
  renewable: boolean;
}

export class VaultClient {
  readonly address: string;
  readonly namespace: string;
  private readonly nv: NodeVault.client;
  private readonly transport: VaultTransport;
  private token = '';
  private tokenExpiresAt: number | null = null;
  /** TTL granted by the last login (to tell a renewal capped by max_ttl). */
  private grantedTtlS = 0;
  private loginInFlight: Promise<void> | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  private downSince: number | null = null;
  private downReason = '';
  private authError: string | null = null;
  private closed = false;
  private readonly log: VaultLogger | undefined;

  constructor(private readonly options: VaultClientOptions) {
    this.address = options.address;
    this.namespace = options.namespace;
    this.log = options.logger;
    this.transport = new VaultTransport({ address: options.address, tls: options.tls, timeoutMs: options.timeoutMs });
    this.nv = NodeVault({
      endpoint: options.address,
      apiVersion: 'v1',
      namespace: options.namespace,
      noCustomHTTPVerbs: true, // LIST as GET ?list=1: works through proxies and plain HTTP stacks
      'request-promise': this.transport.asRequestPromise(),
      debug: () => undefined,
      requestOptions: {},
    });
    // node-vault falls back to VAULT_TOKEN / VAULT_NAMESPACE / VAULT_PREFIX when ours are empty.
    this.nv.token = '';
    (this.nv as unknown as { namespace: string }).namespace = options.namespace;
    (this.nv as unknown as { pathPrefix: string }).pathPrefix = '';
    const env = options.env ?? process.env;
    const skip = env.VAULT_SKIP_VERIFY;
    if (skip !== undefined && skip !== '' && skip !== '0' && skip.toLowerCase() !== 'false') {
      this.log?.warn({ vault: this.address }, 'VAULT_SKIP_VERIFY is set; rustfs-kmsd ignores it and always verifies Vault\'s certificate (set root.vault.tls.ca_file for a private CA)');
    }
    if (this.transport.tlsIgnored) {
      this.log?.warn({ vault: this.address }, 'root.vault.tls is set but the Vault address is http://; the TLS settings are not used');
    }
  }

  // ---- requests -------------------------------------------------------------------------------

  read(path: string, options: CallOptions = {}): Promise<VaultBody> {
    return this.call(path, (timeout) => this.nv.read(path, { timeout }), options);
  }

  write(path: string, data: Record<string, unknown>, options: CallOptions = {}): Promise<VaultBody> {
    return this.call(path, (timeout) => this.nv.write(path, data, { timeout }), options);
  }

  delete(path: string, options: CallOptions = {}): Promise<VaultBody> {
    return this.call(path, (timeout) => this.nv.delete(path, { timeout }), options);
  }

  /** LIST; an empty folder (404) is an empty list. Names ending in "/" are folders. */
  async list(path: string, options: CallOptions = {}): Promise<string[]> {
    try {
      const body = await this.call(path, (timeout) => this.nv.list(path, { timeout }), options);
      const keys = objectAt(body, 'data')?.keys;
      return Array.isArray(keys) ? keys.filter((k): k is string => typeof k === 'string') : [];
    } catch (err) {
      if (err instanceof VaultResponseError && err.status === 404) return [];
      throw err;
    }
  }

  state(): VaultState {
    if (this.downSince !== null) return { reachable: false, authenticated: this.authError === null && this.token !== '', detail: this.unavailableText() };
    if (this.authError !== null) return { reachable: true, authenticated: false, detail: this.authError };
    return { reachable: true, authenticated: this.token !== '' };
  }

  /** "Vault at ADDR is unavailable since TIME: reason". */
  unavailableText(): string {
    const since = this.downSince === null ? '' : ` since ${new Date(this.downSince).toISOString()}`;
    return `Vault at ${this.address} is unavailable${since}: ${this.downReason}`;
  }

  close(): void {
    this.closed = true;
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    this.renewTimer = null;
    this.token = '';
    this.nv.token = '';
    this.transport.close();
  }

  // ---- the retry loop -------------------------------------------------------------------------

  private async call(
    path: string, send: (timeoutMs: number) => Promise<unknown>, options: CallOptions, authenticated = true,
  ): Promise<VaultBody> {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs;
    const attempts = options.attempts ?? (this.downSince !== null ? 1 : 1 + this.options.retryAttempts);
    let reloggedIn = false;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw new VaultUnavailableError(this.address, 'the client is closed');
      const tokenUsed = authenticated ? await this.ensureToken(timeoutMs) : '';
      let failure: VaultResponseError | VaultUnavailableError;
      try {
        const body = await send(timeoutMs);
        this.markUp();
        if (authenticated) this.authError = null;
        return isObject(body) ? body : undefined;
      } catch (raw) {
        failure = this.classify(path, raw);
      }
      if (failure instanceof VaultResponseError) {
        if (!RETRYABLE_STATUS.has(failure.status)) this.markUp();
        if (failure.status === 403 && authenticated && !reloggedIn && this.canGetNewToken()) {
          // The token may have expired or been revoked: one fresh login, then the same request again.
          reloggedIn = true;
          if (this.token === tokenUsed) await this.relogin('Vault refused the token (403)', timeoutMs);
          attempt -= 1;
          continue;
        }
        if (failure.status === 403 && authenticated) this.authError = `${failure.message} (check the token's policy)`;
        if (!RETRYABLE_STATUS.has(failure.status)) throw failure;
      }
      if (attempt >= attempts) {
        const reason = failure instanceof VaultResponseError
          ? `answered ${failure.status}${failure.errors.length > 0 ? ` (${failure.errors.join('; ')})` : ''}`
          : failure.reason;
        this.markDown(reason);
        throw new VaultUnavailableError(this.address, reason);
      }
      await sleep(backoff(attempt));
    }
  }

  private classify(path: string, raw: unknown): VaultResponseError | VaultUnavailableError {
    if (raw instanceof VaultTransportError) return new VaultUnavailableError(this.address, raw.message);
    const response = isObject(raw) ? objectAt(raw, 'response') : undefined;
    if (response !== undefined && typeof response.statusCode === 'number') {
      const body = objectAt(response, 'body');
      const errors = Array.isArray(body?.errors) ? body.errors.filter((e): e is string => typeof e === 'string') : [];
      return new VaultResponseError(this.address, path, response.statusCode, errors);
    }
    const message = raw instanceof Error ? raw.message : isObject(raw) && typeof raw.message === 'string' ? raw.message : String(raw);
    return new VaultUnavailableError(this.address, `request failed: ${message}`);
  }

  private markUp(): void {
    if (this.downSince !== null) {
      this.log?.info({ vault: this.address, down_for_ms: Date.now() - this.downSince }, 'Vault is reachable again');
    }
    this.downSince = null;
    this.downReason = '';
  }

  private markDown(reason: string): void {
    if (this.downSince === null) {
      this.downSince = Date.now();
      this.log?.warn({ vault: this.address, reason }, 'Vault is unavailable; cached keys keep serving, operations that need Vault fail');
    }
    this.downReason = reason;
  }

  // ---- tokens ---------------------------------------------------------------------------------

  /** Returns the token to use, logging in first when there is none or it has run out. */
  private async ensureToken(timeoutMs: number): Promise<string> {
    if (this.token !== '' && (this.tokenExpiresAt === null || Date.now() < this.tokenExpiresAt - 1000)) return this.token;
    if (this.token !== '' && !this.canGetNewToken()) return this.token; // nothing better to offer
    await this.relogin(this.token === '' ? 'first request' : 'token expired', timeoutMs);
    return this.token;
  }

  private canGetNewToken(): boolean {
    const auth = this.options.auth;
    return auth.method !== 'token' || auth.tokenFile !== undefined;
  }

  /** One login at a time; callers that arrive meanwhile share it. */
  private relogin(why: string, timeoutMs: number): Promise<void> {
    if (this.loginInFlight === null) {
      this.loginInFlight = this.login(why, timeoutMs).finally(() => {
        this.loginInFlight = null;
      });
    }
    return this.loginInFlight;
  }

  private async login(why: string, timeoutMs: number): Promise<void> {
    const auth = this.options.auth;
    let info: TokenInfo;
    try {
      switch (auth.method) {
        case 'token': {
          const token = auth.tokenFile !== undefined ? readSecretFile(auth.tokenFile, 'Vault token file') : (auth.token ?? '');
          if (token === '') throw new Error('no Vault token configured');
          this.setToken(token);
          info = await this.lookupSelf(timeoutMs);
          break;
        }
        case 'approle': {
          const roleId = readTextFile(auth.roleIdFile, 'AppRole role id file');
          const secretId = readSecretFile(auth.secretIdFile, 'AppRole secret id file');
          const body = await this.call(`auth/${auth.mount}/login`, (timeout) =>
            this.nv.approleLogin({ mount_point: auth.mount, role_id: roleId, secret_id: secretId, requestOptions: { timeout } }),
          { timeoutMs }, false);
          info = this.adoptLogin(body);
          break;
        }
        case 'kubernetes': {
          const jwt = readTextFile(auth.jwtFile, 'Kubernetes service-account token file');
          const body = await this.call(`auth/${auth.mount}/login`, (timeout) =>
            this.nv.kubernetesLogin({ mount_point: auth.mount, role: auth.role, jwt, requestOptions: { timeout } }),
          { timeoutMs }, false);
          info = this.adoptLogin(body);
          break;
        }
      }
    } catch (err) {
      if (err instanceof VaultUnavailableError) throw err;
      const reason = err instanceof VaultResponseError
        ? `answered ${err.status} for ${err.path}${err.errors.length > 0 ? `: ${err.errors.join('; ')}` : ''}`
        : err instanceof Error ? err.message : String(err);
      const failure = new VaultLoginError(this.address, auth.method, reason, err instanceof VaultResponseError ? err.status : undefined);
      this.authError = failure.message;
      this.log?.error({ vault: this.address, method: auth.method }, failure.message);
      throw failure;
    }
    this.authError = null;
    this.grantedTtlS = info.ttlS;
    this.log?.info({ vault: this.address, method: auth.method, ttl_s: info.ttlS, renewable: info.renewable, why }, 'Vault token acquired');
    this.scheduleRenewal(info);
  }

  private async lookupSelf(timeoutMs: number): Promise<TokenInfo> {
    const body = await this.call('auth/token/lookup-self', (timeout) =>
      this.nv.tokenLookupSelf({ requestOptions: { timeout } }), { timeoutMs }, false);
    const data = objectAt(body, 'data');
    const ttl = typeof data?.ttl === 'number' ? data.ttl : 0;
    const info = { ttlS: ttl, renewable: data?.renewable === true };
    this.tokenExpiresAt = ttl > 0 ? Date.now() + ttl * 1000 : null;
    return info;
  }

  private adoptLogin(body: VaultBody): TokenInfo {
    const auth = objectAt(body, 'auth');
    const token = auth?.client_token;
    if (typeof token !== 'string' || token === '') throw new Error('the login answer holds no auth.client_token');
    this.setToken(token);
    const ttl = typeof auth?.lease_duration === 'number' ? auth.lease_duration : 0;
    this.tokenExpiresAt = ttl > 0 ? Date.now() + ttl * 1000 : null;
    return { ttlS: ttl, renewable: auth?.renewable === true };
  }

  private setToken(token: string): void {
    this.token = token;
    this.nv.token = token;
  }

  private scheduleRenewal(info: TokenInfo): void {
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    this.renewTimer = null;
    if (this.closed || info.ttlS <= 0) return; // a token without TTL (root, periodic 0) never expires
    const delayMs = Math.max(500, Math.floor(info.ttlS * RENEW_FRACTION * 1000));
    this.renewTimer = setTimeout(() => {
      this.renewTimer = null;
      void this.renewOrRelogin(info);
    }, delayMs);
    this.renewTimer.unref();
  }

  /** At 2/3 of the TTL: renew-self; log in afresh when renewal is refused or capped by max_ttl. */
  private async renewOrRelogin(previous: TokenInfo): Promise<void> {
    if (this.closed) return;
    const timeoutMs = this.options.timeoutMs;
    if (previous.renewable) {
      try {
        const body = await this.call('auth/token/renew-self', (timeout) =>
          this.nv.tokenRenewSelf({ requestOptions: { timeout } }), { timeoutMs }, false);
        const auth = objectAt(body, 'auth');
        const ttl = typeof auth?.lease_duration === 'number' ? auth.lease_duration : 0;
        const info = { ttlS: ttl, renewable: auth?.renewable === true };
        this.tokenExpiresAt = ttl > 0 ? Date.now() + ttl * 1000 : null;
        this.log?.debug?.({ vault: this.address, ttl_s: ttl }, 'Vault token renewed');
        const capped = ttl < this.grantedTtlS / 2;
        if (capped && this.canGetNewToken() && this.options.auth.method !== 'token') {
          // max_ttl is near: use what is left, and log in again before it runs out.
          this.scheduleRelogin(ttl);
        } else {
          this.scheduleRenewal(info);
        }
        return;
      } catch (err) {
        if (err instanceof VaultUnavailableError) {
          this.retryRenewalSoon(previous);
          return;
        }
        this.log?.warn({ vault: this.address, err: (err as Error).message }, 'Vault token renewal refused');
      }
    }
    if (this.canGetNewToken()) {
      try {
        await this.relogin('token renewal not possible', timeoutMs);
      } catch (err) {
        this.log?.warn({ vault: this.address, err: (err as Error).message }, 'Vault login before token expiry failed; retrying');
        this.retryRenewalSoon(previous);
      }
    } else if (previous.renewable) {
      this.retryRenewalSoon(previous);
    } else {
      this.log?.warn({ vault: this.address, expires_at: this.tokenExpiresAt }, 'the Vault token is not renewable and no new one can be had; it will expire');
    }
  }

  private scheduleRelogin(remainingTtlS: number): void {
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    const delayMs = Math.max(500, Math.floor(remainingTtlS * RENEW_FRACTION * 1000));
    this.renewTimer = setTimeout(() => {
      this.renewTimer = null;
      this.relogin('token near its max TTL', this.options.timeoutMs).catch((err: unknown) => {
        this.log?.warn({ vault: this.address, err: (err as Error).message }, 'Vault login before max TTL failed');
      });
    }, delayMs);
    this.renewTimer.unref();
  }

  /** Renewal could not reach Vault: try again in a few seconds while the token lasts. */
  private retryRenewalSoon(previous: TokenInfo): void {
    if (this.closed) return;
    if (this.renewTimer !== null) clearTimeout(this.renewTimer);
    const left = this.tokenExpiresAt === null ? 5000 : this.tokenExpiresAt - Date.now();
    const delayMs = Math.max(500, Math.min(5000, Math.floor(left / 3)));
    this.renewTimer = setTimeout(() => {
      this.renewTimer = null;
      void this.renewOrRelogin(previous);
    }, delayMs);
    this.renewTimer.unref();
  }
}

// ---- shared clients --------------------------------------------------------------------------

interface SharedEntry {
  client: VaultClient;
  users: number;
}
const shared = new Map<string, SharedEntry>();

/** A handle on the one client for these options; the client closes when its last handle is released. */
export interface VaultClientHandle {
  readonly client: VaultClient;
  release(): void;
}

/** The root and the keystore of one daemon share a client (one login, one token, one connection pool). */
export function acquireVaultClient(options: VaultClientOptions): VaultClientHandle {
  const key = JSON.stringify({
    a: options.address, n: options.namespace, auth: options.auth, tls: options.tls,
    t: options.timeoutMs, r: options.retryAttempts,
  });
  let entry = shared.get(key);
  if (entry === undefined) {
    entry = { client: new VaultClient(options), users: 0 };
    shared.set(key, entry);
  }
  entry.users += 1;
  const e = entry;
  let released = false;
  return {
    client: e.client,
    release() {
      if (released) return;
      released = true;
      e.users -= 1;
      if (e.users === 0) {
        e.client.close();
        if (shared.get(key) === e) shared.delete(key);
      }
    },
  };
}

// ---- errors as the key service wants them ----------------------------------------------------

/** BackendUnavailable for anything Vault-side; `what` says what was being done. */
export function vaultKmsError(err: unknown, what: string): KmsError {
  if (err instanceof KmsError) return err;
  if (err instanceof VaultUnavailableError) return new KmsError('BackendUnavailable', `${what}: ${err.message}`);
  if (err instanceof VaultResponseError) return new KmsError('BackendUnavailable', `${what}: ${err.message}`);
  return new KmsError('BackendUnavailable', `${what}: ${err instanceof Error ? err.message : String(err)}`);
}

// ---- helpers ---------------------------------------------------------------------------------

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function objectAt(v: unknown, key: string): Record<string, unknown> | undefined {
  if (!isObject(v)) return undefined;
  const inner = v[key];
  return isObject(inner) ? inner : undefined;
}

function backoff(attempt: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
  return Math.floor(ceiling / 2 + Math.random() * (ceiling / 2));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function readTextFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new Error(`${what} ${path} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (text === '') throw new Error(`${what} ${path} is empty`);
  return text;
}

/** A secret file must not be readable or writable by others (group access is left to the operator). */
function readSecretFile(path: string, what: string): string {
  try {
    const st = lstatSync(path);
    if ((st.mode & 0o007) !== 0) {
      throw new Error(`${what} ${path} has mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}: others can access it (expected 0600 or 0640)`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === undefined) throw err;
  }
  return readTextFile(path, what);
}
