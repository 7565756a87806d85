// `npm start` as a developer runs it: SIGTERM to npm (what a supervisor or Ctrl-C's neighbour sends)
// must stop the daemon too, not leave it running without a parent. And a second daemon on the same
// state directory names the PID of the one that holds it.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertBuilt, cleanupTempDirs, distRoot, killAllDaemons, makeTempDir, runDaemonExpectingExit, waitFor } from '../helpers/daemon.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', () => {
  it('stops the daemon when npm gets SIGTERM; a second start names the PID holding the state directory', async () => {
    assertBuilt();
    const dir = makeTempDir('kms-npm-start-');
    const stateDir = join(dir, 'state');
    // State and socket in a temporary directory, not the checkout's ./.kms.
    const npm = spawn('npm', ['start', '--', '--state-dir', stateDir, '--socket', join(dir, 'kms.sock')], {
      cwd: distRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
    let out = '';
    npm.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    npm.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const npmExit = new Promise<number | null>((r) => npm.once('exit', (code) => r(code)));
    let daemonPid = 0;
    try {
      await waitFor(() => /serving on /.test(out), 30_000, `npm start to serve:\n${out}`);
      // The lock file holds the PID of the daemon that took the flock.
      daemonPid = Number(readFileSync(join(stateDir, 'lock'), 'utf8').trim());
      expect(daemonPid).toBeGreaterThan(0);
      expect(alive(daemonPid)).toBe(true);

      const second = await runDaemonExpectingExit({ dir: makeTempDir(), stateDir, socket: join(dir, 'other.sock') });
      expect(second.code, second.stderr).toBe(1);
      expect(second.stderr).toContain(`state directory ${stateDir} is in use by another rustfs-kmsd (pid ${daemonPid})`);

      npm.kill('SIGTERM');
      await npmExit;
      await waitFor(() => !alive(daemonPid), 20_000, `the daemon (pid ${daemonPid}) to exit after npm got SIGTERM`);
      expect(out).toMatch(/"msg":"stopped"/); // a clean stop (drain, flush, wipe), not a kill
      expect(existsSync(join(dir, 'kms.sock'))).toBe(false);
    } finally {
      if (npm.exitCode === null) npm.kill('SIGKILL');
      if (daemonPid > 0 && alive(daemonPid)) process.kill(daemonPid, 'SIGKILL');
    }
  });
});
