// A request the daemon can read but refuses before the op table (a field the protocol does not
// have, an id already in flight) is answered InvalidRequest and leaves an audit line like any other.
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unpack } from 'msgpackr';
import { frame, mp } from './wire.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, startDaemon } from '../helpers/daemon.js';

beforeAll(() => assertBuilt());
afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

describe('refusals before the op table are audited', () => {
  it('an unknown top-level field is answered InvalidRequest with its id and recorded with the claimed op', async () => {
    const d = await startDaemon();
    const socket = connect(d.socketPath);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    const answer = await new Promise<{ id: number; ok: boolean; error: { code: string } }>((resolve) => {
      socket.once('data', (chunk: Buffer) => resolve(unpack(chunk.subarray(4)) as { id: number; ok: boolean; error: { code: string } }));
      socket.write(frame(mp({ id: 77, op: 'describe_key', args: { key_id: 'x' }, sneaky: true })));
    });
    socket.destroy();
    expect(answer).toMatchObject({ id: 77, ok: false, error: { code: 'InvalidRequest' } });
    await d.stop();
    const lines = readFileSync(join(d.stateDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const refused = lines.filter((l) => l.op === 'describe_key');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ outcome: 'failure', error_code: 'InvalidRequest', transport: 'socket' });
    expect((refused[0] as { caller: { uid: number } }).caller.uid).toBe(process.getuid?.());
  });
});
