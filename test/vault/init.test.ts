// rustfs-kms init for root.type vault-transit: checks the Transit key wraps and unwraps, creates it
// when the configured token may, and prints the exact vault command when it may not.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir, runCli } from '../helpers/daemon.js';
import { vaultYaml } from './harness.js';
import { openTarget, policyToken, teardownBackends, type Backends, type VaultTarget } from './target.js';

let target: VaultTarget;
let b: Backends;

beforeAll(async () => {
  target = await openTarget();
  const id = `kmsi-${process.pid}`;
  // Mounts but no Transit key yet: that is init's job.
  b = { id, namespace: '', transitMount: `${id}-transit`, transitKey: 'rustfs-kms', kvMount: `${id}-kv`, prefix: 'rustfs-kms' };
  await target.must('POST', `sys/mounts/${b.transitMount}`, { type: 'transit' });
  await target.must('POST', `sys/mounts/${b.kvMount}`, { type: 'kv', options: { version: '2' } });
});

afterAll(async () => {
  if (b !== undefined) await teardownBackends(target, b);
  await target?.close();
  cleanupTempDirs();
});

async function init(token: string): Promise<{ code: number | null; stderr: string; report: { ready: boolean; steps: Array<Record<string, string>> } | undefined }> {
  const dir = makeTempDir('kms-vault-init-');
  const config = join(dir, 'config.yaml');
  writeFileSync(config, vaultYaml({ target, backends: b, auth: { method: 'token', token } }) +
    `state_dir: ${JSON.stringify(join(dir, 'state'))}\nsocket: { path: ${JSON.stringify(join(dir, 'kms.sock'))}, group: "" }\n` +
    `audit: { path: ${JSON.stringify(join(dir, 'audit.log'))} }\n`);
  const r = await runCli(['--json', 'init', '--config', config], { env: { RUSTFS_KMS_VAULT_TOKEN: token } });
  return { code: r.code, stderr: r.stderr, report: r.code === 0 ? JSON.parse(r.stdout.toString()) : undefined };
}

const transitStep = (r: Awaited<ReturnType<typeof init>>) => r.report?.steps.find((s) => s.what === 'Transit key');

describe('init with root.type vault-transit', () => {
  it('a missing key and a token that may not create it: the exact vault command, nothing created', async () => {
    const r = await init(await policyToken(target, b)); // the policy from docs/operations.md
    expect(r.code, r.stderr).toBe(0);
    expect(r.report?.ready).toBe(false);
    expect(transitStep(r)).toMatchObject({
      action: 'todo', command: `VAULT_ADDR=${target.address} vault write -f ${b.transitMount}/keys/${b.transitKey} type=aes256-gcm96`,
    });
    expect((await target.api('GET', `${b.transitMount}/keys/${b.transitKey}`)).status).toBe(404);
  });

  it('a token that may: creates the key and proves a wrap and unwrap', async () => {
    const r = await init(target.adminToken);
    expect(r.code, r.stderr).toBe(0);
    expect(r.report?.ready).toBe(true);
    expect(transitStep(r)).toMatchObject({ action: 'created' });
    const key = await target.must('GET', `${b.transitMount}/keys/${b.transitKey}`);
    expect(key?.data?.type).toBe('aes256-gcm96');
  });

  it('an existing key and the documented policy: checked (it wraps and unwraps)', async () => {
    const r = await init(await policyToken(target, b));
    expect(r.code, r.stderr).toBe(0);
    expect(transitStep(r)).toMatchObject({ action: 'checked' });
    expect(transitStep(r)?.detail).toContain('wraps and unwraps');
  });
});
