// Shared pieces of the systemd tests: an sd_notify receiver (python3 binds the AF_UNIX datagram
// socket; Node has none in core) and a daemon started through Debian's systemd-socket-activate,
// which listens like a .socket unit and execs the daemon (same pid) on the first connection.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { DAEMON_JS, assertBuilt, canConnect, cleanEnv, type ExitStatus } from '../helpers/daemon.js';

const RECEIVER = `
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({'bound': sys.argv[1]}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({'text': data.decode('utf-8', 'replace')}), flush=True)
`;

export interface NotifyMessage {
  /** Arrival order. */
  n: number;
  /** Milliseconds since the receiver started (for logging, never asserted tightly). */
  at: number;
  text: string;
  /** The message's assignments, e.g. { READY: '1', STATUS: 'serving …' }. */
  fields: Record<string, string>;
}

/** A NOTIFY_SOCKET: every datagram the daemon sends, parsed into its VAR=value lines. */
export class NotifyReceiver {
  readonly messages: NotifyMessage[] = [];
  private readonly started = Date.now();
  private listeners: Array<() => void> = [];

  private constructor(readonly path: string, private readonly child: ChildProcess) {}

  static async start(path: string): Promise<NotifyReceiver> {
    const child = spawn('python3', ['-u', '-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'pipe'] });
    const r = new NotifyReceiver(path, child);
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`notify receiver exited ${code}: ${stderr}`)));
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as { bound?: string; text?: string };
        if (msg.bound !== undefined) resolve();
        else if (msg.text !== undefined) r.push(msg.text);
      });
    });
    return r;
  }

  private push(text: string): void {
    const fields: Record<string, string> = {};
    for (const line of text.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
    }
    this.messages.push({ n: this.messages.length, at: Date.now() - this.started, text, fields });
    const l = this.listeners;
    this.listeners = [];
    for (const f of l) f();
  }

  /** Messages carrying `field` (optionally with that value), in arrival order. */
  with(field: string, value?: string): NotifyMessage[] {
    return this.messages.filter((m) => m.fields[field] !== undefined && (value === undefined || m.fields[field] === value));
  }

  /** Waits (bounded) for the first message after index `from` that matches. */
  async waitFor(pred: (m: NotifyMessage) => boolean, timeoutMs = 15_000, from = 0, what = 'a matching notify message'): Promise<NotifyMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.slice(from).find(pred);
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`no ${what} within ${timeoutMs} ms; received:\n${this.messages.map((m) => JSON.stringify(m.text)).join('\n')}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 500));
        this.listeners.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

export function haveCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

export interface ActivatedDaemon {
  proc: ChildProcess;
  pid: number;
  exited: Promise<ExitStatus>;
  stderr(): string;
  readonly running: boolean;
  stop(signal?: NodeJS.Signals): Promise<ExitStatus>;
}

export interface ActivationOptions {
  /** Paths systemd-socket-activate listens on (-l), in order: fd 3, 4, … */
  listen: string[];
  /** --fdname value (names joined with ':'), or undefined for none. */
  fdnames?: string;
  /** Passed to the daemon with -E (systemd-socket-activate forwards only a few variables itself). */
  env?: Record<string, string>;
  /** Daemon arguments after main.js. */
  args: string[];
  cwd: string;
}

/**
 * Starts `systemd-socket-activate -l … node main.js …` and waits until it listens. The daemon
 * itself starts on the first connection to one of the sockets (call {@link triggerAndWait}).
 */
export async function spawnActivated(options: ActivationOptions): Promise<ActivatedDaemon> {
  assertBuilt();
  const argv: string[] = [];
  for (const l of options.listen) argv.push('-l', l);
  if (options.fdnames !== undefined) argv.push(`--fdname=${options.fdnames}`);
  for (const [k, v] of Object.entries(options.env ?? {})) argv.push('-E', `${k}=${v}`);
  argv.push(process.execPath, DAEMON_JS, ...options.args);
  const proc = spawn('systemd-socket-activate', argv, { cwd: options.cwd, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  proc.stdout?.resume();
  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    proc.once('exit', (code, signal) => {
      status = { code, signal };
      resolve(status);
    });
  });
  const deadline = Date.now() + 10_000;
  while (!options.listen.every((l) => existsSync(l))) {
    if (status !== undefined) throw new Error(`systemd-socket-activate exited (${status.code}) before listening:\n${stderr}`);
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`systemd-socket-activate did not listen within 10 s:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return {
    proc,
    pid: proc.pid as number,
    exited,
    stderr: () => stderr,
    get running() {
      return status === undefined;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (status === undefined) proc.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const st = await Promise.race([
        exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`daemon ${proc.pid} did not exit within 20 s after ${signal}:\n${stderr}`)), 20_000);
        }),
      ]);
      clearTimeout(timer);
      return st;
    },
  };
}

/** Waits (bounded) until the activated daemon serves on `socketPath` or exits. */
export async function waitServing(d: ActivatedDaemon, socketPath: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!d.running) throw new Error(`the daemon exited before serving:\n${d.stderr()}`);
    if (/serving on |"msg":"rustfs-kmsd serving"/.test(d.stderr()) && (await canConnect(socketPath))) return;
    if (Date.now() > deadline) throw new Error(`the daemon did not serve within ${timeoutMs} ms:\n${d.stderr()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits (bounded) for a process to exit; rejects if it is still running. */
export async function exitWithin(exited: Promise<ExitStatus>, timeoutMs: number, what: string): Promise<ExitStatus> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not exit within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
