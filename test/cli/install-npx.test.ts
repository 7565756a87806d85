// install-systemd refuses to write an ExecStart= that points into npm's cache (what `npx rustfs-kms
// install-systemd` would do): npm rebuilds and clears that directory at will.
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { installSystemd } from '../../src/cli/install-systemd.js';
import { cleanupTempDirs, makeTempDir, repoRoot } from '../helpers/daemon.js';

afterAll(() => cleanupTempDirs());

/** A copy of the package laid out as npx lays it out: ~/.npm/_npx/<hash>/node_modules/rustfs-kms. */
function npxCopy(): string {
  const home = makeTempDir('kms-npx-home-');
  const root = join(home, '.npm', '_npx', '6f1c2a', 'node_modules', 'rustfs-kms');
  mkdirSync(join(root, 'dist', 'src', 'daemon'), { recursive: true });
  cpSync(join(repoRoot, 'systemd'), join(root, 'systemd'), { recursive: true });
  writeFileSync(join(root, 'dist', 'src', 'daemon', 'main.js'), '');
  return root;
}

describe('install-systemd and npx', () => {
  it('refuses a daemon inside npm\'s cache and says how to install instead', () => {
    const prefix = makeTempDir('kms-npx-prefix-');
    expect(() => installSystemd({ prefix, packageRoot: npxCopy(), activate: false, env: { PATH: '' } }))
      .toThrow(/inside npm's cache \(npx\).*npm install -g rustfs-kms.*--daemon/);
  });

  it('accepts it with an explicit --daemon outside the cache', () => {
    const prefix = makeTempDir('kms-npx-prefix-');
    const report = installSystemd({ prefix, packageRoot: npxCopy(), activate: false, env: { PATH: '' }, daemon: '/usr/local/bin/rustfs-kmsd' });
    expect(report.execStart).toBe('ExecStart=/usr/local/bin/rustfs-kmsd --config /etc/rustfs-kms/config.yaml');
  });
});
