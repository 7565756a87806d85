// Many requests in flight at once over several connections: every one answered, correctly, matched
// to its call. Also with a tiny per-connection in-flight limit (the daemon queues and stops reading
// instead of refusing) and with a client that stops reading its answers for a while.
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import { cleanupTempDirs, killAllDaemons, prng, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { RawConn, request } from './wire.js';

const clients: KmsClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await killAllDaemons();
});
afterAll(() => cleanupTempDirs());

type Check = () => void | Promise<void>;

async function mixedLoad(d: DaemonHandle, total: number, connections: number, seed: number): Promise<void> {
  const rand = prng(seed);
  const pick = (n: number) => Math.floor(rand() * n);
  for (let i = 0; i < connections; i++) clients.push(await KmsClient.connect(d.socketPath, { reconnect: false }));
  const admin = clients[0]!;
  const keys = ['pipe-a', 'pipe-b', 'pipe-c', 'pipe-d'];
  for (const k of keys) await admin.createKey(k);
  await admin.rotateKey('pipe-b'); // two versions in play

  // Ciphertexts to open during the load, sealed beforehand.
  const sealed: Array<{ ciphertext: Buffer; plaintext: Buffer; context: Record<string, string>; keyId: string; version: number }> = [];
  for (let i = 0; i < 50; i++) {
    const keyId = keys[i % keys.length]!;
    const plaintext = randomBytes(1 + pick(2000));
    const context = { n: String(i) };
    const r = await admin.encrypt(keyId, plaintext, { context });
    sealed.push({ ciphertext: r.ciphertext, plaintext, context, keyId, version: r.keyVersion });
  }

  // All calls are issued in the same tick: each client pipelines its share on its connection.
  const calls: Array<Promise<Check>> = [];
  const counts = { generate_data_key: 0, encrypt: 0, decrypt: 0, describe_key: 0 };
  for (let i = 0; i < total; i++) {
    const c = clients[i % connections]!;
    const keyId = keys[pick(keys.length)]!;
    const expectedVersion = keyId === 'pipe-b' ? 2 : 1;
    switch (pick(4)) {
      case 0: {
        counts.generate_data_key++;
        const bytes = 16 + pick(49);
        const context = { req: String(i) };
        calls.push(
          c.generateDataKey(keyId, { bytes, context }).then((dk) => async () => {
            expect(dk.keyId).toBe(keyId);
            expect(dk.keyVersion).toBe(expectedVersion);
            expect(dk.plaintext?.length).toBe(bytes);
            const opened = await c.decrypt(dk.ciphertext, { context });
            expect(opened.plaintext.equals(dk.plaintext as Buffer)).toBe(true);
          }),
        );
        break;
      }
      case 1: {
        counts.encrypt++;
        const plaintext = randomBytes(pick(4096));
        calls.push(
          c.encrypt(keyId, plaintext).then((r) => async () => {
            expect(r.keyId).toBe(keyId);
            expect(r.keyVersion).toBe(expectedVersion);
            expect((await c.decrypt(r.ciphertext)).plaintext.equals(plaintext)).toBe(true);
          }),
        );
        break;
      }
      case 2: {
        counts.decrypt++;
        const s = sealed[pick(sealed.length)]!;
        calls.push(
          c.decrypt(s.ciphertext, { context: s.context }).then((r) => () => {
            expect(r.plaintext.equals(s.plaintext)).toBe(true);
            expect(r.keyId).toBe(s.keyId);
            expect(r.keyVersion).toBe(s.version);
          }),
        );
        break;
      }
      default: {
        counts.describe_key++;
        calls.push(
          c.describeKey(keyId).then((k) => () => {
            expect(k.keyId).toBe(keyId);
            expect(k.currentVersion).toBe(expectedVersion);
          }),
        );
      }
    }
  }
  expect(clients.reduce((n, c) => n + c.inFlight, 0)).toBe(total);
  const checks = await Promise.all(calls);
  expect(checks).toHaveLength(total);
  for (const n of Object.values(counts)) expect(n).toBeGreaterThan(total / 8);
  // Second wave (the follow-up decrypts), pipelined as well.
  await Promise.all(checks.map((check) => check()));
}

describe('pipelining', () => {
  it('1,000 pipelined requests over 8 connections are all answered correctly', async () => {
    const d = await startDaemon();
    await mixedLoad(d, 1000, 8, 0x5eed01);
  });

  it('the same load with max_inflight_per_connection: 4 (back-pressure, not rejection)', async () => {
    const d = await startDaemon({ config: 'limits: { max_inflight_per_connection: 4 }\n' });
    await mixedLoad(d, 1000, 8, 0x5eed02);
    // create_key waits for the disk, so these really pile up beyond the limit of 4 on one connection
    const c = clients[0]!;
    const ids = Array.from({ length: 300 }, (_, i) => `queued-${String(i).padStart(3, '0')}`);
    const created = await Promise.all(ids.map((id) => c.createKey(id)));
    expect(created.map((k) => k.keyId)).toEqual(ids);
    const listed = await c.listKeys({ prefix: 'queued-', limit: 1000 });
    expect(listed.keys.map((k) => k.keyId)).toEqual(ids);
    expect((await c.status()).limits.maxInflightPerConnection).toBe(4);
  });

  it('pipelined mutations of one key are serialized: one create wins, rotations take distinct versions', async () => {
    const d = await startDaemon();
    const c = await KmsClient.connect(d.socketPath, { reconnect: false });
    clients.push(c);
    const creates = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => c.createKey('contested', { description: `attempt ${i}` })));
    const won = creates.filter((r) => r.status === 'fulfilled');
    expect(won).toHaveLength(1);
    for (const r of creates) {
      if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('KeyAlreadyExists');
    }
    const rotations = await Promise.all(Array.from({ length: 10 }, () => c.rotateKey('contested')));
    expect(rotations.map((k) => k.currentVersion).sort((a, b) => a - b)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const info = await c.describeKey('contested');
    expect(info.currentVersion).toBe(11);
    expect(info.versions).toBe(11);
    // data sealed while rotations are in flight opens, under the version it names
    const mixed = await Promise.all([
      ...Array.from({ length: 5 }, () => c.rotateKey('contested').then(() => null)),
      ...Array.from({ length: 20 }, (_, i) => c.encrypt('contested', Buffer.from(`m${i}`))),
    ]);
    for (const [i, r] of mixed.slice(5).entries()) {
      const opened = await c.decrypt((r as { ciphertext: Buffer }).ciphertext);
      expect(opened.plaintext.toString()).toBe(`m${i}`);
      expect(opened.keyVersion).toBe((r as { keyVersion: number }).keyVersion);
    }
  });

  it('a client that stops reading its answers is waited for, not dropped: every answer arrives once it reads again', async () => {
    const d = await startDaemon();
    const admin = await KmsClient.connect(d.socketPath, { reconnect: false });
    clients.push(admin);
    await admin.createKey('slow-reader');
    const conn = await RawConn.open(d.socketPath);
    try {
      conn.socket.pause(); // read nothing for now
      const plaintext = randomBytes(60_000);
      const n = 150; // ~9 MB of answers: far more than the socket buffers hold
      const frames: Buffer[] = [];
      for (let i = 1; i <= n; i++) frames.push(request(i, 'encrypt', { key_id: 'slow-reader', plaintext }));
      conn.send(Buffer.concat(frames));
      // The daemon keeps serving other connections meanwhile.
      expect((await admin.health()).healthy).toBe(true);
      await new Promise((r) => setTimeout(r, 200));
      expect((await admin.describeKey('slow-reader')).keyId).toBe('slow-reader');
      conn.socket.resume();
      const answers = await conn.collect(n, 60_000);
      const ids = answers.map((a) => a.value.id as number).sort((a, b) => a - b);
      expect(ids).toEqual(Array.from({ length: n }, (_, i) => i + 1));
      for (const a of answers) {
        expect(a.value.ok).toBe(true);
        expect(a.value.result.ciphertext.length).toBe(7 + 'slow-reader'.length + 24 + 60_000 + 16);
      }
      const opened = await admin.decrypt(answers[n - 1]!.value.result.ciphertext);
      expect(opened.plaintext.equals(plaintext)).toBe(true);
    } finally {
      conn.close();
    }
  });
});
