// What hostile input gets, limit by limit: each limit answers with its documented code and a message
// naming the limit (docs/protocol.md §2, §5, §6, §10): frame size, connections, requests in flight
// per connection (back-pressure, not failure), idle timeout, and the per-argument limits.
// Frames are built here with msgpackr directly (not the project's codec), over node:net.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pack, Unpackr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { cleanupTempDirs, killAllDaemons, startDaemon, type DaemonHandle } from '../helpers/daemon.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

// ---- a bare connection ---------------------------------------------------------------------------

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

function frame(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32BE(body.length);
  return Buffer.concat([head, body]);
}

function requestBody(id: number, op: string, args: Record<string, unknown> = {}): Buffer {
  return pack({ id, op, args });
}

class Raw {
  private buf = Buffer.alloc(0);
  readonly answers: any[] = [];
  private wake: (() => void) | undefined;
  closed = false;
  readonly whenClosed: Promise<void>;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buf = Buffer.concat([this.buf, chunk]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readUInt32BE(0)) {
        const n = this.buf.readUInt32BE(0);
        this.answers.push(unpackr.unpack(this.buf.subarray(4, 4 + n)));
        this.buf = this.buf.subarray(4 + n);
      }
      this.wake?.();
    });
    socket.on('error', () => undefined);
    this.whenClosed = new Promise((r) => socket.once('close', () => {
      this.closed = true;
      this.wake?.();
      r();
    }));
  }

  static open(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection({ path });
      s.once('error', reject);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new Raw(s));
      });
    });
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Waits until `n` answers are in (bounded); returns them all. */
  async collect(n: number, timeoutMs = 20_000): Promise<any[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.answers.length < n) {
      if (this.closed) throw new Error(`connection closed after ${this.answers.length} of ${n} answers`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.answers.length} of ${n} answers within ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = undefined;
          r();
        };
      });
    }
    return this.answers;
  }

  async call(id: number, op: string, args: Record<string, unknown> = {}): Promise<any> {
    const before = this.answers.length;
    this.send(frame(requestBody(id, op, args)));
    return (await this.collect(before + 1))[before];
  }

  async closedWithin(ms: number): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.whenClosed.then(() => true), new Promise<boolean>((res) => { t = setTimeout(() => res(false), ms); })]);
    clearTimeout(t);
    return r;
  }

  close(): void {
    this.socket.destroy();
  }
}

function expectError(answer: any, id: number, code: string, message: string): void {
  expect(answer).toEqual({ id, ok: false, error: { code, message } });
}

// ---- frame size -----------------------------------------------------------------------------------

describe('frame size (limits.max_frame_bytes: 4096)', () => {
  let d: DaemonHandle;
  beforeAll(async () => {
    d = await startDaemon({ config: 'limits: { max_frame_bytes: 4096 }\n' });
    const c = await KmsClient.connect(d.socketPath);
    await c.createKey('lim');
    await c.close();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('a frame of exactly 4096 bytes is served; a length prefix of 4097 gets FrameTooLarge naming 4096, then the connection is closed', async () => {
    const overhead = requestBody(1, 'encrypt', { key_id: 'lim', plaintext: Buffer.alloc(1000) }).length - 1000;
    const exact = requestBody(1, 'encrypt', { key_id: 'lim', plaintext: Buffer.alloc(4096 - overhead) });
    expect(exact.length).toBe(4096);
    const c = await Raw.open(d.socketPath);
    const ok = await c.call(1, 'encrypt', { key_id: 'lim', plaintext: Buffer.alloc(4096 - overhead) });
    expect(ok.ok).toBe(true);

    // Only the 4 length bytes: the refusal comes before any body is sent.
    const header = Buffer.alloc(4);
    header.writeUInt32BE(4097);
    c.send(header);
    const [, refusal] = await c.collect(2);
    expectError(refusal, 0, 'FrameTooLarge', 'frame is 4097 bytes; the limit is 4096');
    expect(await c.closedWithin(10_000)).toBe(true);

    // A huge announcement costs the daemon nothing either.
    const c2 = await Raw.open(d.socketPath);
    const huge = Buffer.alloc(4);
    huge.writeUInt32BE(0xffffffff);
    c2.send(huge);
    expectError((await c2.collect(1))[0], 0, 'FrameTooLarge', 'frame is 4294967295 bytes; the limit is 4096');
    expect(await c2.closedWithin(10_000)).toBe(true);
  });

  it('the reference client hears FrameTooLarge for an oversized request, and the daemon keeps serving', async () => {
    const client = await KmsClient.connect(d.socketPath, { timeoutMs: 10_000 });
    await expect(client.encrypt('lim', Buffer.alloc(5000))).rejects.toMatchObject({
      code: 'FrameTooLarge',
      message: expect.stringContaining('the limit is 4096'),
    });
    await client.close();
    const again = await KmsClient.connect(d.socketPath, { timeoutMs: 10_000 });
    expect((await again.health()).healthy).toBe(true);
    await again.close();
  });
});

// ---- connections -----------------------------------------------------------------------------------

describe('connections (limits.max_connections: 3)', () => {
  it('the connection over the limit gets Busy naming the limit and is closed; a slot freed is usable again', async () => {
    const d = await startDaemon({ config: 'limits: { max_connections: 3 }\n' });
    /** A connection the daemon took in (answers health); the harness's readiness probe may still be closing. */
    const served = async (): Promise<Raw> => {
      for (let i = 0; i < 100; i++) {
        const c = await Raw.open(d.socketPath);
        const a = await c.call(1, 'health').catch(() => undefined);
        if (a?.ok === true) return c;
        c.close();
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('no connection slot became free');
    };
    const held = [await served(), await served(), await served()];
    const extra = await Raw.open(d.socketPath);
    expectError((await extra.collect(1))[0], 0, 'Busy', 'too many connections; the limit is 3');
    expect(await extra.closedWithin(10_000)).toBe(true);
    // The three held connections still work.
    for (const [i, c] of held.entries()) expect((await c.call(10 + i, 'health')).ok).toBe(true);
    held[0]!.close();
    const replacement = await served();
    expect((await replacement.call(2, 'status')).result.limits.max_connections).toBe(3);
    for (const c of [replacement, ...held]) c.close();
    await d.stop();
  });
});

// ---- requests in flight per connection ------------------------------------------------------------

describe('requests in flight per connection (limits.max_inflight_per_connection: 4)', () => {
  let d: DaemonHandle;
  beforeAll(async () => {
    d = await startDaemon({ config: 'limits: { max_inflight_per_connection: 4 }\n' });
    const c = await KmsClient.connect(d.socketPath);
    await c.createKey('pipe');
    await c.close();
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('100 pipelined requests in one write are all answered correctly: the daemon stops reading, it does not refuse', async () => {
    const c = await Raw.open(d.socketPath);
    c.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => frame(requestBody(i + 1, 'generate_data_key', { key_id: 'pipe', context: { n: String(i + 1) } })))));
    const keys = await c.collect(100);
    expect(keys.every((a) => a.ok === true)).toBe(true);
    expect(keys.map((a) => a.id).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    const byId = new Map(keys.map((a) => [a.id as number, a.result]));
    c.send(Buffer.concat([...byId].map(([id, r]) => frame(requestBody(1000 + id, 'decrypt', { ciphertext: r.ciphertext, context: { n: String(id) } })))));
    const opened = (await c.collect(200)).slice(100);
    expect(opened.every((a) => a.ok === true)).toBe(true);
    for (const a of opened) expect(Buffer.compare(a.result.plaintext, byId.get(a.id - 1000).plaintext)).toBe(0);
    c.close();
  });

  // How "never more than 4 in flight" is observed: request ids repeat with period 5 (1,2,3,4,5,1,…)
  // and `health` answers asynchronously. A daemon that started a 6th request while the 1st was still
  // running would answer it "request id 1 is already in flight" (docs/protocol.md §4). With the limit
  // at 4, the 6th is only read after an earlier answer went out, so every one succeeds. The same burst
  // against a daemon with the default limit (256) shows the probe does detect it.
  it('no more than the limit is ever in flight (observed through request ids reused with period limit + 1)', async () => {
    const burst = Buffer.concat(Array.from({ length: 100 }, (_, i) => frame(requestBody((i % 5) + 1, 'health'))));
    const c = await Raw.open(d.socketPath);
    c.send(burst);
    const answers = await c.collect(100);
    expect(answers.filter((a) => a.ok !== true)).toEqual([]);
    c.close();

    const control = await startDaemon();
    const cc = await Raw.open(control.socketPath);
    cc.send(burst);
    const controlAnswers = await cc.collect(100);
    const duplicates = controlAnswers.filter((a) => a.ok === false);
    expect(duplicates.length).toBeGreaterThan(0);
    expect(duplicates[0].error.code).toBe('InvalidRequest');
    expect(duplicates[0].error.message).toMatch(/^request id \d is already in flight on this connection$/);
    cc.close();
    await control.stop();
  });

  it('a client that does not read its answers is paused, not failed, and does not stall other connections', async () => {
    const slow = await Raw.open(d.socketPath);
    slow.socket.pause(); // read nothing: ~6 MiB of answers pile up in the socket buffers
    slow.send(Buffer.concat(Array.from({ length: 48 }, (_, i) => frame(requestBody(i + 1, 'generate_data_key_batch', { key_id: 'pipe', count: 1024 })))));
    const other = await Raw.open(d.socketPath);
    for (let i = 1; i <= 20; i++) expect((await other.call(i, 'generate_data_key', { key_id: 'pipe' })).ok).toBe(true);
    other.close();
    slow.socket.resume();
    const answers = await slow.collect(48, 60_000);
    expect(answers.every((a) => a.ok === true && a.result.keys.length === 1024)).toBe(true);
    slow.close();
  });
});

// ---- idle timeout --------------------------------------------------------------------------------

describe('idle timeout (limits.idle_timeout_s: 1)', () => {
  it('the daemon closes a connection that sends nothing, and one that went quiet after a request', async () => {
    const d = await startDaemon({ config: 'limits: { idle_timeout_s: 1 }\n' });
    const silent = await Raw.open(d.socketPath);
    const used = await Raw.open(d.socketPath);
    expect((await used.call(1, 'health')).ok).toBe(true);
    // Bounded waits, not timing assertions: closed at some point within 15 s of a 1 s timeout.
    expect(await silent.closedWithin(15_000)).toBe(true);
    expect(await used.closedWithin(15_000)).toBe(true);
    // The daemon is fine and takes new connections.
    const fresh = await Raw.open(d.socketPath);
    expect((await fresh.call(2, 'health')).ok).toBe(true);
    fresh.close();
    await d.stop();
  });
});

// ---- per-argument limits -------------------------------------------------------------------------

describe('per-argument limits (each refused with its code and a message naming the limit)', () => {
  let d: DaemonHandle;
  let c: KmsClient;
  beforeAll(async () => {
    d = await startDaemon();
    c = await KmsClient.connect(d.socketPath, { timeoutMs: 15_000 });
    await c.createKey('args');
  });
  afterAll(async () => {
    await c?.close();
    await d?.stop();
  });

  const refused = (p: Promise<unknown>, code: string, message: string) => expect(p).rejects.toMatchObject({ code, message });
  const pairs = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));

  it('key id: 128 characters is a valid id, 129 is InvalidKeyId', async () => {
    await expect(c.describeKey('a'.repeat(128))).rejects.toMatchObject({ code: 'KeyNotFound' });
    await expect(c.describeKey('a'.repeat(129))).rejects.toMatchObject({
      code: 'InvalidKeyId',
      message: expect.stringContaining('is not a valid key id (1 to 128 of A-Z a-z 0-9 . _ -'),
    });
    await expect(c.createKey('b'.repeat(129))).rejects.toMatchObject({ code: 'InvalidKeyId' });
  });

  it('context: 64 pairs and 4096 canonical bytes pass; 65 pairs or 4097 bytes are InvalidRequest naming 64 / 4096', async () => {
    await c.generateDataKey('args', { context: pairs(64) });
    await refused(c.generateDataKey('args', { context: pairs(65) }), 'InvalidRequest', 'context has 65 pairs; the limit is 64');
    await refused(c.encrypt('args', Buffer.from('x'), { context: pairs(65) }), 'InvalidRequest', 'context has 65 pairs; the limit is 64');
    // one pair costs 4 + key bytes + value bytes
    await c.generateDataKey('args', { context: { k: 'v'.repeat(4091) } });
    await refused(c.generateDataKey('args', { context: { k: 'v'.repeat(4092) } }), 'InvalidRequest', 'context encodes to 4097 bytes; the limit is 4096');
  });

  it('batch count: 1024 passes, 1025 is InvalidRequest naming 1024', async () => {
    expect((await c.generateDataKeyBatch('args', 1024)).keys).toHaveLength(1024);
    await refused(c.generateDataKeyBatch('args', 1025), 'InvalidRequest', 'count must be an integer from 1 to 1024');
  });

  it('plaintext: 65536 bytes pass, 65537 is InvalidRequest naming 65536; ciphertext over 66048 likewise', async () => {
    await c.encrypt('args', Buffer.alloc(65_536));
    await refused(c.encrypt('args', Buffer.alloc(65_537)), 'InvalidRequest', 'plaintext is 65537 bytes; the limit is 65536');
    await refused(c.decrypt(Buffer.alloc(66_049)), 'InvalidRequest', 'ciphertext is 66049 bytes; the limit is 66048');
    await refused(c.generateDataKey('args', { bytes: 65 }), 'InvalidRequest', 'bytes must be an integer from 16 to 64');
  });

  it('description over 1024 bytes and 51 tags are InvalidRequest naming 1024 / 50, and no key is created', async () => {
    await c.createKey('desc-ok', { description: 'd'.repeat(1024), tags: pairs(50) });
    await refused(c.createKey('desc-long', { description: 'é'.repeat(513) }), 'InvalidRequest', 'description is 1026 bytes; the limit is 1024');
    await refused(c.createKey('tags-many', { tags: pairs(51) }), 'InvalidRequest', 'tags has 51 entries; the limit is 50');
    for (const k of ['desc-long', 'tags-many']) await expect(c.describeKey(k)).rejects.toMatchObject({ code: 'KeyNotFound' });
  });

  it('claimed ctx: a string over 1024 bytes or more than 32 extra pairs is InvalidRequest', async () => {
    await refused(c.health({ ctx: { principal: 'p'.repeat(1025) } }), 'InvalidRequest', 'ctx.principal is 1025 bytes; the limit is 1024');
    await refused(c.health({ ctx: { extra: pairs(33) } }), 'InvalidRequest', 'ctx.extra has more than 32 pairs');
  });

  it('refusals for bad arguments are audited as failures with their code', async () => {
    const lines = readFileSync(join(d.stateDir, 'audit.log'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const failures = lines.filter((l) => l.outcome === 'failure');
    expect(failures.some((l) => l.op === 'generate_data_key_batch' && l.error_code === 'InvalidRequest')).toBe(true);
    expect(failures.some((l) => l.op === 'describe_key' && l.error_code === 'InvalidKeyId')).toBe(true);
    expect(failures.some((l) => l.op === 'create_key' && l.error_code === 'InvalidRequest')).toBe(true);
  });
});
