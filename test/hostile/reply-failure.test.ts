// Issue 11, item 2 (second half). An answer the encoder refuses must not escape the reply callback:
// it becomes an Internal answer, an audit line and a log line, and the daemon keeps serving. The
// trigger is a key record whose tags hold a name the wire encoder refuses ("constructor"), as a
// record written by another host into a shared keystore (or an older version) can. Figures held:
// the daemon lives, both describe_key and list_keys get Internal, `health` answers within 5 s.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawConn } from '../integration/wire.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, startDaemon } from '../helpers/daemon.js';
import { KmsClient } from '../../src/rpc/client.js';

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

describe('an answer that cannot be encoded', () => {
  it('is answered Internal, audited and logged; the daemon keeps serving', async () => {
    const first = await startDaemon();
    const admin = await KmsClient.connect(first.socketPath);
    await admin.createKey('victim', { tags: { team: 'storage' } });
    await admin.close();
    expect(await first.stop()).toBe(0);

    const recordPath = join(first.stateDir, 'keys', 'victim.json');
    const record = JSON.parse(readFileSync(recordPath, 'utf8')) as { tags: Record<string, string> };
    writeFileSync(recordPath, JSON.stringify({ ...record, tags: { constructor: 'x', team: 'storage' } }), { mode: 0o600 });

    const d = await startDaemon({ dir: first.dir, stateDir: first.stateDir });
    const conn = await RawConn.open(d.socketPath);
    const describe = await conn.call(1, 'describe_key', { key_id: 'victim' });
    expect(d.running, `the daemon exited; stderr:\n${d.stderr().slice(-2000)}`).toBe(true);
    expect(describe).toMatchObject({ id: 1, ok: false, error: { code: 'Internal' } });
    expect(describe.error.message).toMatch(/describe_key could not be answered/);
    const list = await conn.call(2, 'list_keys', {});
    expect(list).toMatchObject({ id: 2, ok: false, error: { code: 'Internal' } });

    const started = Date.now();
    expect((await conn.call(3, 'health')).ok).toBe(true);
    const healthMs = Date.now() - started;
    const other = await RawConn.open(d.socketPath);
    expect((await other.call(1, 'health')).ok).toBe(true);
    other.close();
    conn.close();
    console.log(`[reply-failure] describe_key and list_keys answered Internal; health afterwards in ${healthMs} ms`);
    expect(healthMs).toBeLessThan(5000);

    const audit = readFileSync(join(d.stateDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(audit.filter((l) => l.op === 'describe_key' && l.error_code === 'Internal')).toHaveLength(1);
    expect(audit.filter((l) => l.op === 'list_keys' && l.error_code === 'Internal')).toHaveLength(1);
    expect(d.stderr()).toMatch(/could not be given; answering Internal/);
    expect(await d.stop()).toBe(0);
  }, 60_000);
});
