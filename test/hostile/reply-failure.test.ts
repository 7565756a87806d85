// Issue 11, item 2 (second half). An answer that cannot be given (the encoder refuses it, the
// transport throws) must not escape the reply callback: it becomes an Internal answer, an audit line
// and a log line, and the daemon keeps serving. The original trigger, a key record whose tags hold a
// name the wire encoder refuses ("constructor"), can no longer reach an answer: records read back
// keep only valid tags (item 2a). So the class is tested at the pipeline with a reply that throws,
// and the original attack against the real daemon, which now answers with the bad tag dropped.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RawConn } from '../integration/wire.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, startDaemon } from '../helpers/daemon.js';
import { KmsClient } from '../../src/rpc/client.js';
import { Pipeline, type AuditEvent } from '../../src/ops/pipeline.js';
import type { OperationEnv } from '../../src/ops/operations.js';
import { KmsError } from '../../src/errors.js';

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

const caller: AuditEvent['caller'] = { kind: 'peer', uid: 1, gid: 1, pid: 1, groups: [1] };
/** Just enough of the key service for `health` to answer. */
const env = {
  service: { health: async () => ({ healthy: true }), root: { type: 'local' }, keystore: { type: 'file' } },
  version: 'test',
} as unknown as OperationEnv;

describe('an answer that cannot be given', () => {
  it('a reply that throws is answered once more with Internal, audited and logged; nothing escapes run()', async () => {
    const audited: AuditEvent[] = [];
    const logged: string[] = [];
    const logger = { info: () => undefined, warn: () => undefined, error: (_o: object, msg?: string) => void logged.push(msg ?? '') };
    const pipeline = new Pipeline(env, { decide: () => ({ allowed: true, rule: 0, reason: 'test' }) }, { record: (e) => void audited.push({ ...e }) }, logger);
    const answers: Array<KmsError | null> = [];
    await new Promise<void>((resolve, reject) => {
      try {
        pipeline.run('health', {}, caller, undefined, 'socket', (error) => {
          answers.push(error);
          if (answers.length === 1) throw new TypeError('cannot encode map key "constructor"');
          resolve();
        });
      } catch (err) {
        reject(err as Error);
      }
    });
    expect(answers[0]).toBeNull();
    expect(answers[1]).toBeInstanceOf(KmsError);
    expect((answers[1] as KmsError).code).toBe('Internal');
    expect((answers[1] as KmsError).message).toMatch(/health could not be answered/);
    expect(audited.map((e) => [e.op, e.outcome, e.errorCode])).toEqual([['health', 'success', undefined], ['health', 'failure', 'Internal']]);
    expect(logged).toContain('the answer could not be given; answering Internal');
  });

  it('a stored tag the encoder would refuse never reaches an answer; the real daemon keeps serving', async () => {
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
    const described = await conn.call(1, 'describe_key', { key_id: 'victim' });
    expect(d.running, `the daemon exited; stderr:\n${d.stderr().slice(-2000)}`).toBe(true);
    expect(described).toMatchObject({ id: 1, ok: true, result: { key_id: 'victim', tags: { team: 'storage' } } });
    expect(Object.keys(described.result.tags as object)).toEqual(['team']);
    expect((await conn.call(2, 'list_keys', {})).ok).toBe(true);
    expect((await conn.call(3, 'health')).ok).toBe(true);
    conn.close();
    expect(d.stderr()).toMatch(/tags that break the tag rules/);
    expect(await d.stop()).toBe(0);
  }, 60_000);
});
