// Issue 11, item 12c: `status.key_count` counts only the keys the caller's deciding rule covers, so
// a caller limited to some key globs cannot learn how many keys exist in all. Real daemon; the rule
// is narrowed by SIGHUP on the same connection, as a policy change would.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, startDaemon, waitFor } from '../helpers/daemon.js';
import { RawConn } from '../integration/wire.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

const me = process.getuid?.() ?? 0;
const policy = (keys: string) => `policy:\n  - { match: { uid: ${me} }, allow: ["*"], keys: [${keys}] }\n`;

describe('status.key_count and the caller\'s key globs', () => {
  it('counts every key for a rule covering all keys, and only the covered keys for a narrower rule', async () => {
    const daemon = await startDaemon({ config: policy('"*"') });
    const c = await RawConn.open(daemon.socketPath);
    let id = 0;
    const call = async (op: string, args?: Record<string, string>) => {
      const r = await c.call(++id, op, args);
      expect(r.ok, `${op}: ${JSON.stringify(r)}`).toBe(true);
      return r.result;
    };
    try {
      for (const key of ['team-a-1', 'team-a-2', 'other-1', 'other-2', 'other-3']) await call('create_key', { key_id: key });
      expect((await call('status')).key_count).toBe(5);

      writeFileSync(daemon.configPath as string, policy('"team-a-*"'), { mode: 0o600 });
      daemon.proc.kill('SIGHUP');
      const reloaded = () => readFileSync(join(daemon.stateDir, 'audit.log'), 'utf8').includes('"op":"daemon_reload"');
      await waitFor(reloaded, 20_000, 'the policy reload');

      expect((await call('list_keys')).keys.map((k: { key_id: string }) => k.key_id)).toEqual(['team-a-1', 'team-a-2']);
      expect((await call('status')).key_count).toBe(2);
      expect((await call('health')).healthy).toBe(true);
    } finally {
      c.close();
    }
    expect(await daemon.stop()).toBe(0);
  });
});
