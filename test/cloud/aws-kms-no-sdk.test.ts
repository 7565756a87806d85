// A host without @aws-sdk/client-kms (an optional peer dependency): the daemon configured for
// aws-kms refuses to start with "install @aws-sdk/client-kms". Runs a copy of the built daemon whose
// node_modules has every package but @aws-sdk.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanEnv, cleanupTempDirs, makeTempDir, repoRoot } from '../helpers/daemon.js';

afterAll(() => cleanupTempDirs());

describe('aws-kms without the AWS SDK installed', () => {
  it('start-up is refused with how to install it', async () => {
    const copy = makeTempDir('kms-aws-nosdk-');
    cpSync(join(repoRoot, 'dist'), join(copy, 'dist'), { recursive: true });
    cpSync(join(repoRoot, 'package.json'), join(copy, 'package.json'));
    symlinkSync(join(repoRoot, 'build'), join(copy, 'build'));
    cpSync(join(repoRoot, 'binding.gyp'), join(copy, 'binding.gyp')); // marks the package root
    mkdirSync(join(copy, 'node_modules'));
    for (const name of readdirSync(join(repoRoot, 'node_modules'))) {
      if (name !== '@aws-sdk') symlinkSync(join(repoRoot, 'node_modules', name), join(copy, 'node_modules', name));
    }
    const dir = makeTempDir('kms-aws-nosdk-run-');
    const config = join(dir, 'config.yaml');
    writeFileSync(config, 'root: { type: aws-kms, aws_kms: { key_id: alias/k, region: eu-west-1, endpoint: "http://127.0.0.1:9" } }\n');
    const r = spawnSync(process.execPath, [join(copy, 'dist', 'src', 'daemon', 'main.js'), '--dev', '--state-dir', join(dir, 'state'),
      '--socket', join(dir, 'kms.sock'), '--config', config], { cwd: dir, env: cleanEnv({ HOME: dir }), encoding: 'utf8', timeout: 30_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/root\.aws_kms: .*install @aws-sdk\/client-kms/);
  });
});
