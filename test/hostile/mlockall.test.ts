// Issue 11, item 7: `hardening.mlockall: true` made V8 abort after a handful of requests (its
// madvise(MADV_DONTNEED) fails with EINVAL on locked pages). The option is gone: `true` stops
// start-up naming the field and why, `false` (the old default) is still read, and the native call
// refuses a caller that still asks for mlockall instead of silently doing less.
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native/index.js';
import { cleanupTempDirs, killAllDaemons, runDaemonExpectingExit, startDaemon } from '../helpers/daemon.js';
import { RawConn, request } from '../integration/wire.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

describe('hardening.mlockall', () => {
  it('true is refused at start-up naming the field, that it was removed, and why', async () => {
    const r = await runDaemonExpectingExit({ config: 'hardening: { mlockall: true }\n' });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('config: hardening.mlockall: was removed');
    expect(r.stderr).toContain('madvise(MADV_DONTNEED)');
    expect(r.stderr).toMatch(/config-\d+\.yaml:1:/); // where in the file
  });

  it('false is still accepted, and the daemon serves thousands of pipelined requests with health answering', async () => {
    const daemon = await startDaemon({ config: 'hardening: { mlockall: false }\n' });
    const c = await RawConn.open(daemon.socketPath);
    try {
      expect((await c.call(1, 'create_key', { key_id: 'load' })).ok).toBe(true);
      const total = 4000;
      const burst = 200;
      for (let sent = 0; sent < total; sent += burst) {
        const frames = Array.from({ length: burst }, (_, i) => request(1000 + sent + i, 'generate_data_key', { key_id: 'load' }));
        c.send(Buffer.concat(frames));
        const answers = await c.collect(burst);
        expect(answers.every((a) => a.value.ok === true)).toBe(true);
      }
      const health = await c.call(2, 'health');
      expect(health.result?.healthy, JSON.stringify(health)).toBe(true);
    } finally {
      c.close();
    }
    expect(daemon.running).toBe(true);
    expect(await daemon.stop()).toBe(0);
  });

  it('the native hardenProcess takes no lockAll argument: asking for mlockall throws naming why', () => {
    const withArgument = native.hardenProcess as (...args: unknown[]) => void;
    expect(() => withArgument(true)).toThrow(/hardenProcess takes no arguments: mlockall was removed/);
    expect(native.dumpable()).toBe(1); // refused before changing anything in this process
  });
});
