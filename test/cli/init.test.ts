// rustfs-kms init prepares a host for a production-mode start: with only a config file and init, the
// daemon starts without --dev. What init may not do is printed as the exact command.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, killAllDaemons, makeTempDir, runCli, startDaemon } from '../helpers/daemon.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

interface Step { what: string; path?: string; action: string; command?: string }

function productionConfig(dir: string, group: string): string {
  const path = join(dir, 'config.yaml');
  writeFileSync(path, [
    `state_dir: ${JSON.stringify(join(dir, 'lib', 'rustfs-kms'))}`,
    `socket: { path: ${JSON.stringify(join(dir, 'run', 'rustfs-kms', 'kms.sock'))}, group: ${JSON.stringify(group)} }`,
    `audit: { path: ${JSON.stringify(join(dir, 'log', 'rustfs-kms', 'audit.log'))} }`,
    '',
  ].join('\n'));
  return path;
}

describe('init --config (local root)', () => {
  it('creates the state, audit and socket directories and the root key; the daemon then starts without --dev', async () => {
    const dir = makeTempDir('kms-init-');
    const config = productionConfig(dir, '');
    const r = await runCli(['--json', 'init', '--config', config]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.toString()) as { ready: boolean; steps: Step[] };
    expect(report.ready).toBe(true);
    const created = (what: string) => report.steps.find((s) => s.what === what);
    expect(created('state directory')).toMatchObject({ action: 'created', path: join(dir, 'lib', 'rustfs-kms') });
    expect(created('audit log directory')).toMatchObject({ action: 'created', path: join(dir, 'log', 'rustfs-kms') });
    expect(created('socket directory')).toMatchObject({ action: 'created', path: join(dir, 'run', 'rustfs-kms') });
    expect(created('root key')).toMatchObject({ action: 'created', path: join(dir, 'lib', 'rustfs-kms', 'root.key') });
    expect(statSync(join(dir, 'lib', 'rustfs-kms')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'log', 'rustfs-kms')).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, 'run', 'rustfs-kms')).mode & 0o777).toBe(0o755);

    const d = await startDaemon({
      dir, dev: false, stateDir: join(dir, 'lib', 'rustfs-kms'), socket: join(dir, 'run', 'rustfs-kms', 'kms.sock'),
      args: ['--config', config],
    });
    expect((await runCli(['key', 'create', 'after-init'], { socket: d.socketPath })).code).toBe(0);
    expect(await d.stop()).toBe(0);
    expect(readFileSync(join(dir, 'log', 'rustfs-kms', 'audit.log'), 'utf8')).toContain('after-init');

    // A second init changes nothing and refuses to overwrite the key.
    const again = await runCli(['init', '--config', config]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already exists; refusing to overwrite it');
  });

  it('a socket group that does not exist: the exact command, ready false; --create-group creates it', async () => {
    const dir = makeTempDir('kms-init-');
    const group = `kmst${process.pid % 100000}`;
    const config = productionConfig(dir, group);
    const r = await runCli(['--json', 'init', '--config', config]);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.toString()) as { ready: boolean; steps: Step[] };
    expect(report.ready).toBe(false);
    expect(report.steps).toContainEqual(expect.objectContaining({ what: 'socket group', action: 'todo', command: `groupadd --system ${group}` }));
    const human = await runCli(['init', '--config', config, '--key-file', join(dir, 'other.key')]);
    expect(human.stdout.toString()).toContain(`still to do (then start rustfs-kmsd):\n  groupadd --system ${group}\n`);

    if (process.getuid?.() !== 0 || spawnSync('groupadd', ['--help']).status !== 0) return; // creating a group needs root and groupadd
    try {
      const made = await runCli(['--json', 'init', '--config', config, '--key-file', join(dir, 'third.key'), '--create-group']);
      expect(made.code, made.stderr).toBe(0);
      expect(JSON.parse(made.stdout.toString()).ready).toBe(true);
      expect(spawnSync('getent', ['group', group]).status).toBe(0);
    } finally {
      spawnSync('groupdel', [group]);
    }
  });

  it('a bad config file is a ConfigError naming the field (exit 1), not Internal', async () => {
    const dir = makeTempDir('kms-init-');
    writeFileSync(join(dir, 'bad.yaml'), 'socket: { mode: abc }\n');
    const r = await runCli(['init', '--config', join(dir, 'bad.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rustfs-kms: ConfigError: config: socket\.mode: expected an octal mode string/);
  });

  it('--dev: the development defaults (everything under the state directory)', async () => {
    const dir = makeTempDir('kms-init-');
    const r = await runCli(['--json', 'init', '--dev'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.toString())).toMatchObject({ state_dir: join(dir, '.kms'), ready: true });
    expect(existsSync(join(dir, '.kms', 'root.key'))).toBe(true);
  });
});
