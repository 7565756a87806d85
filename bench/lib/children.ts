// Child processes of a benchmark (the daemon under test, comparison servers): spawned with their
// output in log files, killed on every way out of the parent (normal exit, error, SIGINT/SIGTERM).
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import net from 'node:net';

export interface Child {
  readonly name: string;
  readonly proc: ChildProcess;
  readonly logPath: string;
  /** Set once the process has exited: its code or signal. */
  exited: { code: number | null; signal: NodeJS.Signals | null } | null;
  /** True when the exit was asked for (stop()); an unasked exit is a failure of the run. */
  stopping: boolean;
}

const live = new Set<Child>();
const cleanups = new Set<() => void>();
let hooked = false;

/** Runs `fn` (synchronously) when this process exits, after the children were killed; returns an unregister function. */
export function onExit(fn: () => void): () => void {
  hook();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

function killAllNow(): void {
  for (const c of live) {
    if (c.exited === null) {
      try {
        c.proc.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function exitNow(): void {
  killAllNow();
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      // best effort on the way out
    }
  }
}

function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', exitNow);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      killAllNow();
      process.stderr.write(`bench: ${sig}, children killed\n`);
      process.exit(130);
    });
  }
}

/** Environment without RUSTFS_KMS_* variables, so the parent's settings cannot leak into a child. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('RUSTFS_KMS_')) env[k] = v;
  return { ...env, ...extra };
}

/** Spawns `node <nodeArgs> <script> <args>`; stdout and stderr go to logPath. */
export function spawnNode(
  name: string, nodeArgs: string[], script: string, args: string[], options: { cwd: string; logPath: string; env?: NodeJS.ProcessEnv },
): Child {
  hook();
  const fd = openSync(options.logPath, 'a');
  const proc = spawn(process.execPath, [...nodeArgs, script, ...args], {
    cwd: options.cwd,
    env: options.env ?? cleanEnv(),
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const child: Child = { name, proc, logPath: options.logPath, exited: null, stopping: false };
  live.add(child);
  proc.on('exit', (code, signal) => {
    child.exited = { code, signal };
  });
  return child;
}

export function logTail(child: Child, lines = 20): string {
  if (!existsSync(child.logPath)) return '';
  return readFileSync(child.logPath, 'utf8').split('\n').slice(-lines).join('\n');
}

export class ChildDiedError extends Error {
  constructor(child: Child) {
    const how = child.exited?.signal ?? `code ${child.exited?.code}`;
    super(`${child.name} (pid ${child.proc.pid}) exited unexpectedly (${how}); last output:\n${logTail(child)}`);
    this.name = 'ChildDiedError';
  }
}

/** Throws when the child exited without being asked to. */
export function assertAlive(child: Child): void {
  if (child.exited !== null && !child.stopping) throw new ChildDiedError(child);
}

/** Stops a child with `signal`, then SIGKILL after `graceMs`; resolves when it has exited. */
export async function stop(child: Child, signal: NodeJS.Signals = 'SIGTERM', graceMs = 15_000): Promise<void> {
  child.stopping = true;
  if (child.exited === null) {
    const gone = new Promise<void>((resolve) => child.proc.once('exit', () => resolve()));
    child.proc.kill(signal);
    const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }
  live.delete(child);
}

/** Polls until a Unix socket (or TCP port) accepts a connection; fails if the child exits first. */
export async function waitForListener(child: Child, target: string | { port: number; host: string }, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    assertAlive(child);
    const ok = await new Promise<boolean>((resolve) => {
      const s = typeof target === 'string' ? net.createConnection(target) : net.createConnection(target.port, target.host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${child.name} did not start listening within ${timeoutMs} ms:\n${logTail(child)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Waits for the first stdout/log line matching `re` (the child prints its port there). */
export async function waitForLogLine(child: Child, re: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    assertAlive(child);
    if (existsSync(child.logPath)) {
      const m = readFileSync(child.logPath, 'utf8').match(re);
      if (m !== null) return m;
    }
    if (Date.now() > deadline) throw new Error(`${child.name} did not report ${re} within ${timeoutMs} ms:\n${logTail(child)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
