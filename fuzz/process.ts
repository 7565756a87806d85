// What every fuzz mode asks of the daemon it attacks: is its socket up, how much memory and how many
// file descriptors does it hold (read from /proc, the same figures the tests hold).
import { readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? 0 : Number(m[1]);
}

/** Resolves once something accepts connections on the Unix socket at `path` (10 s at most). */
export async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(path);
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('daemon did not start');
}
