// A peer that pipelines big-answer requests and never reads must not make the daemon hold their
// answers without bound: it stops starting requests once a connection's unsent answers pass its
// write budget, and serves the rest as the peer reads.
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpack } from 'msgpackr';
import { request } from './wire.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, startDaemon } from '../helpers/daemon.js';
import { KmsClient } from '../../src/rpc/client.js';

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
}

describe('write budget per connection', () => {
  it('1,000 batch requests (about 150 MB of answers) from a peer that does not read keep memory bounded, and all are answered once it reads', async () => {
    const d = await startDaemon();
    const admin = await KmsClient.connect(d.socketPath);
    await admin.createKey('bp');
    await admin.generateDataKey('bp'); // the key's version is unwrapped: every batch below is synchronous
    await admin.close();
    const before = rssMiB(d.pid);

    const N = 1000;
    const socket = connect(d.socketPath);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.pause(); // read nothing yet
    const frames = Array.from({ length: N }, (_, i) => request(i + 1, 'generate_data_key_batch', { key_id: 'bp', count: 1024 }));
    socket.write(Buffer.concat(frames));
    await new Promise((r) => setTimeout(r, 1500));
    const during = rssMiB(d.pid);
    // Without the budget every answer would be built and queued: about 150 MB more.
    expect(during - before, `RSS before ${before.toFixed(1)} MiB, while the peer does not read ${during.toFixed(1)} MiB`).toBeLessThan(60);

    // Now read everything: every request is answered, in full.
    let buffered = Buffer.alloc(0);
    const ids = new Set<number>();
    await new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
          const n = buffered.readUInt32BE(0);
          const answer = unpack(buffered.subarray(4, 4 + n)) as { id: number; ok: boolean; result: { keys: unknown[] } };
          buffered = buffered.subarray(4 + n);
          if (!answer.ok || answer.result.keys.length !== 1024) reject(new Error(`bad answer for ${answer.id}`));
          ids.add(answer.id);
          if (ids.size === N) resolve();
        }
      });
      socket.resume();
    });
    socket.destroy();
    expect(ids.size).toBe(N);
  });
});
