// One PKCS#11 token, reached through pkcs11js: the module is loaded once, C_Initialize runs with OS
// locking (CKF_OS_LOCKING_OK), the token is found by its label (or serial) — never by slot index,
// which changes between boots and re-initialisations — and the user logs in once. Crypto runs on a
// pool of sessions, one operation per session at a time, through pkcs11js's asynchronous calls
// (libuv thread pool) so the event loop never waits for the token; short management calls (find,
// attributes, destroy, the health probe) run synchronously on a separate control session.
//
// When the token or a session goes away, the token is marked down (every call fails fast with
// BackendUnavailable), and a reconnect loop with exponential back-off finalizes the library and
// starts again from C_Initialize: a software token (SoftHSM) only rescans its token directory
// there, and a hardware module recovers its state the same way. A rejected PIN is never retried
// (it would count towards locking the token).
//
// pkcs11js sharp edges handled here: token labels are 32 bytes padded with spaces; GCM parameters
// are CK_GCM_PARAMS (type CK_PARAMS_GCM) and need ivBits and tagBits spelled out (pkcs11js leaves
// tagBits 0 when it is absent); the asynchronous calls keep raw pointers to the caller's buffers
// without holding references, so every buffer is pinned until its call settles; a zero-length
// Buffer has a NULL data pointer, which modules reject, so empty inputs are zero-length views of
// a non-empty allocation.
import { closeSync, constants as fsc, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import pkcs11js from 'pkcs11js';
import type { AttributeResult, GcmParams, Mechanism, PKCS11, Template } from 'pkcs11js';
import { KmsError } from '../errors.js';
import { native } from '../native/index.js';
import { assertPrivatePath } from '../permissions.js';
import type { Logger as RootLogger } from '../logging.js';

/** A PKCS#11 object, slot or session handle as pkcs11js represents it. */
export type Handle = Buffer;

export type { Logger as RootLogger } from '../logging.js';

export type TokenState = 'connecting' | 'up' | 'down' | 'failed' | 'closed';

export const GCM_IV_BYTES = 12;
export const GCM_TAG_BYTES = 16;
const MAX_PIN_BYTES = 256;
/** Session states of a logged-in user (PKCS#11 2.40 §5.7; pkcs11js does not export them). */
const CKS_RO_USER_FUNCTIONS = 1;
const CKS_RW_USER_FUNCTIONS = 3;
const LABEL_BYTES = 32;
const SERIAL_BYTES = 16;

/** Result codes after which the token (not the request) is at fault: reconnect. */
const DEVICE_CODES: ReadonlySet<string> = new Set([
  'CKR_DEVICE_ERROR', 'CKR_DEVICE_MEMORY', 'CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT',
  'CKR_TOKEN_NOT_RECOGNIZED', 'CKR_SESSION_CLOSED', 'CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_COUNT',
  'CKR_CRYPTOKI_NOT_INITIALIZED', 'CKR_USER_NOT_LOGGED_IN', 'CKR_SLOT_ID_INVALID', 'CKR_FUNCTION_FAILED',
]);
/**
 * What C_Decrypt answers for an AES-GCM tag that does not verify: the standard says
 * CKR_ENCRYPTED_DATA_INVALID; SoftHSM 2.6 answers CKR_GENERAL_ERROR. Only consulted for the data
 * phase of a decryption whose C_DecryptInit succeeded, where a device fault would have shown.
 */
const TAG_FAILURE_CODES: ReadonlySet<string> = new Set([
  'CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE', 'CKR_GENERAL_ERROR', 'CKR_DATA_INVALID',
]);
/** Login answers that must not be tried again by a reconnect loop. */
const PIN_CODES: ReadonlySet<string> = new Set([
  'CKR_PIN_INCORRECT', 'CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE',
  'CKR_USER_PIN_NOT_INITIALIZED',
]);

/** Zero-length input with a non-NULL data pointer (see the header). */
const EMPTY = Buffer.alloc(16).subarray(0, 0);

/** The CKR_* name of a pkcs11js error, if it is one. */
export function ckr(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const m = /^(CKR_[A-Z0-9_]+)/.exec(err.message);
  return m === null ? undefined : m[1];
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A failure that a reconnect must not retry: the PIN was rejected. */
export class PinRejected extends Error {}

/** Labels are fixed 32-byte fields padded with spaces; compare padded values, never raw ones. */
export function padField(value: string, bytes: number): string {
  return value.length >= bytes ? value : value + ' '.repeat(bytes - value.length);
}

function trimField(value: string): string {
  return value.replace(/[ \0]+$/, '');
}

// ---- the PIN ------------------------------------------------------------------------------------

/**
 * The user PIN, held in a locked secure buffer for reconnects. pkcs11js's C_Login takes a string,
 * so a transient JavaScript string is made for each login; it is never logged.
 */
export class Pin {
  private constructor(private buffer: Uint8Array | null, private readonly length: number, readonly source: string) {}

  static fromFile(path: string): Pin {
    if (!existsSync(path)) throw new Error(`PIN file ${path} does not exist (root.pkcs11.pin_file)`);
    assertPrivatePath(path, 'PIN file');
    const fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    try {
      const size = fstatSync(fd).size;
      if (size < 1 || size > MAX_PIN_BYTES + 2) throw new Error(`PIN file ${path} is ${size} bytes; expected 1 to ${MAX_PIN_BYTES}`);
      const buffer = native.secureBuffer(size);
      try {
        const read = readSync(fd, buffer, 0, size, 0);
        let length = read;
        while (length > 0 && (buffer[length - 1] === 0x0a || buffer[length - 1] === 0x0d)) length--;
        if (length === 0) throw new Error(`PIN file ${path} is empty`);
        return new Pin(buffer, length, `file ${path}`);
      } catch (err) {
        native.secureRelease(buffer);
        throw err;
      }
    } finally {
      closeSync(fd);
    }
  }

  static fromEnv(name: string, env: Record<string, string | undefined>): Pin {
    const value = env[name];
    if (value === undefined || value === '') throw new Error(`PIN variable ${name} is not set or empty (root.pkcs11.pin_env)`);
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > MAX_PIN_BYTES) throw new Error(`PIN variable ${name} holds ${bytes} bytes; expected at most ${MAX_PIN_BYTES}`);
    const buffer = native.secureBuffer(bytes);
    Buffer.from(buffer.buffer, buffer.byteOffset, bytes).write(value, 'utf8');
    return new Pin(buffer, bytes, `variable ${name}`);
  }

  reveal(): string {
    if (this.buffer === null) throw new Error('PIN released');
    return Buffer.from(this.buffer.buffer, this.buffer.byteOffset, this.length).toString('utf8');
  }

  release(): void {
    if (this.buffer !== null) native.secureRelease(this.buffer);
    this.buffer = null;
  }
}

// ---- the token ----------------------------------------------------------------------------------

export interface Pkcs11TokenOptions {
  module: string;
  tokenLabel?: string;
  tokenSerial?: string;
  pin: Pin;
  /** Sessions in the crypto pool. */
  sessions: number;
  logger?: RootLogger;
  /** Runs on every (re)connection before the token counts as up; throwing keeps it down. */
  onConnect?: (token: Pkcs11Token) => void;
  /** Extra health check on the control session (e.g. the root key still exists). */
  onProbe?: (token: Pkcs11Token) => void;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Background health probe while up; 0 = none. */
  monitorIntervalMs?: number;
}

interface Waiter {
  resolve: (session: Handle) => void;
  reject: (err: Error) => void;
}

export class Pkcs11Token {
  readonly module: string;
  /** The token's label and serial as the token reports them (trailing padding removed). */
  label: string;
  serial = '';
  state: TokenState = 'connecting';
  /** Why the token is not up; never secret. */
  detail: string | undefined;
  /** Bumped on every successful (re)connection: object handles from an older one are stale. */
  generation = 0;

  private readonly p: PKCS11;
  private slot: Handle | null = null;
  private control: Handle | null = null;
  /** Pool sessions of the current connection. */
  private current = new Set<Handle>();
  private idle: Handle[] = [];
  private waiters: Waiter[] = [];
  private inflight = 0;
  private drainWaiters: (() => void)[] = [];
  /** Buffers that pkcs11js's worker threads point into; held until their call settles. */
  private readonly pinned = new Set<unknown[]>();
  private initialized = false;
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | undefined;
  private monitorTimer: NodeJS.Timeout | undefined;
  private reconnecting = false;
  /** Inside probe(): control-call failures are the probe's to judge, not failure()'s. */
  private probing = false;

  private constructor(private readonly options: Pkcs11TokenOptions, p: PKCS11) {
    this.module = options.module;
    this.p = p;
    this.label = options.tokenLabel ?? '';
    this.backoffMs = options.backoffInitialMs ?? 250;
  }

  /** Loads the module, finds the token, logs in and opens the pool; a clear Error when any step fails. */
  static open(options: Pkcs11TokenOptions): Pkcs11Token {
    if (!existsSync(options.module)) {
      throw new Error(`PKCS#11 module ${options.module} does not exist (root.pkcs11.module)`);
    }
    const p = new pkcs11js.PKCS11();
    try {
      p.load(options.module);
    } catch (err) {
      throw new Error(`PKCS#11 module ${options.module} cannot be loaded: ${errorText(err)}`);
    }
    const token = new Pkcs11Token(options, p);
    try {
      token.connect();
    } catch (err) {
      token.teardown();
      options.pin.release();
      throw err;
    }
    const every = options.monitorIntervalMs ?? 0;
    if (every > 0) {
      token.monitorTimer = setInterval(() => {
        if (token.state === 'up') token.probe();
      }, every);
      token.monitorTimer.unref();
    }
    return token;
  }

  /** How the token is selected, for messages. */
  get selector(): string {
    const { tokenLabel, tokenSerial } = this.options;
    if (tokenLabel !== undefined && tokenSerial !== undefined) return `token "${tokenLabel}" (serial ${tokenSerial})`;
    if (tokenLabel !== undefined) return `token "${tokenLabel}"`;
    return `token with serial ${tokenSerial ?? '?'}`;
  }

  get sessionCount(): number {
    return this.options.sessions;
  }

  // ---- connection ---------------------------------------------------------------------------

  private connect(): void {
    this.state = 'connecting';
    const p = this.p;
    try {
      p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (err) {
      if (ckr(err) !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') {
        throw new Error(`PKCS#11 module ${this.module}: C_Initialize failed: ${errorText(err)}`);
      }
    }
    this.initialized = true;
    const slot = this.findSlot();
    const info = p.C_GetTokenInfo(slot);
    this.label = trimField(info.label);
    this.serial = trimField(info.serialNumber);
    if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) throw new Error(`${this.selector} is not initialized`);
    if ((info.flags & pkcs11js.CKF_USER_PIN_LOCKED) !== 0) {
      throw new PinRejected(`the user PIN of ${this.selector} is locked (CKF_USER_PIN_LOCKED); the security officer must unlock it`);
    }
    if ((info.flags & pkcs11js.CKF_USER_PIN_INITIALIZED) === 0) {
      throw new PinRejected(`${this.selector} has no user PIN set (CKF_USER_PIN_INITIALIZED is clear)`);
    }
    this.slot = slot;
    const flags = pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION;
    const openSession = (): Handle => {
      try {
        return p.C_OpenSession(slot, flags);
      } catch (err) {
        throw new Error(`${this.selector}: C_OpenSession failed: ${errorText(err)}`);
      }
    };
    this.control = openSession();
    this.login(this.control);
    const sessions: Handle[] = [];
    for (let i = 0; i < this.options.sessions; i++) sessions.push(openSession());
    this.current = new Set(sessions);
    this.idle = sessions.slice();
    this.generation++;
    this.options.onConnect?.(this);
    this.state = 'up';
    this.detail = undefined;
  }

  private findSlot(): Handle {
    const { tokenLabel, tokenSerial } = this.options;
    let slots: Handle[];
    try {
      slots = this.p.C_GetSlotList(true);
    } catch (err) {
      throw new Error(`PKCS#11 module ${this.module}: C_GetSlotList failed: ${errorText(err)}`);
    }
    const seen: string[] = [];
    const matches: Handle[] = [];
    for (const slot of slots) {
      let info;
      try {
        info = this.p.C_GetTokenInfo(slot);
      } catch {
        continue; // a slot whose token went away between the two calls
      }
      if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) seen.push('an uninitialized token');
      else seen.push(`"${trimField(info.label)}" (serial ${trimField(info.serialNumber)})`);
      const labelOk = tokenLabel === undefined || info.label === padField(tokenLabel, LABEL_BYTES);
      const serialOk = tokenSerial === undefined || info.serialNumber === padField(tokenSerial, SERIAL_BYTES);
      if (labelOk && serialOk) matches.push(slot);
    }
    if (matches.length === 0) {
      const present = seen.length === 0 ? 'no token is present' : `tokens present: ${seen.join(', ')}`;
      throw new Error(`${this.selector} not found in PKCS#11 module ${this.module} (${present})`);
    }
    if (matches.length > 1) {
      throw new Error(`${matches.length} tokens match ${this.selector} in ${this.module}; select one with root.pkcs11.token_serial`);
    }
    return matches[0] as Handle;
  }

  private login(session: Handle): void {
    try {
      this.p.C_Login(session, pkcs11js.CKU_USER, this.options.pin.reveal());
    } catch (err) {
      const code = ckr(err);
      if (code === 'CKR_USER_ALREADY_LOGGED_IN') return;
      if (code === 'CKR_PIN_INCORRECT') {
        throw new PinRejected(`the PIN from ${this.options.pin.source} was rejected by ${this.selector} (CKR_PIN_INCORRECT); repeated attempts lock the token`);
      }
      if (code !== undefined && PIN_CODES.has(code)) {
        throw new PinRejected(`login to ${this.selector} with the PIN from ${this.options.pin.source} failed: ${code}`);
      }
      throw new Error(`login to ${this.selector} failed: ${errorText(err)}`);
    }
  }

  /** Closes every session and finalizes the library; errors are expected when the token is gone. */
  private teardown(): void {
    const all = [...this.current];
    if (this.control !== null) all.push(this.control);
    for (const session of all) {
      try {
        this.p.C_CloseSession(session);
      } catch {
        // gone already
      }
    }
    this.current = new Set();
    this.idle = [];
    this.control = null;
    this.slot = null;
    if (this.initialized) {
      try {
        this.p.C_Finalize();
      } catch {
        // not initialized any more
      }
      this.initialized = false;
    }
  }

  /** Token lost: fail fast from now on and reconnect in the background. */
  markDown(detail: string): void {
    if (this.state !== 'up') return;
    this.state = 'down';
    this.detail = detail;
    this.options.logger?.warn({ token_label: this.label, detail }, 'PKCS#11 token unavailable; reconnecting with back-off');
    const error = this.unavailable();
    for (const w of this.waiters.splice(0)) w.reject(error);
    this.scheduleReconnect(this.options.backoffInitialMs ?? 250);
  }

  private scheduleReconnect(delayMs: number): void {
    if (this.retryTimer !== undefined || this.state === 'closed' || this.state === 'failed') return;
    this.backoffMs = delayMs;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.reconnect();
    }, delayMs);
    this.retryTimer.unref();
  }

  private async reconnect(): Promise<void> {
    if (this.reconnecting || this.state === 'closed' || this.state === 'failed') return;
    this.reconnecting = true;
    try {
      await this.drained();
      if ((this.state as TokenState) === 'closed') return;
      this.teardown();
      try {
        this.connect();
        this.backoffMs = this.options.backoffInitialMs ?? 250;
        this.options.logger?.info({ token_label: this.label, token_serial: this.serial }, 'PKCS#11 token reconnected');
      } catch (err) {
        this.teardown();
        const message = errorText(err);
        if (err instanceof PinRejected) {
          this.state = 'failed';
          this.detail = `${message}; not retrying (each wrong PIN counts towards locking the token): fix the PIN and restart the daemon`;
          this.options.logger?.error({ token_label: this.label, detail: this.detail }, 'PKCS#11 reconnect stopped');
          return;
        }
        this.state = 'down';
        this.detail = `reconnecting: ${message}`;
        const next = Math.min(this.backoffMs * 2, this.options.backoffMaxMs ?? 10_000);
        this.options.logger?.warn({ token_label: this.label, detail: message, retry_ms: next }, 'PKCS#11 reconnect failed');
        this.scheduleReconnect(next);
      }
    } finally {
      this.reconnecting = false;
    }
  }

  /** Resolves once no pool session is in use. */
  private drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  unavailable(): KmsError {
    const why = this.state === 'closed' ? 'the root is closed' : (this.detail ?? this.state);
    return new KmsError('BackendUnavailable', `PKCS#11 token "${this.label}" is unavailable: ${why}`);
  }

  /**
   * Cheap liveness check on the control session: the token is still there, it is the same token,
   * the session is still logged in (plus the owner's check). Marks the token down when not.
   */
  probe(): boolean {
    if (this.state !== 'up') return false;
    if (this.probing) return true;
    this.probing = true;
    try {
      const info = this.p.C_GetTokenInfo(this.slot as Handle);
      if (trimField(info.serialNumber) !== this.serial) {
        throw new Error(`the token in the slot changed (serial ${trimField(info.serialNumber)}, expected ${this.serial})`);
      }
      const session = this.p.C_GetSessionInfo(this.control as Handle);
      if (session.state !== CKS_RO_USER_FUNCTIONS && session.state !== CKS_RW_USER_FUNCTIONS) {
        throw new Error('the session is no longer logged in');
      }
      this.options.onProbe?.(this);
      return true;
    } catch (err) {
      this.markDown(`token check failed: ${errorText(err)}`);
      return false;
    } finally {
      this.probing = false;
    }
  }

  // ---- the session pool ---------------------------------------------------------------------

  private acquire(): Handle | Promise<Handle> {
    if (this.state !== 'up') throw this.unavailable();
    const session = this.idle.pop();
    if (session !== undefined) {
      this.inflight++;
      return session;
    }
    return new Promise<Handle>((resolve, reject) => {
      this.waiters.push({
        resolve: (s) => {
          this.inflight++;
          resolve(s);
        },
        reject,
      });
    });
  }

  private release(session: Handle, broken: boolean): void {
    this.inflight--;
    if (this.current.has(session)) {
      let next: Handle | null = session;
      if (broken) next = this.replace(session);
      if (next !== null) {
        const waiter = this.waiters.shift();
        if (waiter !== undefined) waiter.resolve(next);
        else this.idle.push(next);
      }
    }
    if (this.inflight === 0 && this.drainWaiters.length > 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  /** A session whose state is unknown after an error is closed and replaced (the login is shared). */
  private replace(session: Handle): Handle | null {
    this.current.delete(session);
    try {
      this.p.C_CloseSession(session);
    } catch {
      // already gone
    }
    if (this.state !== 'up') return null;
    try {
      const fresh = this.p.C_OpenSession(this.slot as Handle, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
      this.current.add(fresh);
      return fresh;
    } catch (err) {
      this.markDown(`cannot open a session: ${errorText(err)}`);
      return null;
    }
  }

  /** Turns a pkcs11js error into a KmsError, marking the token down when it is the token's fault. */
  private failure(err: unknown, call: string): KmsError {
    if (err instanceof KmsError) return err;
    const code = ckr(err);
    if (code !== undefined && DEVICE_CODES.has(code)) {
      this.markDown(`${call} failed: ${code}`);
      return this.unavailable();
    }
    if (this.state !== 'up' || !this.probe()) return this.unavailable();
    return new KmsError('Internal', `PKCS#11 ${call} failed: ${code ?? errorText(err)}`);
  }

  // ---- crypto on the pool -------------------------------------------------------------------

  /**
   * AES-GCM with a 96-bit IV and a 128-bit tag on a pool session, off the event loop. Encrypt:
   * out receives ciphertext ‖ tag (input.length + 16 bytes). Decrypt: input is ciphertext ‖ tag and
   * out must have room for input.length bytes (modules check against the input size); returns the
   * plaintext length, or null when the tag does not verify.
   */
  async gcm(encrypt: boolean, key: Handle, iv: Buffer, aad: Buffer, input: Buffer, out: Buffer): Promise<number | null> {
    const acquired = this.acquire();
    const session = acquired instanceof Promise ? await acquired : acquired;
    const data = input.length === 0 ? EMPTY : input;
    const mechanism: Mechanism = { mechanism: pkcs11js.CKM_AES_GCM, parameter: gcmParams(iv, aad) };
    const pin = [key, iv, aad, data, out, mechanism];
    this.pinned.add(pin);
    let broken = false;
    let dataPhase = false;
    try {
      if (encrypt) {
        this.p.C_EncryptInit(session, mechanism, key);
        dataPhase = true;
        return (await this.p.C_EncryptAsync(session, data, out)).length;
      }
      this.p.C_DecryptInit(session, mechanism, key);
      dataPhase = true;
      return (await this.p.C_DecryptAsync(session, data, out)).length;
    } catch (err) {
      const code = ckr(err);
      // A tag that does not verify ends the operation like a success does: the session is fine.
      if (!encrypt && dataPhase && code !== undefined && TAG_FAILURE_CODES.has(code)) return null;
      broken = true;
      throw this.failure(err, encrypt ? 'C_Encrypt' : 'C_Decrypt');
    } finally {
      this.pinned.delete(pin);
      this.release(session, broken);
    }
  }

  /** C_GenerateKey on a pool session (a hardware token may take a while). */
  async generateKey(template: Template): Promise<Handle> {
    const acquired = this.acquire();
    const session = acquired instanceof Promise ? await acquired : acquired;
    const pin = [template];
    this.pinned.add(pin);
    let broken = false;
    try {
      return await this.p.C_GenerateKeyAsync(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, template);
    } catch (err) {
      broken = true;
      throw this.failure(err, 'C_GenerateKey');
    } finally {
      this.pinned.delete(pin);
      this.release(session, broken);
    }
  }

  // ---- management on the control session (synchronous, short) ------------------------------

  private controlSession(): Handle {
    if ((this.state !== 'up' && this.state !== 'connecting') || this.control === null) throw this.unavailable();
    return this.control;
  }

  /** Runs fn on the control session; pkcs11js errors become KmsErrors (see failure()). */
  private onControl<T>(call: string, fn: (session: Handle) => T): T {
    const session = this.controlSession();
    try {
      return fn(session);
    } catch (err) {
      if (this.state === 'connecting' || this.probing) throw new Error(`${this.selector}: ${call} failed: ${errorText(err)}`);
      throw this.failure(err, call);
    }
  }

  /** Secret-key objects with this label (at most `max`). */
  findSecretKeys(label: string, max = 2): Handle[] {
    return this.onControl('C_FindObjects', (session) => {
      this.p.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_LABEL, value: label },
      ]);
      try {
        return this.p.C_FindObjects(session, max);
      } finally {
        this.p.C_FindObjectsFinal(session);
      }
    });
  }

  attributes(object: Handle, types: number[]): AttributeResult[] {
    return this.onControl('C_GetAttributeValue', (session) =>
      this.p.C_GetAttributeValue(session, object, types.map((type) => ({ type }))) as AttributeResult[]);
  }

  destroyObject(object: Handle): void {
    this.onControl('C_DestroyObject', (session) => this.p.C_DestroyObject(session, object));
  }

  /** One short AES-GCM encryption on the control session (key check values). */
  encryptSync(key: Handle, iv: Buffer, aad: Buffer, input: Buffer, out: Buffer): number {
    return this.onControl('C_Encrypt', (session) => {
      this.p.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_GCM, parameter: gcmParams(iv, aad) }, key);
      return this.p.C_Encrypt(session, input.length === 0 ? EMPTY : input, out).length;
    });
  }

  // ---- shutdown -----------------------------------------------------------------------------

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    if (this.monitorTimer !== undefined) clearInterval(this.monitorTimer);
    const error = this.unavailable();
    for (const w of this.waiters.splice(0)) w.reject(error);
    await this.drained();
    if (this.control !== null) {
      try {
        this.p.C_Logout(this.control);
      } catch {
        // not logged in or gone
      }
    }
    this.teardown();
    this.options.pin.release();
  }
}

/** CK_GCM_PARAMS as pkcs11js reads them: ivBits and tagBits must be given (tagBits defaults to 0). */
function gcmParams(iv: Buffer, aad: Buffer): GcmParams {
  return { type: pkcs11js.CK_PARAMS_GCM, iv, ivBits: GCM_IV_BYTES * 8, aad, tagBits: GCM_TAG_BYTES * 8 };
}

/** Reads a CK_ULONG attribute value (native byte order, 4 or 8 bytes). */
export function ulongValue(value: Buffer): number {
  if (value.length === 8) return Number(value.readBigUInt64LE(0));
  if (value.length === 4) return value.readUInt32LE(0);
  return value.length === 1 ? (value[0] as number) : NaN;
}

export function boolValue(value: Buffer): boolean {
  return value.length > 0 && value[0] !== 0;
}
