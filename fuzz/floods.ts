// Connection floods and partial frames for `npm run fuzz -- --mode connections|partial`: a hostile
// local process that opens and drops connections past max_connections, or announces frames it never
// finishes, while a well-behaved client keeps generating and opening data keys beside it.
import { connect, type Socket } from 'node:net';
import { KmsClient } from '../src/rpc/client.js';
import { prng, type FuzzReport } from './frames.js';

export interface FloodOptions {
  socketPath: string;
  keyId: string;
  seconds: number;
  connections: number;
  seed: number;
}

/** Runs attack() on `connections` parallel loops until the time is up, beside a well-behaved client. */
async function beside(options: FloodOptions, attack: (rand: () => number, report: FuzzReport) => Promise<void>): Promise<FuzzReport> {
  const rand = prng(options.seed);
  const deadline = Date.now() + options.seconds * 1000;
  const report: FuzzReport = { framesSent: 0, connectionsOpened: 0, wellBehavedCalls: 0, wellBehavedErrors: [] };
  const client = await KmsClient.connect(options.socketPath, { timeoutMs: 30_000 });
  const wellBehaved = (async () => {
    while (Date.now() < deadline) {
      try {
        const context = { bucket: 'flood', n: String(report.wellBehavedCalls) };
        const dk = await client.generateDataKey(options.keyId, { context });
        const back = await client.decrypt(dk.ciphertext, { context });
        if (dk.plaintext === undefined || !back.plaintext.equals(dk.plaintext)) report.wellBehavedErrors.push('decrypt returned other bytes');
      } catch (err) {
        report.wellBehavedErrors.push((err as Error).message);
      }
      report.wellBehavedCalls += 1;
    }
  })();
  await Promise.all(Array.from({ length: options.connections }, async () => {
    while (Date.now() < deadline) await attack(rand, report);
  }));
  await wellBehaved;
  await client.close();
  return report;
}

function open(path: string, report: FuzzReport): Promise<Socket | null> {
  report.connectionsOpened += 1;
  return new Promise((resolve) => {
    const s = connect(path);
    s.on('error', () => resolve(null));
    s.once('connect', () => resolve(s));
  });
}

/** Connect and close at once, connect and stay silent for a while, or connect and half-close. */
export function runConnectionFlood(options: FloodOptions): Promise<FuzzReport> {
  return beside(options, async (rand, report) => {
    const s = await open(options.socketPath, report);
    if (s === null) return;
    const kind = Math.floor(rand() * 3);
    if (kind === 0) s.destroy();
    else if (kind === 1) setTimeout(() => s.destroy(), Math.floor(rand() * 3000)).unref();
    else s.end();
  });
}

/** Announces a frame of up to 1 MiB, sends part of it (at once or trickled), then leaves or lingers. */
export function runPartialFrames(options: FloodOptions): Promise<FuzzReport> {
  return beside(options, async (rand, report) => {
    const s = await open(options.socketPath, report);
    if (s === null) return;
    s.on('data', () => undefined);
    const announced = 1 + Math.floor(rand() * 1_048_576);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(announced);
    s.write(header);
    report.framesSent += 1;
    const sent = Math.floor(rand() * announced);
    if (rand() < 0.5) s.write(Buffer.alloc(sent, 0x61));
    else for (let i = 0; i < 20 && !s.destroyed; i++) {
      s.write(Buffer.from([0x61]));
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, Math.floor(rand() * 2000)));
    s.destroy();
  });
}
