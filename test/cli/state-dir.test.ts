// backup and restore find the state directory the way the CLI finds the socket: beside a running
// development daemon (./.kms) they need no --state-dir.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon } from '../helpers/daemon.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

describe('the state directory for backup and restore', () => {
  // Where this host has a production state directory, it is the default by design.
  it.skipIf(existsSync('/var/lib/rustfs-kms'))('is ./.kms beside a dev daemon when /var/lib/rustfs-kms does not exist', async () => {
    const dir = makeTempDir('kms-cli-state-');
    const dev = await startDaemon({ dir, stateDir: join(dir, '.kms'), socket: join(dir, '.kms', 'kms.sock') });
    expect((await runCli(['key', 'create', 'found'], { cwd: dir })).code).toBe(0); // the socket, found the same way
    const b = await runCli(['--json', 'backup', 'keys.json'], { cwd: dir });
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout.toString())).toMatchObject({ state_dir: join(dir, '.kms'), key_count: 1 });
    expect(await dev.stop()).toBe(0);
    const r = await runCli(['--json', 'restore', 'keys.json', '--dry-run'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ stateDir: join(dir, '.kms'), unchanged: 1 });
  });

  it('is $RUSTFS_KMS_STATE_DIR, then the state_dir of --config, before any default', async () => {
    const dir = makeTempDir('kms-cli-state-');
    const d = await startDaemon({ dir });
    expect((await runCli(['key', 'create', 'env'], { socket: d.socketPath })).code).toBe(0);
    const viaEnv = await runCli(['--json', 'backup', '-'], { cwd: dir, env: { RUSTFS_KMS_STATE_DIR: d.stateDir } });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(JSON.parse(viaEnv.stdout.toString()).source.state_dir).toBe(d.stateDir);
    const config = join(dir, 'kms.yaml');
    writeFileSync(config, `state_dir: ${JSON.stringify(d.stateDir)}\nsocket: { group: "" }\n`);
    const viaConfig = await runCli(['--json', 'backup', 'c.json', '--config', config], { cwd: dir });
    expect(viaConfig.code, viaConfig.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, 'c.json'), 'utf8')).source.state_dir).toBe(d.stateDir);
    expect(await d.stop()).toBe(0);
  });
});
