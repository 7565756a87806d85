// KmsClient against a tiny fake server built in the test from node:net and the codec: this checks
// the client's pipelining, deadlines, error mapping and reconnection, not the daemon.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { KmsClient, keyInfoFromWire } from '../../src/rpc/client.js';
import { FrameReader, decodeMessage, encodeError, encodeFrame, encodeOk, validateRequest } from '../../src/rpc/codec.js';
import { ERROR_CODES, KmsError, type WireKeyInfo, type WireRequest } from '../../src/ops/protocol.js';

// ------------------------------------------------------------------------------------------------------
// Fake server

const dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-client-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let socketNo = 0;

interface Conn {
  socket: net.Socket;
  send(frame: Buffer): void;
  reply(id: number, result: unknown): void;
  fail(id: number, code: string, message: string): void;
}

type Handler = (req: WireRequest, conn: Conn) => void;

class FakeServer {
  readonly path = join(dir, `s${++socketNo}.sock`);
  readonly requests: WireRequest[] = [];
  readonly conns = new Set<Conn>();
  connections = 0;
  private server: net.Server;

  constructor(public handler: Handler) {
    this.server = net.createServer((socket) => {
      this.connections++;
      const reader = new FrameReader(1 << 20);
      const conn: Conn = {
        socket,
        send: (frame) => {
          if (!socket.destroyed) socket.write(frame);
        },
        reply: (id, result) => conn.send(encodeOk(id, result)),
        // a code outside ErrorCode on purpose in one test
        fail: (id, code, message) => conn.send(encodeFrame({ id, ok: false, error: { code, message } })),
      };
      this.conns.add(conn);
      socket.on('close', () => this.conns.delete(conn));
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        for (const body of reader.push(chunk)) {
          const req = validateRequest(decodeMessage(body));
          this.requests.push(req);
          this.handler(req, conn);
        }
      });
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  /** Stops listening and drops every connection. */
  stop(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  dropConnections(): void {
    for (const c of this.conns) c.socket.destroy();
  }
}

const servers: FakeServer[] = [];
const clients: KmsClient[] = [];

async function start(handler: Handler): Promise<FakeServer> {
  const s = new FakeServer(handler);
  await s.listen();
  servers.push(s);
  return s;
}

async function connect(s: FakeServer, options: Parameters<typeof KmsClient.connect>[1] = {}): Promise<KmsClient> {
  const c = await KmsClient.connect(s.path, options);
  clients.push(c);
  return c;
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

function keyInfo(keyId: string, extra: Partial<WireKeyInfo> = {}): WireKeyInfo {
  return {
    key_id: keyId,
    state: 'Enabled',
    current_version: 1,
    versions: 1,
    algorithm: 'XAES-256-GCM',
    origin: 'local',
    created_at: 1_700_000_000_000,
    description: '',
    tags: {},
    ...extra,
  };
}

async function caught(p: Promise<unknown>): Promise<KmsError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KmsError);
    return err as KmsError;
  }
  throw new Error('expected a rejection');
}

/** Resolves when cond() holds (polling), for waiting on the fake server. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 2));
}

/** A handler answering like the daemon would, for the typed-method tests. */
const echoHandler: Handler = (req, conn) => {
  const a = req.args;
  switch (req.op) {
    case 'health':
      return conn.reply(req.id, { healthy: true, backend: 'local/file', version: '0.1.0' });
    case 'describe_key':
    case 'create_key':
      return conn.reply(req.id, keyInfo(a.key_id as string));
    case 'generate_data_key': {
      const n = (a.bytes as number | undefined) ?? 32;
      const r: Record<string, unknown> = { ciphertext: Buffer.alloc(n + 40, 2), key_id: a.key_id, key_version: 3 };
      if (a.without_plaintext !== true) r.plaintext = Buffer.alloc(n, 1);
      return conn.reply(req.id, r);
    }
    default:
      return conn.fail(req.id, 'UnknownOperation', `unknown operation "${req.op}"`);
  }
};

// ------------------------------------------------------------------------------------------------------

describe('KmsClient', () => {
  it('pipelines 1,000 calls on one connection and matches answers given in any order', async () => {
    const held: Array<{ req: WireRequest; conn: Conn }> = [];
    const s = await start((req, conn) => {
      held.push({ req, conn });
      if (held.length < 1000) return;
      // Answer everything at once, in a scrambled order.
      const order = held.splice(0).sort((x, y) => ((x.req.id * 7919) % 1009) - ((y.req.id * 7919) % 1009));
      for (const { req: r, conn: c } of order) {
        const n = Number((r.args.key_id as string).slice(1));
        if (r.op === 'describe_key') c.reply(r.id, keyInfo(r.args.key_id as string, { current_version: n + 1 }));
        else c.reply(r.id, { plaintext: Buffer.from([n & 0xff, n >> 8]), ciphertext: Buffer.alloc(10, n & 0xff), key_id: r.args.key_id, key_version: n });
      }
    });
    const c = await connect(s);
    const calls = Array.from({ length: 1000 }, (_, i) =>
      i % 2 === 0 ? c.describeKey(`k${i}`) : c.generateDataKey(`k${i}`, { bytes: 16 }),
    );
    expect(c.inFlight).toBe(1000);
    const results = await Promise.all(calls);
    results.forEach((r, i) => {
      if (i % 2 === 0) {
        expect(r).toMatchObject({ keyId: `k${i}`, currentVersion: i + 1 });
      } else {
        expect(r).toMatchObject({ keyId: `k${i}`, keyVersion: i });
        expect((r as { plaintext: Buffer }).plaintext).toEqual(Buffer.from([i & 0xff, i >> 8]));
      }
    });
    expect(s.connections).toBe(1);
    expect(new Set(s.requests.map((r) => r.id)).size).toBe(1000);
    expect(c.inFlight).toBe(0);
  });

  it('sends snake_case arguments and the operation context, and returns camelCase results', async () => {
    const s = await start(echoHandler);
    const c = await connect(s, { ctx: { principal: 'svc', extra: { a: '1' } } });
    const dk = await c.generateDataKey('data', { bytes: 24, context: { bucket: 'b' }, withoutPlaintext: false }, { ctx: { request_id: 'r-9', extra: { b: '2' } } });
    expect(s.requests[0]).toEqual({
      id: s.requests[0]?.id,
      op: 'generate_data_key',
      args: { key_id: 'data', bytes: 24, context: { bucket: 'b' }, without_plaintext: false },
      ctx: { principal: 'svc', request_id: 'r-9', extra: { a: '1', b: '2' } },
    });
    expect(dk.keyId).toBe('data');
    expect(dk.keyVersion).toBe(3);
    expect(Buffer.isBuffer(dk.plaintext)).toBe(true);
    expect(dk.plaintext?.length).toBe(24);
    expect(Buffer.isBuffer(dk.ciphertext)).toBe(true);

    const sealedOnly = await c.generateDataKey('data', { withoutPlaintext: true });
    expect(sealedOnly.plaintext).toBeUndefined();
    expect(s.requests[1]?.args).toEqual({ key_id: 'data', without_plaintext: true });
    expect(s.requests[1]?.ctx).toEqual({ principal: 'svc', extra: { a: '1' } });

    const info = await c.createKey('new-key', { description: 'd', tags: { t: 'v' }, rotationPeriodDays: 90 });
    expect(s.requests[2]?.args).toEqual({ key_id: 'new-key', description: 'd', tags: { t: 'v' }, rotation_period_days: 90 });
    expect(info).toEqual({
      keyId: 'new-key',
      state: 'Enabled',
      currentVersion: 1,
      versions: 1,
      algorithm: 'XAES-256-GCM',
      origin: 'local',
      createdAt: 1_700_000_000_000,
      description: '',
      tags: {},
    });
    expect(await c.health()).toEqual({ healthy: true, backend: 'local/file', version: '0.1.0' });
    expect(await c.call('health', {})).toEqual({ healthy: true, backend: 'local/file', version: '0.1.0' });
  });

  it('converts every typed result from the wire', async () => {
    const s = await start((req, conn) => {
      switch (req.op) {
        case 'list_keys':
          return conn.reply(req.id, { keys: [keyInfo('a', { rotated_at: 5, deletion_date: 6, rotation_period_days: 7 }), keyInfo('b')], next_marker: 'b', truncated: true });
        case 'status':
          return conn.reply(req.id, {
            root_type: 'local', keystore_type: 'file', endpoint: '/var/lib/rustfs-kms', key_count: 2, uptime_ms: 1234,
            limits: { max_frame_bytes: 1048576, max_plaintext_bytes: 65536, max_batch_count: 1024, max_list_limit: 1000, max_connections: 1024, max_inflight_per_connection: 256 },
          });
        case 'encrypt':
        case 're_encrypt':
          return conn.reply(req.id, { ciphertext: Buffer.from('ct'), key_id: 'k', key_version: 2 });
        case 'decrypt':
          return conn.reply(req.id, { plaintext: Buffer.from('pt'), key_id: 'k', key_version: 2 });
        case 'generate_data_key_batch':
          return conn.reply(req.id, { key_id: 'k', key_version: 2, keys: Array.from({ length: req.args.count as number }, (_, i) => ({ plaintext: Buffer.from([i]), ciphertext: Buffer.from([i, i]) })) });
        default:
          return conn.reply(req.id, keyInfo(req.args.key_id as string, { state: 'Disabled' }));
      }
    });
    const c = await connect(s);
    const list = await c.listKeys({ prefix: 'a', limit: 2, marker: '0' });
    expect(s.requests.at(-1)?.args).toEqual({ prefix: 'a', limit: 2, marker: '0' });
    expect(list.truncated).toBe(true);
    expect(list.nextMarker).toBe('b');
    expect(list.keys[0]).toMatchObject({ keyId: 'a', rotatedAt: 5, deletionDate: 6, rotationPeriodDays: 7 });
    expect(list.keys[1]).not.toHaveProperty('rotatedAt');
    expect((await c.status()).limits.maxInflightPerConnection).toBe(256);
    expect(await c.status()).toMatchObject({ rootType: 'local', keystoreType: 'file', keyCount: 2, uptimeMs: 1234 });
    expect(await c.encrypt('k', Buffer.from('x'), { context: { a: 'b' } })).toEqual({ ciphertext: Buffer.from('ct'), keyId: 'k', keyVersion: 2 });
    expect(s.requests.at(-1)?.args).toEqual({ key_id: 'k', plaintext: Buffer.from('x'), context: { a: 'b' } });
    expect(await c.decrypt(Buffer.from('ct'))).toEqual({ plaintext: Buffer.from('pt'), keyId: 'k', keyVersion: 2 });
    expect(await c.reEncrypt(Buffer.from('ct'), { destinationKeyId: 'k2' })).toEqual({ ciphertext: Buffer.from('ct'), keyId: 'k', keyVersion: 2 });
    expect(s.requests.at(-1)?.args).toEqual({ ciphertext: Buffer.from('ct'), destination_key_id: 'k2' });
    const batch = await c.generateDataKeyBatch('k', 3, { bytes: 16 });
    expect(s.requests.at(-1)?.args).toEqual({ key_id: 'k', count: 3, bytes: 16 });
    expect(batch.keys).toEqual([0, 1, 2].map((i) => ({ plaintext: Buffer.from([i]), ciphertext: Buffer.from([i, i]) })));
    for (const [call, op] of [
      [() => c.enableKey('k'), 'enable_key'],
      [() => c.disableKey('k'), 'disable_key'],
      [() => c.rotateKey('k'), 'rotate_key'],
      [() => c.cancelKeyDeletion('k'), 'cancel_key_deletion'],
      [() => c.scheduleKeyDeletion('k', 7), 'schedule_key_deletion'],
    ] as const) {
      expect((await call()).state).toBe('Disabled');
      expect(s.requests.at(-1)?.op).toBe(op);
    }
    expect(s.requests.at(-1)?.args).toEqual({ key_id: 'k', pending_days: 7 });
    expect(keyInfoFromWire(keyInfo('z', { rotated_at: null as unknown as number }))).not.toHaveProperty('rotatedAt');
  });

  it('maps every error code of an answer to a KmsError, unknown codes to Internal', async () => {
    const s = await start((req, conn) => conn.fail(req.id, req.args.code as string, `failed with ${req.args.code}`));
    const c = await connect(s);
    for (const code of ERROR_CODES) {
      const e = await caught(c.call('describe_key', { key_id: 'x', code } as never));
      expect(e.code).toBe(code);
      expect(e.message).toBe(`failed with ${code}`);
    }
    const e = await caught(c.call('describe_key', { key_id: 'x', code: 'QuotaExceeded' } as never));
    expect(e.code).toBe('Internal');
    expect(e.message).toBe('failed with QuotaExceeded');
    // The connection is fine after errors.
    expect(c.connected).toBe(true);
  });

  it('rejects a call that gets no answer within its deadline with BackendUnavailable', async () => {
    const s = await start((req, conn) => {
      if (req.op === 'health') conn.reply(req.id, { healthy: true, backend: 'x', version: 'y' });
      // 'describe_key' is never answered.
    });
    const c = await connect(s, { timeoutMs: 60 });
    const perCall = caught(c.describeKey('slow', { timeoutMs: 30 }));
    const byDefault = caught(c.describeKey('slow'));
    const e1 = await perCall;
    expect(e1.code).toBe('BackendUnavailable');
    expect(e1.message).toMatch(/^no answer within 30 ms/);
    const e2 = await byDefault;
    expect(e2.message).toMatch(/^no answer within 60 ms/);
    expect(c.inFlight).toBe(0);
    // The connection survives; a late answer to a timed-out call is ignored.
    const conn = [...s.conns][0] as Conn;
    conn.reply(s.requests[0]?.id as number, keyInfo('late'));
    expect((await c.health({ timeoutMs: 10_000 })).healthy).toBe(true);
    expect(s.connections).toBe(1);
  });

  it('fails in-flight calls when the server closes the connection, then reconnects on the next call', async () => {
    const s = await start((req, conn) => {
      if (req.op === 'describe_key' && req.args.key_id === 'hang') {
        if (s.requests.filter((r) => r.args.key_id === 'hang').length === 3) conn.socket.destroy();
        return;
      }
      echoHandler(req, conn);
    });
    const c = await connect(s, { reconnect: { initialDelayMs: 5 } });
    const inflight = [c.describeKey('hang'), c.describeKey('hang'), c.describeKey('hang')].map(caught);
    for (const e of await Promise.all(inflight)) {
      expect(e.code).toBe('BackendUnavailable');
      expect(e.message).toMatch(new RegExp(`^connection to ${s.path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} lost`));
    }
    await until(() => !c.connected);
    // The next calls reconnect (and wait for it) and succeed.
    const again = await Promise.all([c.describeKey('k1'), c.health(), c.describeKey('k2')]);
    expect(again[0].keyId).toBe('k1');
    expect(again[1].healthy).toBe(true);
    expect(again[2].keyId).toBe('k2');
    expect(s.connections).toBe(2);
    expect(c.connected).toBe(true);
  });

  it('fails every in-flight call when the server refuses a frame with FrameTooLarge (id 0)', async () => {
    const s = await start((req, conn) => {
      if (req.op === 'encrypt') {
        conn.socket.end(encodeError(0, 'FrameTooLarge', 'frame is 2000000 bytes; the limit is 1048576'));
      }
      // other calls stay unanswered
    });
    const c = await connect(s, { reconnect: { initialDelayMs: 5 } });
    const waiting = [c.describeKey('a'), c.describeKey('b')].map(caught);
    await until(() => s.requests.length === 2);
    const big = caught(c.encrypt('k', Buffer.alloc(10)));
    for (const e of await Promise.all([...waiting, big])) {
      expect(e.code).toBe('FrameTooLarge');
      expect(e.message).toBe('frame is 2000000 bytes; the limit is 1048576');
    }
    expect(c.inFlight).toBe(0);
    s.handler = echoHandler;
    expect((await c.describeKey('after')).keyId).toBe('after');
    expect(s.connections).toBe(2);
  });

  it('refuses locally a request above maxFrameBytes without sending it', async () => {
    const s = await start(echoHandler);
    const c = await connect(s, { maxFrameBytes: 1000 });
    const e = await caught(c.encrypt('k', Buffer.alloc(2000)));
    expect(e.code).toBe('FrameTooLarge');
    expect(e.message).toMatch(/^encrypt request is \d+ bytes; the limit is 1000$/);
    expect((await c.health()).healthy).toBe(true);
    expect(s.requests.map((r) => r.op)).toEqual(['health']);
  });

  it('gives up after the configured reconnect attempts, then tries again on a later call', async () => {
    const s = await start(echoHandler);
    const c = await connect(s, { reconnect: { initialDelayMs: 1, maxDelayMs: 4, maxAttempts: 3 } });
    await s.stop();
    await until(() => !c.connected);
    const e = await caught(c.health());
    expect(e.code).toBe('BackendUnavailable');
    expect(e.message).toMatch(/^cannot reconnect to .* after 3 attempts: /);
    // The daemon comes back on the same path.
    const back = new FakeServer(echoHandler);
    Object.defineProperty(back, 'path', { value: s.path });
    await back.listen();
    servers.push(back);
    expect((await c.health()).healthy).toBe(true);
  });

  it('with reconnect disabled, calls after a loss fail at once', async () => {
    const s = await start(echoHandler);
    const c = await connect(s, { reconnect: false });
    s.dropConnections();
    await until(() => !c.connected);
    const e = await caught(c.health());
    expect(e.code).toBe('BackendUnavailable');
    expect(e.message).toMatch(/reconnect is disabled/);
    expect(s.connections).toBe(1);
  });

  it('drops a connection whose server sends something that is not a valid answer', async () => {
    const s = await start((req, conn) => {
      if (req.op === 'health') conn.send(encodeFrame({ id: req.id, result: 1 }));
    });
    const c = await connect(s);
    const pending = caught(c.describeKey('x'));
    const e = await caught(c.health());
    expect(e.code).toBe('BackendUnavailable');
    expect(e.message).toMatch(/malformed answer: response ok must be a boolean/);
    expect((await pending).code).toBe('BackendUnavailable');
  });

  it('allocates ids from 1, wraps at 2^32-1 without 0, and skips ids still in flight', async () => {
    const s = await start((req, conn) => {
      if (req.op === 'health') conn.reply(req.id, { healthy: true, backend: 'x', version: 'y' });
    });
    const c = await connect(s);
    const slow = c.describeKey('held'); // id 1, never answered
    void slow.catch(() => undefined);
    await c.health(); // id 2
    Reflect.set(c, 'nextId', 0xffffffff);
    await c.health();
    await c.health(); // would be 1, which is in flight → 2
    expect(s.requests.map((r) => r.id)).toEqual([1, 2, 0xffffffff, 2]);
  });

  it('fails outstanding calls on close() and refuses calls afterwards', async () => {
    const s = await start(() => undefined);
    const c = await connect(s);
    const pending = caught(c.health());
    await until(() => s.requests.length === 1);
    await c.close();
    expect((await pending).code).toBe('BackendUnavailable');
    const e = await caught(c.health());
    expect(e.message).toMatch(/was closed/);
    await c.close(); // idempotent
  });

  it('fails to connect to a socket nobody listens on', async () => {
    const e = await caught(KmsClient.connect(join(dir, 'nobody.sock')));
    expect(e.code).toBe('BackendUnavailable');
    expect(e.message).toMatch(/^cannot connect to .*nobody\.sock: .*ENOENT/);
  });
});
