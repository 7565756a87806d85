// Issue 11, item 8. Data-key plaintexts must not linger in the daemon's memory once their answers
// have left. The test generates 200 data keys, waits for the answers, then reads every readable
// mapping of the daemon through /proc/PID/mem (it runs as root) and counts the keys it finds.
// Figure held: 0 of 200 (it used to be 186). Decrypted data keys are checked the same way. Plaintexts
// sent to `encrypt` pass through Node's socket read path, which the daemon cannot zero: what is seen
// of them must lie in malloc's [heap] (Node's freed 64 KiB read buffer), never in the daemon's own
// memory, and at most 5 of 100 sent one at a time (before the fix, all 200 were found anywhere).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawConn, request } from '../integration/wire.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, startDaemon } from '../helpers/daemon.js';
import { findInMemory, sleep } from './attack.js';

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

const isRoot = process.getuid?.() === 0;

describe('plaintexts after their answers', () => {
  it.skipIf(!isRoot)('none of 200 data keys (generated, batch-generated or decrypted) is left in the daemon memory', async () => {
    const d = await startDaemon();
    const conn = await RawConn.open(d.socketPath);
    expect((await conn.call(1, 'create_key', { key_id: 'dk' })).ok).toBe(true);
    // 100 single data keys, pipelined as a client would.
    conn.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => request(10 + i, 'generate_data_key', { key_id: 'dk', context: { n: String(i) } }))));
    const single = (await conn.collect(100)).map((f) => f.value as { ok: boolean; result: { plaintext: Buffer; ciphertext: Buffer } });
    expect(single.every((a) => a.ok)).toBe(true);
    // 100 more in one batch answer (encoded by msgpackr, not the flat fast path).
    const batch = (await conn.call(200, 'generate_data_key_batch', { key_id: 'dk', count: 100 })) as { ok: boolean; result: { keys: Array<{ plaintext: Buffer }> } };
    expect(batch.ok).toBe(true);
    // Half of the single ones come back once more through decrypt.
    for (let i = 0; i < 50; i++) {
      const back = await conn.call(300 + i, 'decrypt', { ciphertext: single[i]!.result.ciphertext, context: { n: String(i) } });
      expect(Buffer.compare(back.result.plaintext, single[i]!.result.plaintext)).toBe(0);
    }
    const keys = [...single.map((a) => a.result.plaintext), ...batch.result.keys.map((k) => k.plaintext)];
    expect(keys).toHaveLength(200);
    // 200 plaintexts sent to encrypt, 100 pipelined and 100 one at a time.
    const plaintexts = Array.from({ length: 200 }, () => randomBytes(32));
    conn.send(Buffer.concat(plaintexts.slice(0, 100).map((p, i) => request(400 + i, 'encrypt', { key_id: 'dk', plaintext: p }))));
    expect((await conn.collect(100)).every((f) => f.value.ok === true)).toBe(true);
    for (let i = 100; i < 200; i++) expect((await conn.call(400 + i, 'encrypt', { key_id: 'dk', plaintext: plaintexts[i]! })).ok).toBe(true);
    await sleep(500); // answers are out; give the daemon's write callbacks a moment

    const { found, scannedMiB } = findInMemory(d.pid, keys);
    const pipelined = findInMemory(d.pid, plaintexts.slice(0, 100));
    const oneByOne = findInMemory(d.pid, plaintexts.slice(100));
    const sent = pipelined.found + oneByOne.found;
    console.log(`[lingering-keys] ${found} of 200 data keys and ${sent} of 200 encrypt plaintexts found in ${scannedMiB} MiB of daemon memory` +
      ` (pipelined ${pipelined.found} in ${JSON.stringify([...pipelined.where])}, one at a time ${oneByOne.found} in ${JSON.stringify([...oneByOne.where])})`);
    expect(d.running).toBe(true);
    expect(found).toBe(0);
    // What is left of encrypt plaintexts is Node's own freed read buffer (malloc's [heap]: Node reads
    // 64 KiB, copies the bytes read into a right-sized buffer and frees the first without zeroing it);
    // nothing the daemon holds (V8's heap, its own buffers) keeps one. One at a time, each read reuses
    // the freed buffer of the last, so at most a few survive; a pipelined burst lives in one buffer.
    expect([...pipelined.where.keys(), ...oneByOne.where.keys()].every((region) => region === '[heap]')).toBe(true);
    expect(oneByOne.found).toBeLessThanOrEqual(5);
    // The scan does find what is there: the key id and a ciphertext sit in the daemon's memory.
    expect(findInMemory(d.pid, [Buffer.from(single[0]!.result.ciphertext.subarray(0, 16))]).found).toBe(1);
    conn.close();
  }, 120_000);
});
