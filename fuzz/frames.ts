// Hostile-input fuzzer for the socket protocol: random and mutated frames (truncated, oversized
// lengths, wrong types, deep nesting, huge maps, invalid UTF-8, unknown operations, wrong argument
// types) over many connections, while a well-behaved client keeps working alongside. Used by the
// test suite (a fixed number of frames) and by `npm run fuzz -- --seconds N`.
import { connect, type Socket } from 'node:net';
import { pack } from 'msgpackr';
import { KmsClient } from '../src/rpc/client.js';

export interface FuzzOptions {
  socketPath: string;
  keyId: string;
  /** Stop after this many hostile frames… */
  frames?: number;
  /** …or after this many seconds, whichever comes first. */
  seconds?: number;
  connections: number;
  seed: number;
}

export interface FuzzReport {
  framesSent: number;
  connectionsOpened: number;
  wellBehavedCalls: number;
  wellBehavedErrors: string[];
}

/** Small deterministic PRNG (mulberry32) so a failing seed reproduces. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function frame(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32BE(body.length, 0);
  body.copy(out, 4);
  return out;
}

const OPS = ['health', 'status', 'create_key', 'describe_key', 'list_keys', 'enable_key', 'disable_key', 'rotate_key',
  'schedule_key_deletion', 'cancel_key_deletion', 'encrypt', 'decrypt', 'generate_data_key', 'generate_data_key_batch', 're_encrypt'];

/** One hostile frame (or raw bytes) of a randomly chosen kind. */
export function hostileBytes(rand: () => number, keyId: string): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const int = (n: number) => Math.floor(rand() * n);
  const bytes = (n: number) => {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = int(256);
    return b;
  };
  const wrongValues: unknown[] = [null, true, -1, 2 ** 40, 1.5, 'x'.repeat(int(300)), [], {}, bytes(int(40)), [[[1]]], { a: { b: 'c' } }];
  const validArgs = (): Record<string, unknown> => ({ key_id: keyId, plaintext: bytes(int(64)), context: { a: 'b' } });
  switch (int(12)) {
    case 0: // random bytes with a plausible length prefix
      return frame(bytes(int(200)));
    case 1: { // a valid request with bit flips
      const body = pack({ id: int(1000), op: pick(OPS), args: validArgs() });
      for (let i = int(4) + 1; i > 0; i--) body[int(body.length)] ^= 1 << int(8);
      return frame(body);
    }
    case 2: { // truncated frame: length says more than follows (the connection then closes)
      const body = pack({ id: 1, op: 'health', args: {} });
      return frame(body).subarray(0, 4 + int(body.length));
    }
    case 3: { // oversized length announcement
      const b = Buffer.alloc(8);
      b.writeUInt32BE(0x00100001 + int(0x7fffffff), 0);
      return b;
    }
    case 4: // wrong argument types
      return frame(pack({ id: int(1 << 30), op: pick(OPS), args: { key_id: pick(wrongValues), plaintext: pick(wrongValues), ciphertext: pick(wrongValues), count: pick(wrongValues), context: pick(wrongValues), bytes: pick(wrongValues) } }));
    case 5: { // deep nesting: arrays of arrays
      const depth = 40 + int(5000);
      const body = Buffer.alloc(depth + 1, 0x91);
      body[depth] = 0xc0;
      return frame(body);
    }
    case 6: { // huge map / array / str / bin headers with nothing behind them
      return frame(Buffer.from(pick([[0xdf, 0x7f, 0xff, 0xff, 0xff], [0xdd, 0xff, 0xff, 0xff, 0xff], [0xdb, 0x7f, 0xff, 0xff, 0xff], [0xc6, 0x7f, 0xff, 0xff, 0xff]])));
    }
    case 7: { // invalid UTF-8 in op and key id
      const bad = Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0xf0, 0x28, 0x8c, 0xbc]);
      const body = Buffer.concat([Buffer.from([0x83, 0xa2, 0x69, 0x64, 0x01, 0xa2, 0x6f, 0x70, 0xab]), bad, Buffer.from([0xa4, 0x61, 0x72, 0x67, 0x73, 0x80])]);
      return frame(body);
    }
    case 8: // unknown operations
      return frame(pack({ id: int(1000), op: 'op_' + bytes(4).toString('hex'), args: {} }));
    case 9: // not a map at all / missing fields / extension types
      return frame(pick([pack([1, 2, 3]), pack('health'), pack({ op: 'health' }), Buffer.from([0xd6, 0xff, 0, 0, 0, 0]), Buffer.from([0xc7, 0x01, 0x05, 0x00])]));
    case 10: // oversized but legal-looking arguments
      return frame(pack({ id: int(1000), op: 'encrypt', args: { key_id: keyId, plaintext: Buffer.alloc(65537 + int(1000)) } }));
    default: // a valid request among the noise (some must succeed)
      return frame(pack({ id: int(1000), op: pick(['health', 'describe_key', 'generate_data_key']), args: { key_id: keyId } }));
  }
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const rand = prng(options.seed);
  const deadline = Date.now() + (options.seconds ?? 3600) * 1000;
  const limit = options.frames ?? Number.POSITIVE_INFINITY;
  const report: FuzzReport = { framesSent: 0, connectionsOpened: 0, wellBehavedCalls: 0, wellBehavedErrors: [] };
  let done = false;
  const finished = () => done || report.framesSent >= limit || Date.now() >= deadline;

  const client = await KmsClient.connect(options.socketPath, { timeoutMs: 30_000 });
  const wellBehaved = (async () => {
    while (!finished()) {
      try {
        const context = { bucket: 'fuzz', n: String(report.wellBehavedCalls) };
        const dk = await client.generateDataKey(options.keyId, { context });
        const back = await client.decrypt(dk.ciphertext, { context });
        if (dk.plaintext === undefined || !back.plaintext.equals(dk.plaintext)) report.wellBehavedErrors.push('decrypt returned other bytes');
      } catch (err) {
        report.wellBehavedErrors.push((err as Error).message);
      }
      report.wellBehavedCalls += 1;
    }
  })();

  const attacker = async () => {
    while (!finished()) {
      report.connectionsOpened += 1;
      await new Promise<void>((resolve) => {
        const socket: Socket = connect(options.socketPath);
        socket.on('data', () => undefined); // read and discard answers so the daemon is not backpressured forever
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
        socket.on('connect', () => {
          // A burst of frames per connection; the daemon may close on framing errors.
          const burst = 1 + Math.floor(rand() * 200);
          for (let i = 0; i < burst && !finished() && !socket.destroyed; i++) {
            socket.write(hostileBytes(rand, options.keyId));
            report.framesSent += 1;
          }
          socket.end();
        });
        socket.setTimeout(10_000, () => socket.destroy());
      });
    }
  };
  await Promise.all([...Array.from({ length: options.connections }, attacker)]);
  done = true;
  await wellBehaved;
  await client.close();
  return report;
}
