// The protocol with hand-built frames and no project client code: a MessagePack encoder written in
// the test (./wire.ts), a 4-byte big-endian length, a bare net.Socket; answers decoded with msgpackr.
// Checks that the daemon's answers have exactly the shapes docs/protocol.md gives, that ids are
// echoed and pipelined answers can be matched by id, and that the document's worked hex dumps are
// what the daemon really sends and accepts.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, repoRoot, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { Encoded, RawConn, frame, map16, mp, request, str8, uint64, unpack, type MpValue } from './wire.js';

function float64(n: number): Encoded {
  const b = Buffer.alloc(9);
  b[0] = 0xcb;
  b.writeDoubleBE(n, 1);
  return new Encoded(b);
}

const doc = readFileSync(join(repoRoot, 'docs', 'protocol.md'), 'utf8');

/** Bytes of a `offset  hex hex …` dump. */
function parseDump(text: string): Buffer {
  const bytes: number[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*[0-9a-f]{8}\s+(.*)$/i.exec(line);
    if (m === null) continue;
    for (const h of (m[1] as string).trim().split(/\s+/)) bytes.push(Number.parseInt(h, 16));
  }
  return Buffer.from(bytes);
}

/** The first ```hex block after the heading that introduces the worked examples. */
function firstWorkedExample(): Buffer {
  const heading = /^#{2,3} .*worked example.*$/im.exec(doc);
  if (heading === null) throw new Error('docs/protocol.md has no "Worked examples" heading');
  const rest = doc.slice(heading.index);
  const block = /```hex\n([\s\S]*?)\n```/.exec(rest);
  if (block === null) throw new Error('no ```hex block after the worked-examples heading');
  return parseDump(block[1] as string);
}

/** The dump marked `<!-- frame: NAME -->`. */
function docFrame(name: string): Buffer {
  const m = new RegExp(`<!-- frame: ${name} -->\\n\`\`\`hex\\n([\\s\\S]*?)\\n\`\`\``).exec(doc);
  if (m === null) throw new Error(`docs/protocol.md has no frame dump named ${name}`);
  return parseDump(m[1] as string);
}

// ---- shape checks ------------------------------------------------------------------------------

const isInt = (v: unknown) => typeof v === 'number' && Number.isInteger(v);

function expectKeys(obj: unknown, required: string[], optional: string[] = []): void {
  expect(typeof obj === 'object' && obj !== null && !Array.isArray(obj) && !Buffer.isBuffer(obj)).toBe(true);
  const keys = Object.keys(obj as object);
  for (const k of required) expect(keys, `missing ${k}`).toContain(k);
  for (const k of keys) expect([...required, ...optional], `unexpected field ${k}`).toContain(k);
}

const KEYINFO_REQUIRED = ['key_id', 'state', 'current_version', 'versions', 'algorithm', 'origin', 'created_at', 'description', 'tags'];
const KEYINFO_OPTIONAL = ['rotated_at', 'deletion_date', 'rotation_period_days'];

function expectKeyInfo(k: any, keyId: string): void {
  expectKeys(k, KEYINFO_REQUIRED, KEYINFO_OPTIONAL);
  expect(k.key_id).toBe(keyId);
  expect(['Enabled', 'Disabled', 'PendingDeletion']).toContain(k.state);
  expect(isInt(k.current_version) && k.current_version >= 1).toBe(true);
  expect(isInt(k.versions) && k.versions >= 1).toBe(true);
  expect(k.algorithm).toBe('XAES-256-GCM');
  expect(k.origin).toBe('local');
  expect(isInt(k.created_at) && k.created_at > 2 ** 32).toBe(true);
  expect(typeof k.description).toBe('string');
  expectKeys(k.tags, Object.keys(k.tags));
  for (const v of Object.values(k.tags)) expect(typeof v).toBe('string');
  if ('rotated_at' in k) expect(isInt(k.rotated_at)).toBe(true);
  if ('deletion_date' in k) expect(isInt(k.deletion_date)).toBe(true);
  if ('rotation_period_days' in k) expect(isInt(k.rotation_period_days)).toBe(true);
  expect('deletion_date' in k).toBe(k.state === 'PendingDeletion');
}

function expectOk(answer: any, id: number): any {
  expectKeys(answer, ['id', 'ok', 'result']);
  expect(answer.id).toBe(id);
  expect(answer.ok, JSON.stringify(answer)).toBe(true);
  return answer.result;
}

function expectError(answer: any, id: number, code: string, ...mentions: string[]): string {
  expectKeys(answer, ['id', 'ok', 'error']);
  expect(answer.id).toBe(id);
  expect(answer.ok).toBe(false);
  expectKeys(answer.error, ['code', 'message']);
  expect(answer.error.code, answer.error.message).toBe(code);
  expect(typeof answer.error.message).toBe('string');
  for (const m of mentions) expect(answer.error.message).toContain(m);
  return answer.error.message as string;
}

/** The byte that follows the fixstr map key `name` in a raw frame (the type byte of its value). */
function typeByteAfterKey(raw: Buffer, name: string): number {
  const key = Buffer.concat([Buffer.from([0xa0 | name.length]), Buffer.from(name)]);
  const at = raw.indexOf(key);
  expect(at, `${name} not in the frame`).toBeGreaterThanOrEqual(0);
  return raw[at + key.length] as number;
}

// ---- the daemon ---------------------------------------------------------------------------------

let daemon: DaemonHandle;
const conns: RawConn[] = [];

async function connect(): Promise<RawConn> {
  const c = await RawConn.open(daemon.socketPath);
  conns.push(c);
  return c;
}

beforeAll(async () => {
  daemon = await startDaemon();
});

afterEach(() => {
  for (const c of conns.splice(0)) c.close();
});

afterAll(async () => {
  if (daemon?.running) expect(await daemon.stop()).toBe(0);
  await killAllDaemons();
  cleanupTempDirs();
});

describe('worked examples of docs/protocol.md §12', () => {
  it('the first worked example (health request) is answered with the documented response shape', async () => {
    const requestFrame = firstWorkedExample();
    expect(requestFrame.readUInt32BE(0)).toBe(requestFrame.length - 4);
    const c = await connect();
    c.send(requestFrame);
    const answer = await c.next();
    const result = expectOk(answer.value, 1);
    expectKeys(result, ['healthy', 'backend', 'version']);
    expect(result.healthy).toBe(true);
    expect(result.backend).toBe('local/file');
    expect(typeof result.version).toBe('string');
    // The documented answer (§12.2) is byte for byte what this daemon sends, version included when it
    // is the documented one.
    const documented = docFrame('health-response');
    const docVersion = /"version": "([^"]+)"/.exec(doc)?.[1];
    if (result.version === docVersion) expect(answer.raw.toString('hex')).toBe(documented.toString('hex'));
    else expect(answer.raw.length - documented.length).toBe(Buffer.byteLength(result.version) - Buffer.byteLength(docVersion ?? ''));
  });

  it('§12.3 generate_data_key request gets a §12.4-shaped answer, identical outside the random bytes', async () => {
    const c = await connect();
    expectOk(await c.call(100, 'create_key', { key_id: 'rustfs-default' }), 100);
    c.send(docFrame('generate-data-key-request'));
    const answer = await c.next();
    const result = expectOk(answer.value, 2);
    expectKeys(result, ['plaintext', 'ciphertext', 'key_id', 'key_version']);
    expect(Buffer.isBuffer(result.plaintext)).toBe(true);
    expect(result.plaintext.length).toBe(32);
    expect(Buffer.isBuffer(result.ciphertext)).toBe(true);
    expect(result.ciphertext.length).toBe(93);
    expect(result.key_id).toBe('rustfs-default');
    expect(result.key_version).toBe(1);

    const documented = docFrame('generate-data-key-response');
    expect(answer.raw.length).toBe(documented.length);
    // Placeholders in the document: plaintext 0x21..0x40, nonce + sealed key + tag 0x63..0xaa.
    const mask = (b: Buffer) => {
      const m = Buffer.from(b);
      m.fill(0, 0x21, 0x41);
      m.fill(0, 0x63, 0xab);
      return m.toString('hex');
    };
    expect(mask(answer.raw)).toBe(mask(documented));

    // the data key opens with the same context, not without it
    const opened = expectOk(await c.call(101, 'decrypt', { ciphertext: result.ciphertext, context: { bucket: 'photos' } }), 101);
    expect(opened.plaintext.equals(result.plaintext)).toBe(true);
    expectError(await c.call(102, 'decrypt', { ciphertext: result.ciphertext }), 102, 'InvalidCiphertext');
  });

  it('§12.5 error answer is byte for byte what the daemon sends for describe_key "nope"', async () => {
    const c = await connect();
    c.send(request(3, 'describe_key', { key_id: 'nope' }));
    const answer = await c.next();
    expectError(answer.value, 3, 'KeyNotFound', 'nope');
    expect(answer.raw.toString('hex')).toBe(docFrame('error-response').toString('hex'));
  });
});

describe('every operation with hand-built frames', () => {
  it('health and status', async () => {
    const c = await connect();
    const h = expectOk(await c.call(1, 'health', {}), 1);
    expectKeys(h, ['healthy', 'backend', 'version']);
    expect(typeof h.healthy).toBe('boolean');
    const s = expectOk(await c.call(2, 'status'), 2); // args absent = {}
    // audit_head is being added to status (not in docs/protocol.md §7 yet): allowed, shape-checked.
    expectKeys(s, ['root_type', 'keystore_type', 'endpoint', 'key_count', 'uptime_ms', 'limits'], ['audit_head']);
    if ('audit_head' in s) {
      expectKeys(s.audit_head, ['seq', 'hash']);
      expect(isInt(s.audit_head.seq)).toBe(true);
      expect(typeof s.audit_head.hash).toBe('string');
    }
    expect(s.root_type).toBe('local');
    expect(s.keystore_type).toBe('file');
    expect(s.endpoint).toBe(daemon.stateDir);
    expect(isInt(s.key_count)).toBe(true);
    expect(isInt(s.uptime_ms)).toBe(true);
    expectKeys(s.limits, ['max_frame_bytes', 'max_plaintext_bytes', 'max_batch_count', 'max_list_limit', 'max_connections', 'max_inflight_per_connection']);
    for (const v of Object.values(s.limits)) expect(isInt(v)).toBe(true);
    expect(s.limits.max_frame_bytes).toBe(1_048_576);
  });

  it('key lifecycle operations answer KeyInfo maps; times are int64 on the wire', async () => {
    const c = await connect();
    c.send(request(10, 'create_key', { key_id: 'raw-life', description: 'd', tags: { a: 'b' }, rotation_period_days: 30 }));
    const created = await c.next();
    const info = expectOk(created.value, 10);
    expectKeyInfo(info, 'raw-life');
    expect(info).toMatchObject({ state: 'Enabled', current_version: 1, versions: 1, description: 'd', tags: { a: 'b' }, rotation_period_days: 30 });
    expect(info).not.toHaveProperty('rotated_at');
    expect(typeByteAfterKey(created.raw, 'created_at')).toBe(0xd3);

    expectKeyInfo(expectOk(await c.call(11, 'describe_key', { key_id: 'raw-life' }), 11), 'raw-life');
    expect(expectOk(await c.call(12, 'disable_key', { key_id: 'raw-life' }), 12).state).toBe('Disabled');
    expect(expectOk(await c.call(13, 'enable_key', { key_id: 'raw-life' }), 13).state).toBe('Enabled');

    c.send(request(14, 'rotate_key', { key_id: 'raw-life' }));
    const rotated = await c.next();
    const r = expectOk(rotated.value, 14);
    expectKeyInfo(r, 'raw-life');
    expect(r.current_version).toBe(2);
    expect(r.versions).toBe(2);
    expect(isInt(r.rotated_at)).toBe(true);
    expect(typeByteAfterKey(rotated.raw, 'rotated_at')).toBe(0xd3);

    c.send(request(15, 'schedule_key_deletion', { key_id: 'raw-life', pending_days: 7 }));
    const scheduled = await c.next();
    const s = expectOk(scheduled.value, 15);
    expectKeyInfo(s, 'raw-life');
    expect(s.state).toBe('PendingDeletion');
    expect(typeByteAfterKey(scheduled.raw, 'deletion_date')).toBe(0xd3);

    const cancelled = expectOk(await c.call(16, 'cancel_key_deletion', { key_id: 'raw-life' }), 16);
    expectKeyInfo(cancelled, 'raw-life');
    expect(cancelled.state).toBe('Disabled');
  });

  it('list_keys answers { keys, truncated[, next_marker] }', async () => {
    const c = await connect();
    for (let i = 0; i < 3; i++) expectOk(await c.call(20 + i, 'create_key', { key_id: `raw-list-${i}` }), 20 + i);
    const p1 = expectOk(await c.call(30, 'list_keys', { prefix: 'raw-list-', limit: 2 }), 30);
    expectKeys(p1, ['keys', 'truncated', 'next_marker']);
    expect(Array.isArray(p1.keys)).toBe(true);
    expect(p1.keys).toHaveLength(2);
    p1.keys.forEach((k: any, i: number) => expectKeyInfo(k, `raw-list-${i}`));
    expect(p1.truncated).toBe(true);
    expect(p1.next_marker).toBe('raw-list-1');
    const p2 = expectOk(await c.call(31, 'list_keys', { prefix: 'raw-list-', limit: 2, marker: p1.next_marker }), 31);
    expectKeys(p2, ['keys', 'truncated']);
    expect(p2.keys.map((k: any) => k.key_id)).toEqual(['raw-list-2']);
    expect(p2.truncated).toBe(false);
  });

  it('encrypt, decrypt, generate_data_key(_batch) and re_encrypt answer bin where bytes travel', async () => {
    const c = await connect();
    expectOk(await c.call(40, 'create_key', { key_id: 'raw-data' }), 40);
    const context = { bucket: 'b', object: 'o' };

    const enc = expectOk(await c.call(41, 'encrypt', { key_id: 'raw-data', plaintext: Buffer.from('hello'), context }), 41);
    expectKeys(enc, ['ciphertext', 'key_id', 'key_version']);
    expect(Buffer.isBuffer(enc.ciphertext)).toBe(true);
    expect(enc.ciphertext.length).toBe(7 + 8 + 24 + 5 + 16);
    expect(enc).toMatchObject({ key_id: 'raw-data', key_version: 1 });

    const dec = expectOk(await c.call(42, 'decrypt', { ciphertext: enc.ciphertext, context }), 42);
    expectKeys(dec, ['plaintext', 'key_id', 'key_version']);
    expect(Buffer.isBuffer(dec.plaintext)).toBe(true);
    expect(dec.plaintext.toString()).toBe('hello');
    expect(dec).toMatchObject({ key_id: 'raw-data', key_version: 1 });

    const dk = expectOk(await c.call(43, 'generate_data_key', { key_id: 'raw-data', bytes: 48 }), 43);
    expectKeys(dk, ['plaintext', 'ciphertext', 'key_id', 'key_version']);
    expect(Buffer.isBuffer(dk.plaintext) && dk.plaintext.length === 48).toBe(true);
    expect(Buffer.isBuffer(dk.ciphertext)).toBe(true);

    const sealedOnly = expectOk(await c.call(44, 'generate_data_key', { key_id: 'raw-data', without_plaintext: true }), 44);
    expectKeys(sealedOnly, ['ciphertext', 'key_id', 'key_version']);
    expect(expectOk(await c.call(45, 'decrypt', { ciphertext: sealedOnly.ciphertext }), 45).plaintext.length).toBe(32);

    const batch = expectOk(await c.call(46, 'generate_data_key_batch', { key_id: 'raw-data', count: 3, context }), 46);
    expectKeys(batch, ['key_id', 'key_version', 'keys']);
    expect(batch).toMatchObject({ key_id: 'raw-data', key_version: 1 });
    expect(Array.isArray(batch.keys) && batch.keys.length === 3).toBe(true);
    for (const [i, k] of (batch.keys as any[]).entries()) {
      expectKeys(k, ['plaintext', 'ciphertext']);
      expect(Buffer.isBuffer(k.plaintext) && Buffer.isBuffer(k.ciphertext)).toBe(true);
      const o = expectOk(await c.call(50 + i, 'decrypt', { ciphertext: k.ciphertext, context }), 50 + i);
      expect(o.plaintext.equals(k.plaintext)).toBe(true);
    }

    expectOk(await c.call(47, 'rotate_key', { key_id: 'raw-data' }), 47);
    const re = expectOk(await c.call(48, 're_encrypt', { ciphertext: enc.ciphertext, context }), 48);
    expectKeys(re, ['ciphertext', 'key_id', 'key_version']);
    expect(re).toMatchObject({ key_id: 'raw-data', key_version: 2 });
    expect(expectOk(await c.call(49, 'decrypt', { ciphertext: re.ciphertext, context }), 49).plaintext.toString()).toBe('hello');
  });
});

describe('ids and pipelining', () => {
  it('echoes any uint32 id, including 0 and 4294967295', async () => {
    const c = await connect();
    for (const id of [0, 1, 127, 128, 65_535, 65_536, 4_294_967_295]) {
      expectOk(await c.call(id, 'health', {}), id);
    }
  });

  it('pipelined requests in one write are all answered once, matched by id', async () => {
    const c = await connect();
    expectOk(await c.call(1, 'create_key', { key_id: 'raw-pipe' }), 1);
    const sealed = expectOk(await c.call(2, 'encrypt', { key_id: 'raw-pipe', plaintext: Buffer.from('p') }), 2).ciphertext as Buffer;

    const ids = Array.from({ length: 80 }, (_, i) => 1000 + i * 7919); // distinct, not sequential
    const expectations = new Map<number, (r: any) => void>();
    const frames: Buffer[] = [];
    ids.forEach((id, i) => {
      switch (i % 5) {
        case 0:
          frames.push(request(id, 'encrypt', { key_id: 'raw-pipe', plaintext: Buffer.from(`m${id}`) }));
          expectations.set(id, (a) => expect(expectOk(a, id).key_version).toBe(1));
          break;
        case 1:
          frames.push(request(id, 'decrypt', { ciphertext: sealed }));
          expectations.set(id, (a) => expect(expectOk(a, id).plaintext.toString()).toBe('p'));
          break;
        case 2:
          frames.push(request(id, 'generate_data_key', { key_id: 'raw-pipe', bytes: 16 + (i % 49) }));
          expectations.set(id, (a) => expect(expectOk(a, id).plaintext.length).toBe(16 + (i % 49)));
          break;
        case 3:
          frames.push(request(id, 'describe_key', { key_id: 'raw-pipe' }));
          expectations.set(id, (a) => expect(expectOk(a, id).key_id).toBe('raw-pipe'));
          break;
        default:
          frames.push(request(id, 'describe_key', { key_id: `absent-${id}` }));
          expectations.set(id, (a) => expectError(a, id, 'KeyNotFound', `absent-${id}`));
      }
    });
    c.send(Buffer.concat(frames));
    const answers = await c.collect(ids.length);
    const seen = new Set<number>();
    for (const a of answers) {
      const id = a.value.id as number;
      expect(seen.has(id), `id ${id} answered twice`).toBe(false);
      seen.add(id);
      const check = expectations.get(id);
      expect(check, `answer for unknown id ${id}`).toBeDefined();
      check!(a.value);
    }
    expect([...seen].sort((x, y) => x - y)).toEqual([...ids].sort((x, y) => x - y));
  });

  it('an id reused while the first request is in flight is refused under that id; the first still completes', async () => {
    const c = await connect();
    // create_key writes to disk (asynchronous), so the second frame arrives while id 7 is in flight
    c.send(Buffer.concat([request(7, 'create_key', { key_id: 'raw-dup-id' }), request(7, 'describe_key', { key_id: 'raw-dup-id' })]));
    const answers = (await c.collect(2)).map((a) => a.value);
    expect(answers.map((a) => a.id)).toEqual([7, 7]);
    const ok = answers.filter((a) => a.ok === true);
    const refused = answers.filter((a) => a.ok === false);
    expect(ok).toHaveLength(1);
    expectKeyInfo(ok[0].result, 'raw-dup-id');
    expect(refused).toHaveLength(1);
    expectError(refused[0], 7, 'InvalidRequest', 'request id 7 is already in flight');
  });

  it('accepts any encoding width: str8 keys, map16, uint64 id', async () => {
    const c = await connect();
    const body = map16([
      ['id', uint64(7)],
      ['op', str8('describe_key')],
      ['args', map16([['key_id', str8('nope-wide')]])],
    ]).bytes;
    c.send(frame(body));
    expectError((await c.next()).value, 7, 'KeyNotFound', 'nope-wide');
  });
});

describe('malformed frames and requests', () => {
  async function expectStaysOpen(c: RawConn): Promise<void> {
    expectOk(await c.call(4242, 'health', {}), 4242);
  }

  const cases: Array<[string, Buffer, string]> = [
    ['an empty frame (N = 0)', Buffer.alloc(0), 'empty'],
    ['a timestamp extension', Buffer.concat([Buffer.from([0x83]), mp('id'), mp(5), mp('op'), mp('health'), mp('args'), Buffer.from([0xd6, 0xff, 0, 0, 0, 1])]), 'extension'],
    ['the never-used byte 0xc1', Buffer.concat([Buffer.from([0x82]), mp('id'), mp(5), mp('op'), Buffer.from([0xc1])]), '0xc1'],
    ['trailing bytes', Buffer.concat([mp({ id: 5, op: 'health' }), Buffer.from([0x00, 0x00])]), 'trailing'],
    ['a truncated str', Buffer.concat([Buffer.from([0x82]), mp('id'), mp(5), mp('op'), Buffer.from([0xa6, 0x68, 0x65])]), 'truncated'],
    ['an integer beyond 2^53-1', Buffer.concat([Buffer.from([0x82]), mp('id'), Buffer.from([0xcf, 0, 0x40, 0, 0, 0, 0, 0, 0]), mp('op'), mp('health')]), '2^53'],
    ['a duplicate map key', Buffer.concat([Buffer.from([0x83]), mp('id'), mp(5), mp('op'), mp('health'), mp('op'), mp('status')]), 'duplicate'],
    ['a __proto__ key', Buffer.concat([Buffer.from([0x83]), mp('id'), mp(5), mp('op'), mp('health'), mp('args'), Buffer.from([0x81]), mp('__proto__'), mp(1)]), '__proto__'],
    ['a request that is not a map', mp([1, 'health']), 'map'],
    ['an id that is not a uint32', mp({ id: -1, op: 'health' }), 'id'],
    ['an id above 4294967295', mp({ id: 4_294_967_296, op: 'health' }), 'id'],
  ];

  for (const [what, body, mention] of cases) {
    it(`${what}: InvalidRequest with id 0 naming the problem; the connection stays open`, async () => {
      const c = await connect();
      c.send(frame(body));
      expectError((await c.next()).value, 0, 'InvalidRequest', mention);
      await expectStaysOpen(c);
    });
  }

  it('envelope errors carry the id: unknown top-level field, bad op, bad args, bad ctx', async () => {
    const c = await connect();
    c.send(frame(mp({ id: 61, op: 'health', args: {}, x: 1 })));
    expectError((await c.next()).value, 61, 'InvalidRequest', 'unknown request field "x"');
    c.send(frame(mp({ id: 62, op: 'o'.repeat(65) })));
    expectError((await c.next()).value, 62, 'InvalidRequest', '64');
    c.send(frame(mp({ id: 63, op: '' })));
    expectError((await c.next()).value, 63, 'InvalidRequest', 'op');
    c.send(frame(mp({ id: 64, op: 'health', args: [1] })));
    expectError((await c.next()).value, 64, 'InvalidRequest', 'args');
    c.send(request(65, 'health', {}, { principal: 'alice', colour: 'blue' }));
    expectError((await c.next()).value, 65, 'InvalidRequest', 'colour');
    c.send(request(66, 'health', {}, { principal: 'p'.repeat(1025) }));
    expectError((await c.next()).value, 66, 'InvalidRequest', '1024');
    const extra: Record<string, MpValue> = {};
    for (let i = 0; i < 33; i++) extra[`k${i}`] = 'v';
    c.send(request(67, 'health', {}, { extra }));
    expectError((await c.next()).value, 67, 'InvalidRequest', '32');
    await expectStaysOpen(c);
  });

  it('a well-formed ctx is accepted; args nil and ctx nil count as absent', async () => {
    const c = await connect();
    c.send(request(70, 'health', {}, { principal: 'alice', request_id: 'r-1', user_agent: 'raw/1', source_ip: '10.0.0.1', extra: { a: 'b' } }));
    expectOk((await c.next()).value, 70);
    c.send(frame(mp({ id: 71, op: 'health', args: null, ctx: null })));
    expectOk((await c.next()).value, 71);
  });

  it('argument errors: nil argument, str where bin is expected, unknown argument, unknown op', async () => {
    const c = await connect();
    expectOk(await c.call(80, 'create_key', { key_id: 'raw-args' }), 80);
    expectError(await c.call(81, 'encrypt', { key_id: 'raw-args', plaintext: null }), 81, 'InvalidRequest', 'plaintext');
    expectError(await c.call(82, 'describe_key', { key_id: null }), 82, 'InvalidKeyId', 'key_id');
    expectError(await c.call(83, 'encrypt', { key_id: 'raw-args', plaintext: 'text, not bin' }), 83, 'InvalidRequest', 'plaintext');
    expectError(await c.call(84, 'decrypt', { ciphertext: 'text' }), 84, 'InvalidRequest', 'ciphertext');
    expectError(await c.call(85, 'encrypt', { key_id: 'raw-args', plain_text: Buffer.from('x') }), 85, 'InvalidRequest', 'plain_text');
    expectError(await c.call(86, 'generate_data_key', { key_id: 'raw-args', bytes: float64(7.5) }), 86, 'InvalidRequest', 'bytes');
    expectError(await c.call(87, 'no_such_op', {}), 87, 'UnknownOperation', 'no_such_op');
    expectError(await c.call(88, 'list_keys', { limit: -1 }), 88, 'InvalidRequest', 'limit');
  });

  it('a frame above the limit: FrameTooLarge with id 0 and the connection is closed; requests before it are answered', async () => {
    const c = await connect();
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1_048_577);
    c.send(Buffer.concat([request(90, 'health', {}), header]));
    const answers: any[] = [];
    for (;;) {
      try {
        answers.push((await c.next()).value);
      } catch {
        break;
      }
    }
    expect(c.closed).toBe(true);
    const tooLarge = answers.filter((a) => a.id === 0);
    expect(tooLarge).toHaveLength(1);
    expectError(tooLarge[0], 0, 'FrameTooLarge', '1048577', '1048576');
    // the health request before the bad header was answered or lost with the connection, never answered twice
    expect(answers.filter((a) => a.id === 90).length).toBeLessThanOrEqual(1);
  });
});

describe('a configured max_frame_bytes', () => {
  it('accepts a body of exactly max_frame_bytes and refuses one byte more', async () => {
    const small = await startDaemon({ config: 'limits: { max_frame_bytes: 2048 }\n' });
    try {
      const c = await RawConn.open(small.socketPath);
      conns.push(c);
      expect(expectOk(await c.call(1, 'status', {}), 1).limits.max_frame_bytes).toBe(2048);
      // a health request padded with an unknown argument to exactly 2048 bytes: read and judged
      const base = mp({ id: 5, op: 'health', args: { pad: 'x' } }).length;
      const body = mp({ id: 5, op: 'health', args: { pad: 'x'.repeat(2048 - base + 1 - 2) } });
      expect(body.length).toBe(2048);
      c.send(frame(body));
      expectError((await c.next()).value, 5, 'InvalidRequest', 'pad');
      const header = Buffer.alloc(4);
      header.writeUInt32BE(2049);
      c.send(header);
      expectError((await c.next()).value, 0, 'FrameTooLarge', '2049', '2048');
      expect(await c.closedWithin()).toBe(true);
    } finally {
      expect(await small.stop()).toBe(0);
    }
  });
});

describe('oversized frames sent whole', () => {
  // Regression (fixed bug): src/rpc/server.ts, Connection.onData: after the FrameTooLarge answer and socket.end(), the
  // rest of the oversized frame keeps arriving; every chunk re-enters the catch (the FrameReader stays
  // failed) and calls socket.end(frame) again → ERR_STREAM_WRITE_AFTER_END → the 'error' handler
  // destroys the socket with the client's bytes unread, and the client's next write fails (EPIPE /
  // ECONNRESET). A client writing a whole oversized frame (the normal case) is therefore reset while
  // still writing, and often (a third of the time in a quick measurement with Node clients) never
  // reads the documented FrameTooLarge answer. Fix: `if (this.closing) return;` at the top of onData,
  // so the rest of the frame is discarded until the peer closes (the idle timeout bounds it).
  // The test is made deterministic with a half-open client that reads the answer, then keeps sending.
  it('a client still sending the rest of an oversized frame after the answer is not reset', async () => {
    const s = net.createConnection({ path: daemon.socketPath, allowHalfOpen: true });
    let writeError: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => {
      writeError = e.code ?? e.message;
    });
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    await new Promise<void>((r) => s.once('connect', () => r()));
    let received = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
    });
    const ended = new Promise<void>((r) => s.once('end', () => r()));
    const header = Buffer.alloc(4);
    header.writeUInt32BE(2_000_000);
    s.write(Buffer.concat([header, Buffer.alloc(1000)]));
    await ended; // the answer came, then the daemon's end of the connection
    const answer = unpack(received.subarray(4, 4 + received.readUInt32BE(0)));
    expectError(answer, 0, 'FrameTooLarge', '2000000');
    // The client goes on writing the frame it had started: 1 MB, far more than the socket buffers
    // hold, so this write can only complete once the daemon has read (and discarded) it.
    const writeResult = await new Promise<string>((r) => s.write(Buffer.alloc(1_000_000), (err) => r(err ? String((err as NodeJS.ErrnoException).code ?? err) : 'written')));
    expect(writeResult).toBe('written');
    expect(writeError).toBeUndefined();
    expect(s.destroyed).toBe(false);
    s.end();
    await closed; // and then the connection closes cleanly
    s.destroy();
  });
});

// Keep the encoder honest: the bytes it makes for the documented health request are the document's.
it('the test encoder reproduces the documented health request frame', () => {
  expect(request(1, 'health', {}).toString('hex')).toBe(firstWorkedExample().toString('hex'));
  expect(new Encoded(Buffer.from([0xc0])).bytes).toEqual(mp(null));
});
