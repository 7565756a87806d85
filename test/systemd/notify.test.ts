// The sd_notify conversation as systemd would see it, on a test NOTIFY_SOCKET (a python3 datagram
// receiver): READY=1 once serving, STATUS= lines, RELOADING=1 + MONOTONIC_USEC … READY=1 around a
// SIGHUP reload (also when the new config is refused), STOPPING=1 on SIGTERM, and WATCHDOG=1 pings
// at half of WATCHDOG_USEC while healthy. Counts are bounded loosely; nothing asserts exact timing.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Supervisor, reloadingMessage, watchdogFromEnv } from '../../src/daemon/systemd.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, makeTempDir, startDaemon } from '../helpers/daemon.js';
import { NotifyReceiver, haveCommand } from './helpers.js';

const receivers: NotifyReceiver[] = [];

beforeAll(() => {
  assertBuilt();
  if (!haveCommand('python3')) throw new Error('python3 is missing: run "bash scripts/install-test-deps.sh"');
});
afterEach(() => {
  for (const r of receivers.splice(0)) r.stop();
});
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

async function receiver(dir: string): Promise<NotifyReceiver> {
  const r = await NotifyReceiver.start(join(dir, 'notify.sock'));
  receivers.push(r);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the daemon on a NOTIFY_SOCKET', () => {
  it('READY=1 with a STATUS once serving; RELOADING=1/MONOTONIC_USEC then READY=1 on SIGHUP; STOPPING=1 on SIGTERM', async () => {
    const dir = makeTempDir('kms-notify-');
    const r = await receiver(dir);
    const config = join(dir, 'reload.yaml');
    writeFileSync(config, 'log_level: info\n');
    const d = await startDaemon({ dir, env: { NOTIFY_SOCKET: r.path }, args: ['--config', config] });

    const ready = await r.waitFor((m) => m.fields.READY === '1', 15_000, 0, 'READY=1');
    expect(ready.fields.STATUS).toMatch(/^serving 0 keys on .*kms\.sock/);
    const starting = r.messages.slice(0, ready.n).filter((m) => m.fields.STATUS !== undefined);
    expect(starting.map((m) => m.fields.STATUS).join('\n')).toMatch(/starting/);
    expect(r.messages.slice(0, ready.n).some((m) => m.fields.STOPPING !== undefined)).toBe(false);
    // No watchdog without WATCHDOG_USEC.
    expect(r.with('WATCHDOG')).toEqual([]);

    // A good reload.
    const before = r.messages.length;
    const hrBefore = process.hrtime.bigint() / 1000n;
    d.proc.kill('SIGHUP');
    const reloading = await r.waitFor((m) => m.fields.RELOADING === '1', 15_000, before, 'RELOADING=1');
    const usec = BigInt(reloading.fields.MONOTONIC_USEC ?? '-1');
    expect(usec).toBeGreaterThanOrEqual(hrBefore); // CLOCK_MONOTONIC, like systemd's own clock
    expect(usec).toBeLessThanOrEqual(process.hrtime.bigint() / 1000n);
    const reReady = await r.waitFor((m) => m.fields.READY === '1', 15_000, reloading.n + 1, 'READY=1 after the reload');
    expect(reReady.fields.STATUS).toMatch(/^reloaded/);

    // A refused reload (the file is now invalid) still ends the reload with READY=1, and says why.
    writeFileSync(config, 'log_level: loud\n');
    const mark = r.messages.length;
    d.proc.kill('SIGHUP');
    const reloading2 = await r.waitFor((m) => m.fields.RELOADING === '1', 15_000, mark, 'RELOADING=1 (refused reload)');
    const refused = await r.waitFor((m) => m.fields.READY === '1', 15_000, reloading2.n + 1, 'READY=1 after a refused reload');
    expect(refused.fields.STATUS).toMatch(/reload refused .*log_level/);
    expect(refused.fields.STATUS).toMatch(/still serving/);

    const stopMark = r.messages.length;
    expect(await d.stop('SIGTERM')).toBe(0);
    const stopping = await r.waitFor((m) => m.fields.STOPPING === '1', 15_000, stopMark, 'STOPPING=1');
    expect(stopping.fields.STATUS).toMatch(/draining .* after SIGTERM/);
    const stopped = await r.waitFor((m) => /^stopped/.test(m.fields.STATUS ?? ''), 15_000, stopping.n, 'STATUS=stopped');
    expect(stopped.n).toBeGreaterThan(stopping.n);
    // Every STATUS value is one line (a newline would start a new assignment).
    for (const m of r.with('STATUS')) expect(m.fields.STATUS).not.toMatch(/[\r\n]/);
  });

  it('WATCHDOG_USEC=400000: WATCHDOG=1 about every 200 ms (at least 3 within 3 s, and not a flood)', async () => {
    const dir = makeTempDir('kms-notify-');
    const r = await receiver(dir);
    const d = await startDaemon({ dir, env: { NOTIFY_SOCKET: r.path, WATCHDOG_USEC: '400000' } });
    const ready = await r.waitFor((m) => m.fields.READY === '1', 15_000, 0, 'READY=1');
    const t0 = Date.now();
    await r.waitFor(() => r.with('WATCHDOG', '1').length >= 3, 3_000, 0, 'three WATCHDOG=1 pings within 3 s');
    // Let it run a little longer, then look at the rate over the whole window.
    await sleep(1_000);
    const elapsed = Date.now() - t0;
    const pings = r.with('WATCHDOG', '1').filter((m) => m.n > ready.n);
    // A ping every 200 ms → elapsed/200 pings; allow a slow machine to fall behind, but a timer
    // that pinged far more often than every 200 ms (or kept no period at all) fails.
    expect(pings.length).toBeGreaterThanOrEqual(3);
    expect(pings.length).toBeLessThanOrEqual(Math.ceil((elapsed + 1_000) / 200) + 2);
    expect(d.stderr()).toMatch(/systemd watchdog: pinging/);

    const mark = r.messages.length;
    expect(await d.stop('SIGTERM')).toBe(0);
    const stopping = await r.waitFor((m) => m.fields.STOPPING === '1', 15_000, mark, 'STOPPING=1');
    // No pings after STOPPING=1: the watchdog stops with the service.
    expect(r.messages.slice(stopping.n + 1).some((m) => m.fields.WATCHDOG !== undefined)).toBe(false);
  });

  it('WATCHDOG_PID of another process: no pings', async () => {
    const dir = makeTempDir('kms-notify-');
    const r = await receiver(dir);
    const d = await startDaemon({ dir, env: { NOTIFY_SOCKET: r.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: '1' } });
    await r.waitFor((m) => m.fields.READY === '1', 15_000, 0, 'READY=1');
    await sleep(1_000); // ten periods
    expect(r.with('WATCHDOG')).toEqual([]);
    expect(d.stderr()).toMatch(/WATCHDOG_PID=1 is another process/);
    expect(await d.stop()).toBe(0);
  });
});

describe('watchdog logic (in process)', () => {
  it('watchdogFromEnv follows sd_watchdog_enabled and unsets the variables', () => {
    const env: NodeJS.ProcessEnv = { WATCHDOG_USEC: '30000000', WATCHDOG_PID: '77' };
    expect(watchdogFromEnv(env, 77)).toEqual({ watchdog: { usec: 30_000_000 } });
    expect(env).toEqual({});
    expect(watchdogFromEnv({ WATCHDOG_USEC: '30000000' }, 77)).toEqual({ watchdog: { usec: 30_000_000 } });
    expect(watchdogFromEnv({}, 77)).toEqual({});
    expect(watchdogFromEnv({ WATCHDOG_USEC: '0' }, 77).ignored).toMatch(/not a positive number/);
    expect(watchdogFromEnv({ WATCHDOG_USEC: '1e6' }, 77).ignored).toMatch(/not a positive number/);
    expect(watchdogFromEnv({ WATCHDOG_USEC: '1000', WATCHDOG_PID: '78' }, 77).ignored).toMatch(/another process/);
  });

  it('pings only while the probe says healthy; a probe that never answers stops the pings', async () => {
    const sent: string[] = [];
    const problems: string[] = [];
    let healthy = true;
    let hang = false;
    const s = new Supervisor({
      watchdogUsec: 40_000, // a ping every 20 ms
      probe: () => (hang ? new Promise(() => undefined) : Promise.resolve({ ok: healthy, status: healthy ? 'serving' : 'degraded' })),
      send: (m) => sent.push(m),
      onProblem: (p) => problems.push(p),
    });
    expect(s.intervalMs).toBe(20);
    s.start();
    const waitUntil = async (pred: () => boolean, what: string) => {
      const deadline = Date.now() + 5_000;
      while (!pred()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; sent: ${JSON.stringify(sent)}`);
        await sleep(10);
      }
    };
    const pings = () => sent.filter((m) => m.split('\n').includes('WATCHDOG=1')).length;
    await waitUntil(() => pings() >= 3, 'three pings');
    expect(sent.some((m) => m.includes('STATUS=serving'))).toBe(true);

    healthy = false;
    await waitUntil(() => sent.some((m) => m.includes('STATUS=degraded')), 'the degraded status');
    const atUnhealthy = pings();
    await sleep(200); // ~10 periods
    expect(pings()).toBe(atUnhealthy);
    expect(problems.some((p) => /unhealthy/.test(p))).toBe(true);

    healthy = true;
    await waitUntil(() => pings() > atUnhealthy, 'pings again once healthy');

    hang = true;
    await sleep(60);
    const atHang = pings();
    await sleep(200);
    expect(pings()).toBeLessThanOrEqual(atHang + 1); // at most the probe already in flight
    expect(problems.some((p) => /has not answered/.test(p))).toBe(true);
    s.stop();
  });

  it('RELOADING=1 carries MONOTONIC_USEC', () => {
    expect(reloadingMessage('x')).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=x$/);
  });
});
