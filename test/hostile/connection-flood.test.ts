// Issue 11, item 1. At max_connections a hostile local process floods the socket: 2,000 connections
// that connect and close at once (each refusal then hits EPIPE), then 500 that connect and stay
// without reading or closing. Figures held: the daemon lives, answers `health` within 5 s all along,
// and its fd count returns to within 20 of what it was before (it used to exit, or keep every fd).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { RawConn } from '../integration/wire.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, startDaemon } from '../helpers/daemon.js';
import { HealthWatch, connectAndClose, fdCount, openRaw, sleep } from './attack.js';

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

describe('connection flood at max_connections', () => {
  it('2,000 connect-and-close plus 500 silent stayers: the daemon lives, keeps answering health, and holds no refused fd', async () => {
    const d = await startDaemon({ config: 'limits: { max_connections: 4 }\n' });
    const watch = await HealthWatch.start(d.socketPath); // one of the 4 slots
    const held: RawConn[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await RawConn.open(d.socketPath);
      expect((await c.call(1, 'health')).ok).toBe(true); // served: the slots are all taken now
      held.push(c);
    }
    const fdsBefore = fdCount(d.pid);

    await connectAndClose(d.socketPath, 2000);
    expect(d.running, `the daemon exited during the connect-and-close flood; stderr:\n${d.stderr().slice(-2000)}`).toBe(true);

    const stayers: Socket[] = [];
    for (let i = 0; i < 500; i++) {
      const s = await openRaw(d.socketPath);
      if (s !== null) stayers.push(s);
    }
    // Refusals are cut within a second of their answer; the stayers neither read nor close.
    await sleep(2500);
    const fdsAfter = fdCount(d.pid);
    for (const s of stayers) s.destroy();
    await watch.stop();
    console.log(`[connection-flood] fds before ${fdsBefore}, after the flood with 500 stayers still connected ${fdsAfter}; ` +
      `health: ${watch.calls} calls, slowest ${watch.slowestMs} ms`);

    expect(d.running).toBe(true);
    expect(watch.failures).toEqual([]);
    expect(watch.slowestMs).toBeLessThan(5000);
    expect(fdsAfter - fdsBefore, `fds before ${fdsBefore}, after ${fdsAfter}`).toBeLessThan(20);
    // The held connections still work, and a freed slot is usable again.
    expect((await held[0]!.call(2, 'health')).ok).toBe(true);
    held[1]!.close();
    await sleep(200);
    const again = await RawConn.open(d.socketPath);
    expect((await again.call(1, 'health')).ok).toBe(true);
    again.close();
    for (const c of held) c.close();
  }, 60_000);
});
