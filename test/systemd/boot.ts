// A real systemd (Debian's, as PID 1 of private namespaces) for the tests, through boot.sh: one boot
// per test file, commands run inside with nsenter, files and sockets reached from the host through
// /proc/<pid>/root. boot.sh says what keeps the host untouched.
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers/daemon.js';

const BOOT_SH = join(repoRoot, 'test', 'systemd', 'boot.sh');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Why a real systemd cannot boot here (not root, no systemd, the kernel refuses), or undefined. */
export function bootUnavailable(): string | undefined {
  const r = spawnSync('bash', [BOOT_SH, 'probe'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status === 0) return undefined;
  return (r.stdout + r.stderr).trim() || `boot.sh probe exited ${r.status}`;
}

export class Boot {
  private constructor(readonly dir: string, readonly pid: number) {}

  /** Boots; the directory (upper layers, units) lives under the checkout's .boot/, never in /tmp. */
  static start(name: string): Boot {
    // KMS_BOOT_ROOT for checkouts where boot.sh cannot keep its layers (under /var, for one).
    const root = process.env.KMS_BOOT_ROOT ?? join(repoRoot, '.boot');
    const dir = join(root, `${name}-${process.pid}`);
    mkdirSync(root, { recursive: true });
    const r = spawnSync('bash', [BOOT_SH, 'start', dir], { encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`boot.sh start failed (${r.status}): ${r.stderr}${r.stdout}`);
    return new Boot(dir, Number(r.stdout.trim()));
  }

  /** The namespace's view of an absolute path, from the host. */
  hostPath(path: string): string {
    return `/proc/${this.pid}/root${path}`;
  }

  /** Runs a command inside (async: the caller may be serving sockets meanwhile). */
  run(argv: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return new Promise((resolve) => {
      const child = spawn('bash', [BOOT_SH, 'exec', this.dir, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
      child.once('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.end(options.input ?? '');
    });
  }

  /** A long-running process inside, read line by line (test/systemd/wire-client.mjs). */
  spawnLines(argv: string[]): { child: ChildProcessWithoutNullStreams; line: (timeoutMs?: number) => Promise<string> } {
    const child = spawn('bash', [BOOT_SH, 'exec', this.dir, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines: string[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    createInterface({ input: child.stdout }).on('line', (l) => {
      lines.push(l);
      wake?.();
    }).on('close', () => {
      closed = true;
      wake?.();
    });
    const line = async (timeoutMs = 30_000): Promise<string> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const l = lines.shift();
        if (l !== undefined) return l;
        if (closed) throw new Error(`${argv.join(' ')} ended without another line: ${stderr}`);
        if (Date.now() > deadline) throw new Error(`no line from ${argv.join(' ')} within ${timeoutMs} ms: ${stderr}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, 200);
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
      }
    };
    return { child, line };
  }

  /** A shell script inside; fails the test with its output when it exits non-zero. */
  async sh(script: string, options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.run(['sh', '-euc', script], options);
    if (r.code !== 0) throw new Error(`inside the boot, exit ${r.code}:\n$ ${script}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** `systemctl show -p NAME --value` for the service. */
  async prop(name: string, unit = 'rustfs-kms.service'): Promise<string> {
    return (await this.sh(`systemctl show -p ${name} --value ${unit}`)).trim();
  }

  /** The unit's journal, for failure messages. */
  async journal(unit = 'rustfs-kms.service'): Promise<string> {
    return (await this.run(['journalctl', '--no-pager', '-o', 'cat', '-u', unit])).stdout.split('\n').slice(-40).join('\n');
  }

  /** Installs the units the way an operator does, plus a local root key for the service user. */
  async installLocal(): Promise<void> {
    await this.sh('rustfs-kms install-systemd >/dev/null');
    await this.sh('rustfs-kms init --state-dir /var/lib/rustfs-kms >/dev/null && chown rustfs-kms:rustfs-kms /var/lib/rustfs-kms/root.key');
  }

  /** SIGKILLs the namespace's systemd (everything in it dies with it) and removes the directory. */
  stop(): void {
    spawnSync('bash', [BOOT_SH, 'stop', this.dir], { stdio: 'ignore', timeout: 30_000 });
  }
}

/** Polls `check` (bounded) until it returns a value; for states systemd reaches asynchronously. */
export async function until<T>(check: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
