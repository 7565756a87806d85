// Integration-test harness: starts the REAL built daemon (node dist/src/daemon/main.js) in a fresh
// temporary directory and talks to it over a real Unix socket; runs the real CLI. No mocks.
// Readiness: the daemon's own "serving" line on stderr (written after the socket is listening), with
// a bounded wait and its stderr in the error when it exits first.
//
// The built files are expected in dist/ (`npm test` runs tsc in pretest; by hand: `npx tsc -p .`).
// KMS_DIST_ROOT=/some/checkout points the harness at another checkout's build (debugging only).
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const distRoot = process.env.KMS_DIST_ROOT !== undefined && process.env.KMS_DIST_ROOT !== ''
  ? resolve(process.env.KMS_DIST_ROOT)
  : repoRoot;
export const DAEMON_JS = join(distRoot, 'dist', 'src', 'daemon', 'main.js');
export const CLI_JS = join(distRoot, 'dist', 'src', 'cli', 'main.js');
export const CLIENT_JS = join(distRoot, 'dist', 'src', 'rpc', 'client.js');

const DEFAULT_READY_TIMEOUT_MS = 20_000;
const DEFAULT_EXIT_TIMEOUT_MS = 20_000;

export function assertBuilt(): void {
  for (const file of [DAEMON_JS, CLI_JS]) {
    if (!existsSync(file)) {
      throw new Error(
        `${file} does not exist: the integration tests run the built daemon and CLI. ` +
          `Build first with "npx tsc -p ." (npm test does it in its pretest step).`,
      );
    }
  }
}

// ---- temporary directories --------------------------------------------------------------------

const tempDirs = new Set<string>();

/** A fresh directory under the system temp dir (0700, as mkdtemp makes it), removed by cleanupTempDirs(). */
export function makeTempDir(prefix = 'kms-it-'): string {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function cleanupTempDirs(): void {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

// ---- environment ------------------------------------------------------------------------------

/** The inherited environment without any RUSTFS_KMS_* variable (the test runner sets some). */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('RUSTFS_KMS_') && v !== undefined) env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

// ---- the daemon -------------------------------------------------------------------------------

export interface StartDaemonOptions {
  /** Working directory holding state/, kms.sock and the config file; a new temp dir by default. */
  dir?: string;
  /** Default <dir>/state. */
  stateDir?: string;
  /** Default <dir>/kms.sock. */
  socket?: string;
  /** Extra command-line arguments, after the defaults. */
  args?: string[];
  /** Extra environment (undefined removes a variable). RUSTFS_KMS_* of the runner are never inherited. */
  env?: Record<string, string | undefined>;
  /** YAML text, written to <dir>/config-N.yaml and passed with --config. */
  config?: string;
  /** Pass --dev (default true: the root key is created on first start). */
  dev?: boolean;
  /** Bounded wait for readiness. */
  readyTimeoutMs?: number;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DaemonHandle {
  pid: number;
  dir: string;
  socketPath: string;
  stateDir: string;
  /** The --config file written from options.config, if any (rewrite it and send SIGHUP to reload). */
  configPath: string | undefined;
  proc: ChildProcess;
  /** Everything the daemon wrote to stderr so far (its log and messages). */
  stderr(): string;
  stdout(): string;
  /** Resolves when the process has exited. */
  exited: Promise<ExitStatus>;
  readonly running: boolean;
  /** Sends `signal` (SIGTERM by default) and resolves with the exit code once it has exited. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** SIGKILL, resolves once the process is gone (its flock is released then). */
  kill(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort if a test file dies without its afterAll: never leave daemons behind.
  process.on('exit', () => {
    for (const p of live) {
      try {
        p.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

let configNo = 0;

interface Spawned {
  proc: ChildProcess;
  dir: string;
  socketPath: string;
  stateDir: string;
  configPath: string | undefined;
  out: { stdout: string; stderr: string };
  exited: Promise<ExitStatus>;
}

function spawnDaemon(options: StartDaemonOptions): Spawned {
  assertBuilt();
  installExitHook();
  const dir = options.dir ?? makeTempDir();
  mkdirSync(dir, { recursive: true });
  const stateDir = options.stateDir ?? join(dir, 'state');
  const socketPath = options.socket ?? join(dir, 'kms.sock');
  const args = [DAEMON_JS];
  if (options.dev !== false) args.push('--dev');
  args.push('--state-dir', stateDir, '--socket', socketPath);
  let configPath: string | undefined;
  if (options.config !== undefined) {
    configPath = join(dir, `config-${++configNo}.yaml`);
    writeFileSync(configPath, options.config, { mode: 0o600 });
    args.push('--config', configPath);
  }
  if (options.args !== undefined) args.push(...options.args);
  const proc = spawn(process.execPath, args, {
    cwd: dir,
    env: cleanEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  const out = { stdout: '', stderr: '' };
  proc.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out.stdout += d;
  });
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => {
    out.stderr += d;
  });
  const exited = new Promise<ExitStatus>((resolveExit) => {
    proc.once('exit', (code, signal) => {
      live.delete(proc);
      resolveExit({ code, signal });
    });
  });
  return { proc, dir, socketPath, stateDir, configPath, out, exited };
}

/** True when something accepts connections on `path`. */
export function canConnect(path: string): Promise<boolean> {
  return new Promise((resolveConnect) => {
    const s = net.createConnection({ path });
    s.once('connect', () => {
      s.destroy();
      resolveConnect(true);
    });
    s.once('error', () => resolveConnect(false));
  });
}

const READY_MARKERS = ['serving on ', '"msg":"rustfs-kmsd serving"'];

/** Starts the daemon and waits until it serves; rejects with its stderr if it exits first. */
export async function startDaemon(options: StartDaemonOptions = {}): Promise<DaemonHandle> {
  const s = spawnDaemon(options);
  let exitStatus: ExitStatus | undefined;
  void s.exited.then((st) => {
    exitStatus = st;
  });
  const timeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const started = Date.now();
  for (;;) {
    if (exitStatus !== undefined) {
      throw new Error(
        `rustfs-kmsd exited before serving (code ${exitStatus.code}, signal ${exitStatus.signal}); stderr:\n${s.out.stderr}`,
      );
    }
    // The daemon says it serves only after listen() succeeded. No probe connection is made: it would
    // occupy a connection slot for a moment (tests with max_connections count them).
    if (READY_MARKERS.some((m) => s.out.stderr.includes(m))) break;
    if (Date.now() - started > timeoutMs) {
      s.proc.kill('SIGKILL');
      await s.exited;
      throw new Error(`rustfs-kmsd did not serve on ${s.socketPath} within ${timeoutMs} ms; stderr:\n${s.out.stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const handle: DaemonHandle = {
    pid: s.proc.pid as number,
    dir: s.dir,
    socketPath: s.socketPath,
    stateDir: s.stateDir,
    configPath: s.configPath,
    proc: s.proc,
    stderr: () => s.out.stderr,
    stdout: () => s.out.stdout,
    exited: s.exited,
    get running() {
      return exitStatus === undefined;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (exitStatus === undefined) s.proc.kill(signal);
      const st = await withTimeout(s.exited, DEFAULT_EXIT_TIMEOUT_MS, `rustfs-kmsd (pid ${s.proc.pid}) did not exit after ${signal}`);
      return st.code;
    },
    async kill() {
      if (exitStatus === undefined) s.proc.kill('SIGKILL');
      await s.exited;
    },
  };
  return handle;
}

/**
 * Runs the daemon when it is expected to refuse to start: resolves with its exit status and stderr.
 * Fails (after killing it) if it starts serving instead or does not exit in time.
 */
export async function runDaemonExpectingExit(
  options: StartDaemonOptions = {},
): Promise<ExitStatus & { stderr: string; stdout: string; dir: string; socketPath: string; stateDir: string }> {
  const s = spawnDaemon(options);
  const timeoutMs = options.readyTimeoutMs ?? DEFAULT_EXIT_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    s.exited.then((st) => ({ kind: 'exit' as const, st })),
    new Promise<{ kind: 'timeout' }>((r) => {
      timer = setTimeout(() => r({ kind: 'timeout' }), timeoutMs);
    }),
  ]);
  clearTimeout(timer);
  if (outcome.kind === 'timeout') {
    s.proc.kill('SIGKILL');
    await s.exited;
    const serving = READY_MARKERS.some((m) => s.out.stderr.includes(m));
    throw new Error(
      `rustfs-kmsd was expected to refuse to start but ${serving ? 'is serving' : 'did not exit'} after ${timeoutMs} ms; stderr:\n${s.out.stderr}`,
    );
  }
  return { ...outcome.st, stderr: s.out.stderr, stdout: s.out.stdout, dir: s.dir, socketPath: s.socketPath, stateDir: s.stateDir };
}

/** SIGKILLs every daemon this process started that is still running, and waits for them. */
export async function killAllDaemons(): Promise<void> {
  const procs = [...live];
  await Promise.all(
    procs.map(
      (p) =>
        new Promise<void>((r) => {
          if (p.exitCode !== null || p.signalCode !== null) return r();
          p.once('exit', () => r());
          p.kill('SIGKILL');
        }),
    ),
  );
}

function withTimeout<T>(p: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}

/** Waits (bounded) until `predicate` holds, polling every 20 ms. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// ---- the CLI ----------------------------------------------------------------------------------

export interface CliResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunCliOptions {
  /** Passed as `--socket PATH` before the other arguments when set. */
  socket?: string;
  input?: Buffer | string;
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs `node dist/src/cli/main.js [--socket S] ...args` and collects its output. */
export function runCli(args: string[], options: RunCliOptions = {}): Promise<CliResult> {
  assertBuilt();
  const argv = [CLI_JS, ...(options.socket !== undefined ? ['--socket', options.socket] : []), ...args];
  return new Promise((resolveRun, reject) => {
    const proc = spawn(process.execPath, argv, {
      cwd: options.cwd ?? tmpdir(),
      env: cleanEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let err = '';
    proc.stdout.on('data', (d: Buffer) => out.push(d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`rustfs-kms ${args.join(' ')} did not finish within ${options.timeoutMs ?? 30_000} ms; stderr:\n${err}`));
    }, options.timeoutMs ?? 30_000);
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    proc.on('close', (code) => {
      clearTimeout(timer);
      resolveRun({ code, stdout: Buffer.concat(out), stderr: err });
    });
    proc.stdin.on('error', () => undefined);
    proc.stdin.end(options.input ?? '');
  });
}

// ---- small shared helpers ---------------------------------------------------------------------

/** Makes `dir` traversable by other users (for the AccessDenied tests). */
export function openDir(dir: string): void {
  chmodSync(dir, 0o755);
}

export { prng } from '../../fuzz/frames.js';
