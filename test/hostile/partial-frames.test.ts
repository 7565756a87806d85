// Issue 11, item 5. Hostile local processes announce big frames and never finish them. Figures held:
// 1,000 connections that each announce 1 MiB and send 256 KiB of it (256 MiB in all) grow the
// daemon's RSS by less than 160 MiB (the shared budget limits.max_buffered_bytes, default 64 MiB,
// sheds the rest with Busy); a frame trickled one byte at a time is cut after limits.frame_timeout_s
// although every byte renews the idle timer; `health` answers within 5 s throughout.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Socket } from 'node:net';
import { Unpackr } from 'msgpackr';
import { assertBuilt, cleanupTempDirs, killAllDaemons, startDaemon } from '../helpers/daemon.js';
import { HealthWatch, openRaw, rssMiB, sleep } from './attack.js';

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

const unpackr = new Unpackr({ mapsAsObjects: true, int64AsType: 'number' });

/** Collects the first answer frame a connection gets (if any) and whether the daemon closed it. */
function watchAnswers(s: Socket): { first: () => { code?: string; message?: string } | undefined; closed: () => boolean } {
  let buf = Buffer.alloc(0);
  let first: { code?: string; message?: string } | undefined;
  let closed = false;
  s.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    if (first === undefined && buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      first = (unpackr.unpack(buf.subarray(4, 4 + buf.readUInt32BE(0))) as { error?: { code: string; message: string } }).error ?? {};
    }
  });
  s.on('close', () => {
    closed = true;
  });
  return { first: () => first, closed: () => closed };
}

function header(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

describe('partial frames', () => {
  it('1,000 connections each holding 256 KiB of an announced 1 MiB frame: RSS stays bounded, the excess is shed with Busy', async () => {
    const d = await startDaemon();
    const watch = await HealthWatch.start(d.socketPath);
    await sleep(300);
    const before = rssMiB(d.pid);
    const part = Buffer.alloc(256 * 1024, 0x61);
    const conns: Array<{ s: Socket; w: ReturnType<typeof watchAnswers> }> = [];
    const written: Array<Promise<void>> = [];
    for (let i = 0; i < 1000; i++) {
      const s = await openRaw(d.socketPath);
      if (s === null) continue;
      const w = watchAnswers(s);
      s.write(header(1_048_576));
      written.push(new Promise((resolve) => s.write(part, () => resolve()))); // taken by the kernel, or failed
      conns.push({ s, w });
    }
    await Promise.race([Promise.all(written), sleep(15_000)]);
    await sleep(500);
    const during = rssMiB(d.pid);
    const shed = conns.filter((c) => c.w.first()?.code === 'Busy');
    const sample = shed[0]?.w.first()?.message;
    for (const c of conns) c.s.destroy();
    await watch.stop();
    console.log(`[partial-frames] RSS before ${before.toFixed(1)} MiB, with 1,000 partial frames ${during.toFixed(1)} MiB; ` +
      `shed with Busy: ${shed.length}; health: ${watch.calls} calls, slowest ${watch.slowestMs} ms`);

    expect(d.running).toBe(true);
    expect(watch.failures).toEqual([]);
    expect(watch.slowestMs).toBeLessThan(5000);
    expect(during - before, `RSS before ${before.toFixed(1)} MiB, during ${during.toFixed(1)} MiB`).toBeLessThan(160);
    expect(shed.length).toBeGreaterThan(0);
    expect(sample).toMatch(/the limit is 67108864 \(limits\.max_buffered_bytes\)/);
  }, 60_000);

  it('a frame trickled one byte every 100 ms is cut after limits.frame_timeout_s, naming it; health keeps answering', async () => {
    const d = await startDaemon({ config: 'limits: { frame_timeout_s: 1, idle_timeout_s: 300 }\n' });
    const watch = await HealthWatch.start(d.socketPath);
    const conns: Array<{ s: Socket; w: ReturnType<typeof watchAnswers> }> = [];
    for (let i = 0; i < 50; i++) {
      const s = await openRaw(d.socketPath);
      if (s === null) continue;
      conns.push({ s, w: watchAnswers(s) });
      s.write(header(1000));
    }
    const started = Date.now();
    while (Date.now() - started < 3500 && conns.some((c) => !c.w.closed())) {
      for (const c of conns) if (!c.s.destroyed) c.s.write(Buffer.from([0x61]));
      await sleep(100);
    }
    const cut = conns.filter((c) => c.w.closed()).length;
    const message = conns[0]?.w.first()?.message;
    for (const c of conns) c.s.destroy();
    await watch.stop();
    console.log(`[partial-frames] trickling connections cut within ${((Date.now() - started) / 1000).toFixed(1)} s: ${cut} of ${conns.length}; ` +
      `health slowest ${watch.slowestMs} ms`);

    expect(d.running).toBe(true);
    expect(watch.failures).toEqual([]);
    expect(watch.slowestMs).toBeLessThan(5000);
    expect(cut).toBe(conns.length);
    expect(message).toMatch(/incomplete after 1 s .*limits\.frame_timeout_s/);
  }, 60_000);
});
