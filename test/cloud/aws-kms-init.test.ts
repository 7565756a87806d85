// rustfs-kms init with root.type aws-kms (the real CLI and SDK): the probe (DescribeKey, Encrypt and
// Decrypt of 32 random bytes) passes, and each failure says precisely what is missing.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir, runCli } from '../helpers/daemon.js';
import { NEEDS_TEST_SERVER, REAL_AWS, awsYaml, openAwsTarget, type AwsTarget } from './aws-target.js';

let t: AwsTarget;
beforeAll(async () => {
  t = await openAwsTarget();
});
afterAll(async () => {
  await t?.close();
  cleanupTempDirs();
});

async function init(keyId?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = makeTempDir('kms-aws-init-');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, awsYaml(t, keyId !== undefined ? { keyId } : {}) +
    `state_dir: ${JSON.stringify(join(dir, 'state'))}\nsocket: { path: ${JSON.stringify(join(dir, 'kms.sock'))}, group: "" }\n` +
    `audit: { path: ${JSON.stringify(join(dir, 'audit.log'))} }\n`);
  const r = await runCli(['--json', 'init', '--config', config], { env: { HOME: dir, ...t.credentialEnv } });
  return { code: r.code, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

describe('init with root.type aws-kms', () => {
  it('checks that the key exists and wraps and unwraps', async () => {
    const r = await init();
    expect(r.code).toBe(0);
    const step = (JSON.parse(r.stdout) as { steps: Array<Record<string, string>> }).steps.find((s) => s.what === 'cloud key');
    expect(step?.action).toBe('checked');
    expect(step?.path).toContain(t.keyId);
  });

  it.skipIf(REAL_AWS)(`AccessDenied names the permission that is missing${REAL_AWS ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    t.server!.deny('kms:Decrypt');
    try {
      const r = await init();
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/kms:Decrypt failed: AccessDeniedException.*allow kms:Decrypt/);
    } finally {
      t.server!.allow('kms:Decrypt');
    }
  });

  it.skipIf(REAL_AWS)(`a disabled or pending-deletion key is named with its state${REAL_AWS ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    t.server!.setState(t.keyId, 'Disabled');
    try {
      expect((await init()).stderr).toMatch(/DisabledException.*aws kms enable-key/);
      t.server!.setState(t.keyId, 'PendingDeletion');
      expect((await init()).stderr).toMatch(/KMSInvalidStateException.*PendingDeletion/);
    } finally {
      t.server!.setState(t.keyId, 'Enabled');
    }
  });

  it.skipIf(REAL_AWS)(`a key that does not exist points at the key id and the region${REAL_AWS ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    const r = await init('alias/no-such-key');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/NotFoundException.*does not exist in region eu-west-1/);
  });
});
