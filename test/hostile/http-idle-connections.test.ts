// Issue 11, item 6: idle TCP connections must not lock the admin out. 140 connections that sent
// nothing used to make every signed request reset for over 80 s (a cap that refused newcomers, and
// deadlines checked only every 30 s). Figures held here: while a hostile local process holds 200
// idle connections from 127.0.0.1 (each reopened 20 ms after the daemon closes it), 10 signed
// requests each get their answer within 3 s and the daemon never holds more than 128 connections;
// a connection that sends nothing is closed within 5 s (checked with a 8 s liveness deadline); with
// admin_http.max_connections 16, a flood of 50 from 127.0.0.2 evicts none of 4 connections from 127.0.0.3.
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, waitFor } from '../helpers/daemon.js';
import type { HttpAnswer } from '../http/clients.js';
import { parsePrometheus, sampleValue } from '../http/prometheus.js';
import { R, startAdminDaemon, within, type AdminDaemon } from './admin-daemon.js';

let d: AdminDaemon;

beforeAll(async () => {
  d = await startAdminDaemon();
});

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

/** Holds `count` connections that never send a byte, reopening each one shortly after it is closed. */
class IdleFlood {
  private readonly sockets = new Set<Socket>();
  private running = true;
  connects = 0;
  closedByDaemon = 0;

  constructor(private readonly port: number, count: number, private readonly localAddress = '127.0.0.1') {
    for (let i = 0; i < count; i++) this.open();
  }

  private open(): void {
    if (!this.running) return;
    const s = connect({ host: '127.0.0.1', port: this.port, localAddress: this.localAddress });
    this.sockets.add(s);
    s.on('connect', () => this.connects++);
    s.on('error', () => undefined);
    s.on('close', () => {
      this.sockets.delete(s);
      if (!this.running) return;
      this.closedByDaemon++;
      setTimeout(() => this.open(), 20);
    });
  }

  stop(): void {
    this.running = false;
    for (const s of this.sockets) s.destroy();
  }
}

/** A signed GET that gets its answer within `ms`; a connection reset is retried, as real clients do. */
function signedWithin(path: string, ms: number, what: string): Promise<HttpAnswer> {
  const attempt = async (): Promise<HttpAnswer> => {
    for (;;) {
      try {
        return await d.send('GET', path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET') throw err;
      }
    }
  };
  return within(attempt(), ms, what);
}

describe('idle connections', () => {
  it('200 idle connections held from 127.0.0.1: 10 signed requests each answer within 3 s; at most 128 are held', async () => {
    const flood = new IdleFlood(d.port, 200);
    try {
      await waitFor(() => flood.connects >= 200, 10_000, 'the flood to connect 200 times');
      for (let i = 0; i < 10; i++) {
        expect((await signedWithin(`${R}/status`, 3000, `signed request ${i + 1} during the flood`)).status).toBe(200);
      }
      expect(flood.closedByDaemon).toBeGreaterThan(0); // the cap was reached: the flood really competed
      const metrics = await signedWithin(`${R}/metrics`, 3000, 'metrics during the flood');
      expect(sampleValue(parsePrometheus(metrics.text), 'rustfs_kms_http_connections')).toBeLessThanOrEqual(128);
    } finally {
      flood.stop();
    }
  });

  it('a connection that sends nothing is closed by the daemon within 5 s', async () => {
    const closed = await within(new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port: d.port });
      s.on('error', () => undefined);
      s.on('close', () => resolve(true));
    }), 8000, 'the daemon closing an idle connection');
    expect(closed).toBe(true);
  });

  it('admin_http.max_connections 16: a flood of 50 from 127.0.0.2 evicts its own connections, not the 4 from 127.0.0.3', async () => {
    const small = await startAdminDaemon('', 'max_connections: 16, max_connections_per_source: 16');
    const bystanders: Socket[] = [];
    let bystandersClosed = 0;
    for (let i = 0; i < 4; i++) {
      const s = connect({ host: '127.0.0.1', port: small.port, localAddress: '127.0.0.3' });
      s.on('error', () => undefined);
      s.on('close', () => bystandersClosed++);
      bystanders.push(s);
    }
    await waitFor(() => bystanders.every((s) => !s.connecting), 3000, 'the bystanders to connect');
    const flood = new IdleFlood(small.port, 50, '127.0.0.2');
    try {
      await waitFor(() => flood.connects >= 50 && flood.closedByDaemon >= 20, 3000, 'the flood to pass the cap');
      expect(bystandersClosed).toBe(0);
      const metrics = await within(small.send('GET', `${R}/metrics`), 3000, 'metrics during the flood');
      expect(sampleValue(parsePrometheus(metrics.text), 'rustfs_kms_http_connections')).toBeLessThanOrEqual(16);
    } finally {
      flood.stop();
      for (const s of bystanders) s.destroy();
    }
  });
});
