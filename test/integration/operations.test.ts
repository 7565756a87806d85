// Every operation and every error code of docs/protocol.md, through the reference client
// (KmsClient) against the real daemon process over its real Unix socket.
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { KmsError } from '../../src/errors.js';
import {
  CLIENT_JS, cleanEnv, cleanupTempDirs, killAllDaemons, repoRoot, startDaemon, waitFor, type DaemonHandle,
} from '../helpers/daemon.js';
import { RawConn, frame, mp } from './wire.js';
import { othersCannotReach, sharedTempDir } from '../helpers/other-user.js';
// uid 65534 must read the checkout (it runs its build): otherwise these skip and say why.
const OTHERS = othersCannotReach();
const skipped = OTHERS !== undefined ? ` (skipped: ${OTHERS})` : '';

const DAY_MS = 86_400_000;
const VERSION = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** The error a call failed with; fails the test when the call succeeds. */
async function failure(p: Promise<unknown>): Promise<KmsError> {
  let value: unknown;
  try {
    value = await p;
  } catch (err) {
    expect(err).toBeInstanceOf(KmsError);
    return err as KmsError;
  }
  throw new Error(`expected the call to fail, it returned ${JSON.stringify(value)}`);
}

async function expectCode(p: Promise<unknown>, code: string, ...mentions: (string | RegExp)[]): Promise<KmsError> {
  const err = await failure(p);
  expect(err.code, err.message).toBe(code);
  for (const m of mentions) {
    if (typeof m === 'string') expect(err.message).toContain(m);
    else expect(err.message).toMatch(m);
  }
  return err;
}

/** The header a v1 envelope must start with for this key and version. */
function envelopeHeader(keyId: string, version: number): Buffer {
  const v = Buffer.alloc(4);
  v.writeUInt32BE(version);
  return Buffer.concat([Buffer.from([0x01, 0x01, Buffer.byteLength(keyId)]), Buffer.from(keyId), v]);
}

function envelopeLength(keyId: string, plaintextBytes: number): number {
  return 7 + Buffer.byteLength(keyId) + 24 + plaintextBytes + 16;
}

let seq = 0;
const kid = (prefix: string) => `${prefix}-${++seq}`;

let daemon: DaemonHandle;
let kms: KmsClient;

beforeAll(async () => {
  daemon = await startDaemon();
  kms = await KmsClient.connect(daemon.socketPath, { reconnect: false });
});

afterAll(async () => {
  await kms?.close();
  if (daemon?.running) expect(await daemon.stop()).toBe(0);
  await killAllDaemons();
  cleanupTempDirs();
});

describe('health and status', () => {
  it('health reports a healthy local/file backend and the daemon version', async () => {
    const h = await kms.health();
    expect(h).toEqual({ healthy: true, backend: 'local/file', version: VERSION });
  });

  it('status reports the backend, the key count and every limit', async () => {
    const id = kid('status');
    await kms.createKey(id);
    const s = await kms.status();
    const all = await kms.listKeys({ limit: 1000 });
    expect(s.rootType).toBe('local');
    expect(s.keystoreType).toBe('file');
    expect(s.endpoint).toBe(daemon.stateDir);
    expect(s.keyCount).toBe(all.keys.length);
    expect(s.keyCount).toBeGreaterThanOrEqual(1);
    expect(Number.isInteger(s.uptimeMs) && s.uptimeMs >= 0).toBe(true);
    expect(s.limits).toEqual({
      maxFrameBytes: 1_048_576,
      maxPlaintextBytes: 65_536,
      maxBatchCount: 1024,
      maxListLimit: 1000,
      maxConnections: 1024,
      maxInflightPerConnection: 256,
    });
  });
});

describe('create_key and describe_key', () => {
  it('creates a key with description, tags and rotation period; describe_key returns the same KeyInfo', async () => {
    const id = kid('create-full');
    const before = Date.now();
    const info = await kms.createKey(id, { description: 'objects of bucket photos', tags: { team: 'storage', env: 'test' }, rotationPeriodDays: 90 });
    const after = Date.now();
    expect(info).toEqual({
      keyId: id,
      state: 'Enabled',
      currentVersion: 1,
      versions: 1,
      algorithm: 'XAES-256-GCM',
      origin: 'local',
      createdAt: info.createdAt,
      description: 'objects of bucket photos',
      tags: { team: 'storage', env: 'test' },
      rotationPeriodDays: 90,
    });
    expect(info.createdAt).toBeGreaterThanOrEqual(before - 1000);
    expect(info.createdAt).toBeLessThanOrEqual(after + 1000);
    expect(await kms.describeKey(id)).toEqual(info);
  });

  it('defaults: empty description, no tags, no rotation period, no rotated_at or deletion_date', async () => {
    const id = kid('create-min');
    const info = await kms.createKey(id);
    expect(info.description).toBe('');
    expect(info.tags).toEqual({});
    expect(info).not.toHaveProperty('rotationPeriodDays');
    expect(info).not.toHaveProperty('rotatedAt');
    expect(info).not.toHaveProperty('deletionDate');
  });

  it('refuses out-of-range arguments naming them', async () => {
    await expectCode(kms.createKey(kid('rp0'), { rotationPeriodDays: 0 }), 'InvalidRequest', 'rotation_period_days', '3650');
    await expectCode(kms.createKey(kid('rp3651'), { rotationPeriodDays: 3651 }), 'InvalidRequest', 'rotation_period_days');
    await expectCode(kms.createKey(kid('desc'), { description: 'x'.repeat(1025) }), 'InvalidRequest', 'description', '1024');
    const tags: Record<string, string> = {};
    for (let i = 0; i < 51; i++) tags[`t${i}`] = 'v';
    await expectCode(kms.createKey(kid('tags'), { tags }), 'InvalidRequest', 'tags', '50');
    await expectCode(kms.createKey(kid('tagval'), { tags: { k: 'v'.repeat(257) } }), 'InvalidRequest', /tag/, '256');
    // Nothing was created by the refused calls.
    const page = await kms.listKeys({ prefix: 'rp', limit: 1000 });
    expect(page.keys).toEqual([]);
  });
});

describe('list_keys', () => {
  const ids = Array.from({ length: 12 }, (_, i) => `list-a-${String(i).padStart(3, '0')}`);

  beforeAll(async () => {
    await Promise.all([...ids, 'list-b-1', 'list-b-2', 'list-b-3'].map((id) => kms.createKey(id)));
  });

  it('pages through a prefix with limit and next_marker, in byte order, without gaps or repeats', async () => {
    const seen: string[] = [];
    const p1 = await kms.listKeys({ prefix: 'list-a-', limit: 5 });
    expect(p1.keys.map((k) => k.keyId)).toEqual(ids.slice(0, 5));
    expect(p1.truncated).toBe(true);
    expect(p1.nextMarker).toBe(ids[4]);
    seen.push(...p1.keys.map((k) => k.keyId));
    const p2 = await kms.listKeys({ prefix: 'list-a-', limit: 5, marker: p1.nextMarker as string });
    expect(p2.keys.map((k) => k.keyId)).toEqual(ids.slice(5, 10));
    expect(p2.truncated).toBe(true);
    expect(p2.nextMarker).toBe(ids[9]);
    seen.push(...p2.keys.map((k) => k.keyId));
    const p3 = await kms.listKeys({ prefix: 'list-a-', limit: 5, marker: p2.nextMarker as string });
    expect(p3.keys.map((k) => k.keyId)).toEqual(ids.slice(10));
    expect(p3.truncated).toBe(false);
    expect(p3).not.toHaveProperty('nextMarker');
    seen.push(...p3.keys.map((k) => k.keyId));
    expect(seen).toEqual(ids);
  });

  it('a page that ends exactly at the last matching key is not truncated', async () => {
    const page = await kms.listKeys({ prefix: 'list-b-', limit: 3 });
    expect(page.keys.map((k) => k.keyId)).toEqual(['list-b-1', 'list-b-2', 'list-b-3']);
    expect(page.truncated).toBe(false);
    expect(page).not.toHaveProperty('nextMarker');
  });

  it('the marker is exclusive and the listed KeyInfo is complete', async () => {
    const page = await kms.listKeys({ prefix: 'list-a-', marker: 'list-a-004', limit: 2 });
    expect(page.keys.map((k) => k.keyId)).toEqual(['list-a-005', 'list-a-006']);
    expect(page.keys[0]).toEqual(await kms.describeKey('list-a-005'));
  });

  it('a marker before the prefix range starts at the first matching key; one after it gives nothing', async () => {
    const page = await kms.listKeys({ prefix: 'list-b-', marker: 'list-a-000' });
    expect(page.keys.map((k) => k.keyId)).toEqual(['list-b-1', 'list-b-2', 'list-b-3']);
    expect(page.truncated).toBe(false);
    const none = await kms.listKeys({ prefix: 'list-a-', marker: 'list-b-' });
    expect(none).toEqual({ keys: [], truncated: false });
  });

  it('orders ids by bytes (0 < B < _ < a)', async () => {
    for (const id of ['ord-a', 'ord-_x', 'ord-B', 'ord-0']) await kms.createKey(id);
    const page = await kms.listKeys({ prefix: 'ord-' });
    expect(page.keys.map((k) => k.keyId)).toEqual(['ord-0', 'ord-B', 'ord-_x', 'ord-a']);
  });

  it('a prefix nothing matches gives an empty, untruncated page', async () => {
    const page = await kms.listKeys({ prefix: 'no-such-prefix-' });
    expect(page).toEqual({ keys: [], truncated: false });
  });

  it('defaults to 100 keys per page', async () => {
    await Promise.all(Array.from({ length: 101 }, (_, i) => kms.createKey(`many-${String(i).padStart(3, '0')}`)));
    const page = await kms.listKeys({ prefix: 'many-' });
    expect(page.keys).toHaveLength(100);
    expect(page.truncated).toBe(true);
    expect(page.nextMarker).toBe('many-099');
    const rest = await kms.listKeys({ prefix: 'many-', marker: 'many-099' });
    expect(rest.keys.map((k) => k.keyId)).toEqual(['many-100']);
    expect(rest.truncated).toBe(false);
  });

  it('refuses limits outside 1..1000', async () => {
    await expectCode(kms.listKeys({ limit: 0 }), 'InvalidRequest', 'limit', '1000');
    await expectCode(kms.listKeys({ limit: 1001 }), 'InvalidRequest', 'limit', '1000');
    await expectCode(kms.listKeys({ prefix: 'p'.repeat(129) }), 'InvalidRequest', 'prefix', '128');
  });
});

describe('enable_key and disable_key', () => {
  it('a disabled key seals and opens nothing until enabled again', async () => {
    const id = kid('toggle');
    await kms.createKey(id);
    const sealed = await kms.encrypt(id, Buffer.from('before'));
    const disabled = await kms.disableKey(id);
    expect(disabled.state).toBe('Disabled');
    expect((await kms.describeKey(id)).state).toBe('Disabled');
    await expectCode(kms.encrypt(id, Buffer.from('x')), 'KeyDisabled', id);
    await expectCode(kms.decrypt(sealed.ciphertext), 'KeyDisabled', id);
    await expectCode(kms.generateDataKey(id), 'KeyDisabled', id);
    await expectCode(kms.generateDataKeyBatch(id, 2), 'KeyDisabled', id);
    await expectCode(kms.reEncrypt(sealed.ciphertext), 'KeyDisabled', id);
    await expectCode(kms.rotateKey(id), 'KeyDisabled', id);
    // disabling twice is harmless
    expect((await kms.disableKey(id)).state).toBe('Disabled');
    const enabled = await kms.enableKey(id);
    expect(enabled.state).toBe('Enabled');
    expect((await kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('before');
    expect((await kms.encrypt(id, Buffer.from('after'))).keyVersion).toBe(1);
  });

  it('enable/disable of a missing key is KeyNotFound', async () => {
    await expectCode(kms.enableKey('missing-toggle'), 'KeyNotFound', 'missing-toggle');
    await expectCode(kms.disableKey('missing-toggle'), 'KeyNotFound', 'missing-toggle');
  });
});

describe('rotate_key', () => {
  it('new seals use version N+1, older ciphertexts still open and report their version', async () => {
    const id = kid('rot');
    const created = await kms.createKey(id);
    const v1 = await kms.encrypt(id, Buffer.from('sealed under v1'), { context: { bucket: 'b' } });
    expect(v1.keyVersion).toBe(1);
    expect(v1.ciphertext.subarray(0, 7 + id.length)).toEqual(envelopeHeader(id, 1));

    const r = await kms.rotateKey(id);
    expect(r.currentVersion).toBe(2);
    expect(r.versions).toBe(2);
    expect(r.rotatedAt).toBeGreaterThanOrEqual(created.createdAt);
    expect(r.createdAt).toBe(created.createdAt);

    const v2 = await kms.encrypt(id, Buffer.from('sealed under v2'), { context: { bucket: 'b' } });
    expect(v2.keyVersion).toBe(2);
    expect(v2.ciphertext.subarray(0, 7 + id.length)).toEqual(envelopeHeader(id, 2));
    const dk = await kms.generateDataKey(id);
    expect(dk.keyVersion).toBe(2);

    const o1 = await kms.decrypt(v1.ciphertext, { context: { bucket: 'b' } });
    expect(o1).toEqual({ plaintext: Buffer.from('sealed under v1'), keyId: id, keyVersion: 1 });
    const o2 = await kms.decrypt(v2.ciphertext, { context: { bucket: 'b' } });
    expect(o2).toEqual({ plaintext: Buffer.from('sealed under v2'), keyId: id, keyVersion: 2 });

    const r3 = await kms.rotateKey(id);
    expect(r3.currentVersion).toBe(3);
    expect(r3.versions).toBe(3);
    expect((await kms.decrypt(v1.ciphertext, { context: { bucket: 'b' } })).keyVersion).toBe(1);
  });

  it('rotating a missing key is KeyNotFound', async () => {
    await expectCode(kms.rotateKey('missing-rot'), 'KeyNotFound', 'missing-rot');
  });
});

describe('schedule_key_deletion and cancel_key_deletion', () => {
  it('refuses pending_days outside 7..30, naming the range', async () => {
    const id = kid('del-range');
    await kms.createKey(id);
    await expectCode(kms.scheduleKeyDeletion(id, 6), 'InvalidRequest', 'pending_days', '7', '30');
    await expectCode(kms.scheduleKeyDeletion(id, 31), 'InvalidRequest', 'pending_days', '7', '30');
    expect((await kms.describeKey(id)).state).toBe('Enabled');
    const d30 = await kms.scheduleKeyDeletion(id, 30);
    expect(d30.state).toBe('PendingDeletion');
  });

  it('pending deletion blocks use; cancelling leaves the key Disabled, then it can be enabled', async () => {
    const id = kid('del');
    await kms.createKey(id);
    const sealed = await kms.encrypt(id, Buffer.from('keep me'));
    const before = Date.now();
    const pending = await kms.scheduleKeyDeletion(id, 7);
    const after = Date.now();
    expect(pending.state).toBe('PendingDeletion');
    expect(pending.deletionDate).toBeGreaterThanOrEqual(before + 7 * DAY_MS - 1000);
    expect(pending.deletionDate).toBeLessThanOrEqual(after + 7 * DAY_MS + 1000);
    expect(await kms.describeKey(id)).toEqual(pending);

    await expectCode(kms.scheduleKeyDeletion(id, 10), 'KeyPendingDeletion', id);
    await expectCode(kms.encrypt(id, Buffer.from('x')), 'KeyPendingDeletion', id);
    await expectCode(kms.decrypt(sealed.ciphertext), 'KeyPendingDeletion', id);
    await expectCode(kms.generateDataKey(id), 'KeyPendingDeletion', id);
    await expectCode(kms.generateDataKeyBatch(id, 1), 'KeyPendingDeletion', id);
    await expectCode(kms.reEncrypt(sealed.ciphertext), 'KeyPendingDeletion', id);
    await expectCode(kms.rotateKey(id), 'KeyPendingDeletion', id);
    await expectCode(kms.enableKey(id), 'KeyPendingDeletion', id);
    await expectCode(kms.disableKey(id), 'KeyPendingDeletion', id);

    const cancelled = await kms.cancelKeyDeletion(id);
    expect(cancelled.state).toBe('Disabled');
    expect(cancelled).not.toHaveProperty('deletionDate');
    await expectCode(kms.cancelKeyDeletion(id), 'InvalidRequest', id, 'not pending deletion');
    await expectCode(kms.decrypt(sealed.ciphertext), 'KeyDisabled', id);
    expect((await kms.enableKey(id)).state).toBe('Enabled');
    expect((await kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('keep me');
  });

  it('a disabled key can be scheduled for deletion; missing keys are KeyNotFound', async () => {
    const id = kid('del-disabled');
    await kms.createKey(id);
    await kms.disableKey(id);
    expect((await kms.scheduleKeyDeletion(id, 7)).state).toBe('PendingDeletion');
    await expectCode(kms.scheduleKeyDeletion('missing-del', 7), 'KeyNotFound', 'missing-del');
    await expectCode(kms.cancelKeyDeletion('missing-del'), 'KeyNotFound', 'missing-del');
  });
});

describe('encrypt and decrypt', () => {
  const id = 'enc-key';
  beforeAll(async () => {
    await kms.createKey(id);
  });

  it('round-trips 0 bytes, small data and exactly 64 KiB; the envelope has the v1 layout', async () => {
    for (const size of [0, 1, 1000, 65_536]) {
      const plaintext = Buffer.alloc(size, size % 251);
      const sealed = await kms.encrypt(id, plaintext, { context: { object: `o${size}` } });
      expect(sealed.keyId).toBe(id);
      expect(sealed.keyVersion).toBe(1);
      expect(sealed.ciphertext.length).toBe(envelopeLength(id, size));
      expect(sealed.ciphertext.subarray(0, 7 + id.length)).toEqual(envelopeHeader(id, 1));
      const opened = await kms.decrypt(sealed.ciphertext, { context: { object: `o${size}` } });
      expect(opened.plaintext.equals(plaintext)).toBe(true);
      expect(opened.keyId).toBe(id);
      expect(opened.keyVersion).toBe(1);
    }
  });

  it('refuses 65537 bytes of plaintext, naming the limit 65536', async () => {
    await expectCode(kms.encrypt(id, Buffer.alloc(65_537)), 'InvalidRequest', '65536', '65537');
  });

  it('refuses a ciphertext above 66048 bytes before looking at it, naming the limit', async () => {
    await expectCode(kms.decrypt(Buffer.alloc(66_049, 1)), 'InvalidRequest', 'ciphertext', '66048');
    await expectCode(kms.reEncrypt(Buffer.alloc(66_049, 1)), 'InvalidRequest', 'ciphertext', '66048');
  });

  it('sizes are counted in UTF-8 bytes (a 342-character description of 3-byte characters is 1026 bytes)', async () => {
    await expectCode(kms.createKey(kid('utf8'), { description: '€'.repeat(342) }), 'InvalidRequest', 'description', '1026');
    expect((await kms.createKey(kid('utf8'), { description: '€'.repeat(341) })).description).toBe('€'.repeat(341));
  });

  it('two seals of the same plaintext differ (random nonce)', async () => {
    const a = await kms.encrypt(id, Buffer.from('same'));
    const b = await kms.encrypt(id, Buffer.from('same'));
    expect(a.ciphertext.equals(b.ciphertext)).toBe(false);
  });

  it('the context is a set of pairs: key order does not matter, absent equals empty', async () => {
    const sealed = await kms.encrypt(id, Buffer.from('ctx'), { context: { a: '1', b: '2' } });
    expect((await kms.decrypt(sealed.ciphertext, { context: { b: '2', a: '1' } })).plaintext.toString()).toBe('ctx');
    const bare = await kms.encrypt(id, Buffer.from('bare'));
    expect((await kms.decrypt(bare.ciphertext, { context: {} })).plaintext.toString()).toBe('bare');
  });

  it('wrong context, flipped bits and truncation all fail as InvalidCiphertext with one message', async () => {
    const context = { bucket: 'photos', object: 'cat.jpg' };
    const sealed = await kms.encrypt(id, Buffer.from('the secret object key'), { context });
    const ct = sealed.ciphertext;
    const flip = (at: number) => {
      const c = Buffer.from(ct);
      c[at] ^= 0x01;
      return c;
    };
    const headerLen = 7 + id.length;
    const attempts: Array<[string, Promise<unknown>]> = [
      ['no context', kms.decrypt(ct)],
      ['other value', kms.decrypt(ct, { context: { bucket: 'photos', object: 'dog.jpg' } })],
      ['missing pair', kms.decrypt(ct, { context: { bucket: 'photos' } })],
      ['extra pair', kms.decrypt(ct, { context: { ...context, x: 'y' } })],
      ['flipped nonce bit', kms.decrypt(flip(headerLen + 3), { context })],
      ['flipped body bit', kms.decrypt(flip(headerLen + 24 + 2), { context })],
      ['flipped tag bit', kms.decrypt(flip(ct.length - 1), { context })],
      ['flipped version bit', kms.decrypt(flip(headerLen - 1), { context })],
      ['flipped format byte', kms.decrypt(flip(0), { context })],
      ['last byte missing', kms.decrypt(ct.subarray(0, ct.length - 1), { context })],
      ['truncated into the header', kms.decrypt(ct.subarray(0, 10), { context })],
      ['empty', kms.decrypt(Buffer.alloc(0), { context })],
      ['extra byte', kms.decrypt(Buffer.concat([ct, Buffer.from([0])]), { context })],
    ];
    const messages = new Set<string>();
    for (const [what, p] of attempts) {
      const err = await failure(p);
      expect(err.code, what).toBe('InvalidCiphertext');
      messages.add(err.message);
    }
    expect(messages.size).toBe(1);
    const [message] = [...messages];
    expect(message).toMatch(/authenticat|tamper|context|malformed/);
    // The message carries no plaintext, context value or ciphertext bytes.
    expect(message).not.toContain('secret');
    expect(message).not.toContain('cat.jpg');
    expect(message).not.toContain(ct.toString('hex').slice(20, 40));
    // and the good blob still opens
    expect((await kms.decrypt(ct, { context })).plaintext.toString()).toBe('the secret object key');
  });

  it('a ciphertext naming a key that does not exist is KeyNotFound, naming the key', async () => {
    const sealed = await kms.encrypt(id, Buffer.from('x'));
    const forged = Buffer.from(sealed.ciphertext);
    forged.write('enc-kez', 3, 'latin1'); // same length, another (absent) key id
    await expectCode(kms.decrypt(forged), 'KeyNotFound', 'enc-kez');
  });

  // Regression (fixed bug): KeyService.decrypt (src/keys/service.ts, usableEntry → entry → assertKeyId) answers a blob
  // whose header names an id outside the key-id pattern with InvalidKeyId, a code the protocol reserves
  // for the key_id / destination_key_id arguments. Such a blob is not an envelope v1 this daemon can
  // have made: it should be InvalidCiphertext like every other malformed blob (no oracle).
  it('a ciphertext whose header holds an invalid key id is InvalidCiphertext, not InvalidKeyId', async () => {
    const sealed = await kms.encrypt(id, Buffer.from('x'));
    const forged = Buffer.from(sealed.ciphertext);
    forged.write('-', 3, 'latin1'); // "-nc-key": cannot be a key id
    const err = await failure(kms.decrypt(forged));
    expect(err.code).toBe('InvalidCiphertext');
  });

  it('refuses a context beyond 64 pairs or 4096 bytes, naming the limit', async () => {
    const wide: Record<string, string> = {};
    for (let i = 0; i < 65; i++) wide[`k${i}`] = 'v';
    await expectCode(kms.encrypt(id, Buffer.from('x'), { context: wide }), 'InvalidRequest', 'context', '64');
    await expectCode(kms.encrypt(id, Buffer.from('x'), { context: { big: 'v'.repeat(4096) } }), 'InvalidRequest', 'context', '4096');
  });
});

describe('generate_data_key', () => {
  const id = 'dk-key';
  beforeAll(async () => {
    await kms.createKey(id);
  });

  it('defaults to 32 bytes; the plaintext opens from the ciphertext via decrypt (same context)', async () => {
    const context = { bucket: 'photos' };
    const dk = await kms.generateDataKey(id, { context });
    expect(dk.keyId).toBe(id);
    expect(dk.keyVersion).toBe(1);
    expect(dk.plaintext).toBeInstanceOf(Buffer);
    expect(dk.plaintext?.length).toBe(32);
    expect(dk.ciphertext.length).toBe(envelopeLength(id, 32));
    expect(dk.ciphertext.subarray(0, 7 + id.length)).toEqual(envelopeHeader(id, 1));
    const opened = await kms.decrypt(dk.ciphertext, { context });
    expect(opened.plaintext.equals(dk.plaintext as Buffer)).toBe(true);
    await expectCode(kms.decrypt(dk.ciphertext), 'InvalidCiphertext');
  });

  it('bytes may be 16..64', async () => {
    for (const bytes of [16, 17, 48, 64]) {
      const dk = await kms.generateDataKey(id, { bytes });
      expect(dk.plaintext?.length).toBe(bytes);
      expect(dk.ciphertext.length).toBe(envelopeLength(id, bytes));
      expect((await kms.decrypt(dk.ciphertext)).plaintext.equals(dk.plaintext as Buffer)).toBe(true);
    }
    await expectCode(kms.generateDataKey(id, { bytes: 15 }), 'InvalidRequest', 'bytes', '16', '64');
    await expectCode(kms.generateDataKey(id, { bytes: 65 }), 'InvalidRequest', 'bytes', '16', '64');
  });

  it('without_plaintext omits the plaintext from the answer; the sealed key still opens', async () => {
    const raw = (await kms.call('generate_data_key', { key_id: id, without_plaintext: true })) as unknown as Record<string, unknown>;
    expect(Object.keys(raw).sort()).toEqual(['ciphertext', 'key_id', 'key_version']);
    const dk = await kms.generateDataKey(id, { withoutPlaintext: true, bytes: 24 });
    expect(dk).not.toHaveProperty('plaintext');
    const opened = await kms.decrypt(dk.ciphertext);
    expect(opened.plaintext.length).toBe(24);
  });

  it('data keys are fresh each time', async () => {
    const a = await kms.generateDataKey(id);
    const b = await kms.generateDataKey(id);
    expect((a.plaintext as Buffer).equals(b.plaintext as Buffer)).toBe(false);
  });
});

describe('generate_data_key_batch', () => {
  const id = 'batch-key';
  beforeAll(async () => {
    await kms.createKey(id);
  });

  it('count 1 and 1024 work; every key opens to its plaintext; all are distinct', async () => {
    const one = await kms.generateDataKeyBatch(id, 1, { context: { c: '1' } });
    expect(one.keys).toHaveLength(1);
    expect((await kms.decrypt(one.keys[0]!.ciphertext, { context: { c: '1' } })).plaintext.equals(one.keys[0]!.plaintext)).toBe(true);

    const context = { bucket: 'batch' };
    const batch = await kms.generateDataKeyBatch(id, 1024, { context, bytes: 16 });
    expect(batch.keyId).toBe(id);
    expect(batch.keyVersion).toBe(1);
    expect(batch.keys).toHaveLength(1024);
    const opened = await Promise.all(batch.keys.map((k) => kms.decrypt(k.ciphertext, { context })));
    const seen = new Set<string>();
    batch.keys.forEach((k, i) => {
      expect(k.plaintext.length).toBe(16);
      expect(k.ciphertext.length).toBe(envelopeLength(id, 16));
      expect(opened[i]!.plaintext.equals(k.plaintext)).toBe(true);
      expect(opened[i]!.keyVersion).toBe(1);
      seen.add(k.plaintext.toString('hex'));
    });
    expect(seen.size).toBe(1024);
  });

  it('refuses count 0 and 1025, naming the range', async () => {
    await expectCode(kms.generateDataKeyBatch(id, 0), 'InvalidRequest', 'count', '1024');
    await expectCode(kms.generateDataKeyBatch(id, 1025), 'InvalidRequest', 'count', '1024');
  });

  it('all keys of a batch are sealed under the current version after a rotation', async () => {
    const other = kid('batch-rot');
    await kms.createKey(other);
    await kms.rotateKey(other);
    const batch = await kms.generateDataKeyBatch(other, 3);
    expect(batch.keyVersion).toBe(2);
    for (const k of batch.keys) {
      expect(k.ciphertext.subarray(0, 7 + other.length)).toEqual(envelopeHeader(other, 2));
      expect((await kms.decrypt(k.ciphertext)).keyVersion).toBe(2);
    }
  });
});

describe('re_encrypt', () => {
  it('to the same key after a rotation: new version, same plaintext, plaintext never returned', async () => {
    const id = kid('reenc');
    await kms.createKey(id);
    const context = { tenant: 't1' };
    const v1 = await kms.encrypt(id, Buffer.from('move me'), { context });
    await kms.rotateKey(id);
    const raw = (await kms.call('re_encrypt', { ciphertext: v1.ciphertext, context })) as unknown as Record<string, unknown>;
    expect(Object.keys(raw).sort()).toEqual(['ciphertext', 'key_id', 'key_version']);
    expect(raw.key_id).toBe(id);
    expect(raw.key_version).toBe(2);
    const moved = raw.ciphertext as Buffer;
    expect(moved.includes(Buffer.from('move me'))).toBe(false);
    expect(moved.subarray(0, 7 + id.length)).toEqual(envelopeHeader(id, 2));
    const opened = await kms.decrypt(moved, { context });
    expect(opened).toEqual({ plaintext: Buffer.from('move me'), keyId: id, keyVersion: 2 });
    // bound to the same context
    await expectCode(kms.decrypt(moved), 'InvalidCiphertext');
  });

  it('to destination_key_id: sealed under the destination current version', async () => {
    const src = kid('reenc-src');
    const dst = kid('reenc-dst');
    await kms.createKey(src);
    await kms.createKey(dst);
    await kms.rotateKey(dst);
    const sealed = await kms.encrypt(src, Buffer.from('cross-key'), { context: { a: 'b' } });
    const moved = await kms.reEncrypt(sealed.ciphertext, { context: { a: 'b' }, destinationKeyId: dst });
    expect(moved.keyId).toBe(dst);
    expect(moved.keyVersion).toBe(2);
    const opened = await kms.decrypt(moved.ciphertext, { context: { a: 'b' } });
    expect(opened).toEqual({ plaintext: Buffer.from('cross-key'), keyId: dst, keyVersion: 2 });
  });

  it('refuses a wrong context, and bad or unusable destinations', async () => {
    const src = kid('reenc-err');
    await kms.createKey(src);
    const sealed = await kms.encrypt(src, Buffer.from('x'), { context: { a: 'b' } });
    await expectCode(kms.reEncrypt(sealed.ciphertext, { context: { a: 'c' } }), 'InvalidCiphertext');
    await expectCode(kms.reEncrypt(sealed.ciphertext, { context: { a: 'b' }, destinationKeyId: 'missing-dst' }), 'KeyNotFound', 'missing-dst');
    await expectCode(kms.reEncrypt(sealed.ciphertext, { context: { a: 'b' }, destinationKeyId: 'bad id' }), 'InvalidKeyId', 'destination_key_id');
    const off = kid('reenc-off');
    await kms.createKey(off);
    await kms.disableKey(off);
    await expectCode(kms.reEncrypt(sealed.ciphertext, { context: { a: 'b' }, destinationKeyId: off }), 'KeyDisabled', off);
  });
});

describe('error codes', () => {
  it('InvalidRequest: unknown, missing or mistyped arguments, named in the message', async () => {
    const id = kid('invreq');
    await kms.createKey(id);
    const call = (op: string, args: Record<string, unknown>) => kms.call(op as 'health', args as never);
    await expectCode(call('encrypt', { key_id: id, plain_text: Buffer.from('x') }), 'InvalidRequest', 'plain_text');
    await expectCode(call('encrypt', { key_id: id }), 'InvalidRequest', 'plaintext');
    await expectCode(call('encrypt', { key_id: id, plaintext: 'a string, not bin' }), 'InvalidRequest', 'plaintext', /bin/);
    await expectCode(call('describe_key', {}), 'InvalidRequest', 'key_id');
    await expectCode(call('schedule_key_deletion', { key_id: id }), 'InvalidRequest', 'pending_days');
    await expectCode(call('generate_data_key', { key_id: id, without_plaintext: 'yes' }), 'InvalidRequest', 'without_plaintext');
    await expectCode(call('health', { verbose: true }), 'InvalidRequest', 'verbose');
    await expectCode(call('encrypt', { key_id: id, plaintext: Buffer.from('x'), context: { a: 1 } }), 'InvalidRequest', 'context');
  });

  it('UnknownOperation names the operation', async () => {
    await expectCode(kms.call('frobnicate_key' as 'health', {} as never), 'UnknownOperation', 'frobnicate_key');
  });

  it('InvalidKeyId for ids outside ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$', async () => {
    await expectCode(kms.createKey('-leading-dash'), 'InvalidKeyId', '-leading-dash');
    await expectCode(kms.createKey('has space'), 'InvalidKeyId', 'has space');
    await expectCode(kms.createKey('a'.repeat(129)), 'InvalidKeyId', 'key_id');
    await expectCode(kms.describeKey('slash/inside'), 'InvalidKeyId', 'slash/inside');
    await expectCode(kms.encrypt('', Buffer.from('x')), 'InvalidKeyId', 'key_id');
    // 128 characters is the longest valid id
    const longest = 'L'.repeat(128);
    expect((await kms.createKey(longest)).keyId).toBe(longest);
    const sealed = await kms.encrypt(longest, Buffer.from('long'));
    expect(sealed.ciphertext.length).toBe(envelopeLength(longest, 4));
    expect((await kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('long');
  });

  it('KeyNotFound and KeyAlreadyExists name the key', async () => {
    await expectCode(kms.describeKey('no-such-key'), 'KeyNotFound', 'no-such-key');
    await expectCode(kms.encrypt('no-such-key', Buffer.from('x')), 'KeyNotFound', 'no-such-key');
    await expectCode(kms.generateDataKey('no-such-key'), 'KeyNotFound', 'no-such-key');
    const id = kid('dup');
    await kms.createKey(id, { description: 'first' });
    await expectCode(kms.createKey(id, { description: 'second' }), 'KeyAlreadyExists', id);
    expect((await kms.describeKey(id)).description).toBe('first');
  });

  it('FrameTooLarge: a header announcing more than 1 MiB is answered with id 0, then the connection is closed', async () => {
    const conn = await RawConn.open(daemon.socketPath);
    try {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(2_000_000);
      conn.send(header);
      const answer = (await conn.next()).value;
      expect(answer).toEqual({
        id: 0,
        ok: false,
        error: { code: 'FrameTooLarge', message: expect.stringContaining('2000000') },
      });
      expect(answer.error.message).toContain('1048576');
      expect(await conn.closedWithin()).toBe(true);
    } finally {
      conn.close();
    }
  });

  it('a call above the client maxFrameBytes is refused locally with FrameTooLarge; the connection stays usable', async () => {
    const local = await failure(kms.encrypt('enc-key', Buffer.alloc(1_100_000)));
    expect(local.code).toBe('FrameTooLarge');
    expect(local.message).toContain('1048576');
    expect((await kms.health()).healthy).toBe(true);
  });

  it('BackendUnavailable: no daemon to connect to', async () => {
    await expectCode(KmsClient.connect(join(daemon.dir, 'nobody-here.sock')), 'BackendUnavailable', 'nobody-here.sock');
  });
});

describe('Busy (limits.max_connections: 2)', () => {
  let busy: DaemonHandle;
  beforeAll(async () => {
    busy = await startDaemon({ config: 'limits: { max_connections: 2 }\n' });
  });
  afterAll(async () => {
    if (busy?.running) await busy.stop();
  });

  it('the third connection gets Busy with id 0 and is closed; a slot frees when a client leaves', async () => {
    const a = await KmsClient.connect(busy.socketPath, { reconnect: false });
    const b = await KmsClient.connect(busy.socketPath, { reconnect: false });
    try {
      // both connections are accepted and registered once they have been answered
      expect((await a.health()).healthy).toBe(true);
      expect((await b.health()).healthy).toBe(true);
      expect((await a.status()).limits.maxConnections).toBe(2);

      const third = await RawConn.open(busy.socketPath);
      const answer = (await third.next()).value;
      expect(answer).toEqual({ id: 0, ok: false, error: { code: 'Busy', message: expect.stringContaining('2') } });
      expect(answer.error.message).toMatch(/connection/);
      expect(await third.closedWithin()).toBe(true);
      third.close();

      // through the client: the call in flight fails with Busy
      const c = await KmsClient.connect(busy.socketPath, { reconnect: false });
      await expectCode(c.health(), 'Busy');
      await c.close();

      // the first two keep working
      expect((await a.health()).healthy).toBe(true);
      expect((await b.health()).healthy).toBe(true);
    } finally {
      await a.close();
    }
    // once a has gone, a new client is served (the server notices the close asynchronously: retry a little)
    let served = false;
    for (let attempt = 0; attempt < 100 && !served; attempt++) {
      const d = await KmsClient.connect(busy.socketPath, { reconnect: false });
      try {
        served = (await d.health()).healthy;
      } catch (err) {
        expect((err as KmsError).code).toBe('Busy');
        await new Promise((r) => setTimeout(r, 20));
      } finally {
        await d.close();
      }
    }
    expect(served).toBe(true);
    await b.close();
    // and the daemon still stops cleanly after refusing connections
    expect(await busy.stop()).toBe(0);
  });
});

describe('BackendUnavailable when the daemon goes away', () => {
  it('a call on a client whose daemon stopped rejects with BackendUnavailable', async () => {
    const d = await startDaemon();
    const noRetry = await KmsClient.connect(d.socketPath, { reconnect: false });
    const retry = await KmsClient.connect(d.socketPath, { reconnect: { initialDelayMs: 5, maxDelayMs: 10, maxAttempts: 3 } });
    expect((await noRetry.health()).healthy).toBe(true);
    expect((await retry.health()).healthy).toBe(true);
    expect(await d.stop()).toBe(0);
    try {
      await expectCode(noRetry.health(), 'BackendUnavailable');
      await expectCode(retry.health(), 'BackendUnavailable', d.socketPath);
      await expectCode(KmsClient.connect(d.socketPath), 'BackendUnavailable', d.socketPath);
    } finally {
      await noRetry.close();
      await retry.close();
    }
  });
});

describe.skipIf(OTHERS !== undefined)(`AccessDenied (default policy, client running as uid 65534)${skipped}`, () => {
  let open: DaemonHandle;
  let dir: string;
  let script: string;
  let sealed: Buffer;
  let otherSealed: Buffer;

  beforeAll(async () => {
    dir = sharedTempDir('kms-acl-'); // the socket's directory must be traversable by the other user
    open = await startDaemon({ dir, config: 'socket: { mode: "0666" }\n' });
    const admin = await KmsClient.connect(open.socketPath, { reconnect: false });
    await admin.createKey('shared');
    sealed = (await admin.encrypt('shared', Buffer.from('for the group'))).ciphertext;
    await admin.createKey('other');
    otherSealed = (await admin.encrypt('other', Buffer.from('not for everyone'))).ciphertext;
    await admin.close();
    // The client script runs as another user: it imports the built client by absolute path.
    script = join(dir, 'client.mjs');
    writeFileSync(
      script,
      `import { KmsClient } from ${JSON.stringify(CLIENT_JS)};
const [socket, sealedHex, otherHex] = process.argv.slice(2);
const kms = await KmsClient.connect(socket, { reconnect: false });
const calls = {
  health: () => kms.health(),
  status: () => kms.status(),
  describe_key: () => kms.describeKey('shared'),
  list_keys: () => kms.listKeys(),
  create_key: () => kms.createKey('intruder'),
  disable_key: () => kms.disableKey('shared'),
  encrypt: () => kms.encrypt('shared', Buffer.from('x')),
  decrypt: () => kms.decrypt(Buffer.from(sealedHex, 'hex')),
  generate_data_key: () => kms.generateDataKey('shared'),
  describe_other: () => kms.describeKey('other'),
  decrypt_other: () => kms.decrypt(Buffer.from(otherHex, 'hex')),
  re_encrypt_same: () => kms.reEncrypt(Buffer.from(sealedHex, 'hex')),
  re_encrypt_to_other: () => kms.reEncrypt(Buffer.from(sealedHex, 'hex'), { destinationKeyId: 'other' }),
};
const out = {};
for (const [op, f] of Object.entries(calls)) {
  try { await f(); out[op] = { ok: true }; } catch (e) { out[op] = { ok: false, code: e.code, message: e.message }; }
}
out.uid = process.getuid();
await kms.close();
process.stdout.write(JSON.stringify(out));
`,
    );
    chmodSync(script, 0o644);
    // the daemon's own files stay private
    expect(readFileSync(join(open.stateDir, 'root.key')).length).toBe(32);
  });

  afterAll(async () => {
    if (open?.running) await open.stop();
  });

  function runAs(setprivArgs: string[]): Promise<Record<string, { ok: boolean; code?: string; message?: string }> & { uid: number }> {
    return new Promise((resolve, reject) => {
      const p = spawn('setpriv', [...setprivArgs, process.execPath, script, open.socketPath, sealed.toString('hex'), otherSealed.toString('hex')], {
        cwd: dir,
        env: cleanEnv({ HOME: dir }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      p.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      p.on('error', reject);
      p.on('close', (code) => {
        if (code !== 0) reject(new Error(`client as another user exited ${code}: ${err}`));
        else resolve(JSON.parse(out));
      });
    });
  }

  it('another user (no shared group) is denied every operation', async () => {
    const r = await runAs(['--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(r.uid).toBe(65534);
    for (const op of ['health', 'status', 'describe_key', 'list_keys', 'create_key', 'disable_key', 'encrypt', 'decrypt', 'generate_data_key']) {
      const res = r[op]!;
      expect(res.ok, op).toBe(false);
      expect(res.code, op).toBe('AccessDenied');
      expect(res.message, op).toContain(op);
      expect(res.message, op).toMatch(/denied/);
    }
    for (const call of ['describe_other', 'decrypt_other', 're_encrypt_same', 're_encrypt_to_other']) expect(r[call]!.code, call).toBe('AccessDenied');
    // and nothing changed
    const admin = await KmsClient.connect(open.socketPath, { reconnect: false });
    expect((await admin.describeKey('shared')).state).toBe('Enabled');
    await expectCode(admin.describeKey('intruder'), 'KeyNotFound');
    await admin.close();
  });

  it("a member of the socket's group may use the data operations but not manage keys", async () => {
    // the socket is the daemon's group (root's gid 0 here): give the other user that group only
    const r = await runAs(['--reuid=65534', '--regid=65534', '--groups=0']);
    expect(r.uid).toBe(65534);
    for (const op of ['health', 'status', 'describe_key', 'encrypt', 'decrypt', 'generate_data_key', 'describe_other', 'decrypt_other', 're_encrypt_same', 're_encrypt_to_other']) {
      expect(r[op], op).toEqual({ ok: true });
    }
    for (const op of ['create_key', 'disable_key', 'list_keys']) {
      expect(r[op]!.code, op).toBe('AccessDenied');
      expect(r[op]!.message, op).toContain(op);
    }
  });

  it('SIGHUP reloads the policy from the config file; a bad policy is refused and the running one kept', async () => {
    const reloads = () => open.stderr().split('policy and log level reloaded').length - 1;
    const refusals = () => open.stderr().split('reload refused').length - 1;
    writeFileSync(
      open.configPath as string,
      `socket: { mode: "0666" }
policy:
  - { match: { uid: 0 }, allow: ["*"] }
  - { match: { uid: 65534 }, allow: [health, describe_key, encrypt, decrypt, re_encrypt], keys: ["shar*"] }
`,
    );
    const before = reloads();
    open.proc.kill('SIGHUP');
    await waitFor(() => reloads() > before, 10_000, 'the policy reload');
    const r = await runAs(['--reuid=65534', '--regid=65534', '--clear-groups']);
    for (const op of ['health', 'describe_key', 'encrypt', 'decrypt', 're_encrypt_same']) expect(r[op], op).toEqual({ ok: true });
    for (const op of ['status', 'generate_data_key', 'create_key', 'list_keys']) {
      expect(r[op]!.code, op).toBe('AccessDenied');
      expect(r[op]!.message, op).toContain(op);
    }
    // the key globs decide per key: the key named inside a ciphertext and the destination count too
    for (const call of ['describe_other', 'decrypt_other', 're_encrypt_to_other']) {
      expect(r[call]!.code, call).toBe('AccessDenied');
      expect(r[call]!.message, call).toContain('other');
    }

    writeFileSync(open.configPath as string, 'policy:\n  - { match: { uid: 65534 }, allow: [frobnicate] }\n');
    const refusedBefore = refusals();
    open.proc.kill('SIGHUP');
    await waitFor(() => refusals() > refusedBefore, 10_000, 'the reload refusal');
    expect(open.stderr()).toContain('policy[0].allow[0]');
    const same = await runAs(['--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(same).toEqual(r);
    expect(open.running).toBe(true);
  });
});

describe('Internal', () => {
  // Internal is for faults inside the daemon. The one fault reachable from outside without
  // changing code is a damaged key record: wrapped material that no longer unwraps under the root
  // (as after disk corruption). The daemon only proves the root against the first key at start-up,
  // so a later key with damaged material surfaces as Internal on first use.
  it('a key whose stored material is damaged fails with Internal, without leaking the material', async () => {
    const d = await startDaemon();
    let c = await KmsClient.connect(d.socketPath, { reconnect: false });
    await c.createKey('aaa-good');
    await c.createKey('zzz-damaged');
    await c.close();
    expect(await d.stop()).toBe(0);

    const file = join(d.stateDir, 'keys', 'zzz-damaged.json');
    const record = JSON.parse(readFileSync(file, 'utf8'));
    const material = Buffer.from(record.versions[0].wrappedMaterial, 'base64');
    material[material.length - 1] ^= 0xff;
    record.versions[0].wrappedMaterial = material.toString('base64');
    writeFileSync(file, JSON.stringify(record, null, 2) + '\n', { mode: 0o600 });

    const again = await startDaemon({ dir: d.dir });
    c = await KmsClient.connect(again.socketPath, { reconnect: false });
    try {
      expect((await c.describeKey('zzz-damaged')).state).toBe('Enabled');
      const err = await expectCode(c.encrypt('zzz-damaged', Buffer.from('x')), 'Internal');
      expect(err.message).not.toContain(record.versions[0].wrappedMaterial);
      expect(err.message).not.toContain(material.toString('hex'));
      // the healthy key is unaffected
      const ok = await c.encrypt('aaa-good', Buffer.from('fine'));
      expect((await c.decrypt(ok.ciphertext)).plaintext.toString()).toBe('fine');
    } finally {
      await c.close();
      await again.stop();
    }
  });
});

describe('raw socket sanity', () => {
  it('the daemon answers a frame split into single bytes', async () => {
    const conn = await RawConn.open(daemon.socketPath);
    try {
      const bytes = frame(mp({ id: 9, op: 'health', args: {} }));
      for (const b of bytes) {
        conn.send(Buffer.from([b]));
        await new Promise((r) => setImmediate(r));
      }
      const answer = (await conn.next()).value;
      expect(answer).toEqual({ id: 9, ok: true, result: { healthy: true, backend: 'local/file', version: VERSION } });
    } finally {
      conn.close();
    }
  });
});
