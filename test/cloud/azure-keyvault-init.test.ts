// rustfs-kms init with root.type azure-keyvault (the real CLI and SDK against the test server, NOT
// Azure, or a real vault): it checks the key exists and wraps and unwraps a 48-byte probe, and says
// precisely what is missing.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir, runCli } from '../helpers/daemon.js';
import { NEEDS_TEST_SERVER, REAL_AZURE, azureYaml, openAzureTarget, type AzureTarget } from './azure-target.js';

afterAll(() => cleanupTempDirs());

interface Step { what: string; action: string; detail?: string }

async function init(t: AzureTarget): Promise<{ code: number | null; stderr: string; steps: Step[] }> {
  const dir = makeTempDir('kms-azure-init-');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, `state_dir: ${JSON.stringify(join(dir, 'state'))}\nsocket:\n  path: ${JSON.stringify(join(dir, 'kms.sock'))}\n  group: ""\n` +
    `audit:\n  path: ${JSON.stringify(join(dir, 'audit', 'audit.log'))}\n${azureYaml(t, { retryAttempts: 0 })}`);
  const r = await runCli(['--json', 'init', '--config', config]);
  let steps: Step[] = [];
  try {
    steps = (JSON.parse(r.stdout.toString('utf8')) as { steps: Step[] }).steps;
  } catch {
    // a failed init prints its error on stderr
  }
  return { code: r.code, stderr: r.stderr, steps };
}

describe('rustfs-kms init: azure-keyvault', () => {
  let t: AzureTarget;
  beforeAll(async () => {
    t = await openAzureTarget();
  });
  afterAll(async () => t?.close());

  it('checks that the key exists and wraps and unwraps with the configured credential', async () => {
    const r = await init(t);
    expect(r.code, r.stderr).toBe(0);
    const step = r.steps.find((s) => s.what === 'Azure Key Vault key');
    expect(step?.action).toBe('checked');
    expect(step?.detail).toMatch(/wraps and unwraps with (RSA-OAEP-256|A256KW)/);
  });

  it.skipIf(REAL_AZURE)(`names the permission or role that is missing (403 Forbidden)${REAL_AZURE ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    for (const op of ['get', 'wrapKey', 'unwrapKey'] as const) {
      t.server!.deny(op);
      try {
        const r = await init(t);
        expect(r.code).not.toBe(0);
        expect(r.stderr).toContain(`Key Vault refused ${op} (Forbidden (HTTP 403)`);
        expect(r.stderr).toContain(`keys/${op} permission`);
        expect(r.stderr).toContain('Key Vault Crypto Service Encryption User');
      } finally {
        t.server!.deny(op, false);
      }
    }
  });

  it.skipIf(REAL_AZURE)(`says a missing key is missing (404 KeyNotFound) and a disabled key is disabled${REAL_AZURE ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    const missing = await init({ ...t, keyName: 'not-there' });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('key not-there in');
    expect(missing.stderr).toMatch(/not found \(KeyNotFound \(HTTP 404\)/);
    expect(missing.stderr).toContain('az keyvault key create');
    const version = t.server!.currentVersion(t.keyName);
    t.server!.setEnabled(t.keyName, version, false);
    try {
      const disabled = await init(t);
      expect(disabled.code).not.toBe(0);
      expect(disabled.stderr).toContain(`version ${version} is disabled`);
    } finally {
      t.server!.setEnabled(t.keyName, version, true);
    }
  });
});
