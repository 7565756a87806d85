// rustfs-kms init with root.type gcp-kms: probes the key (get, then encrypt and decrypt 32 random
// bytes with the probe AAD) and says precisely what is missing, with the gcloud command to fix it.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, makeTempDir, runCli } from '../helpers/daemon.js';
import { NEEDS_TEST_SERVER, REAL_GCP, gcpDaemonEnv, gcpYaml, openGcpTarget, writeSecret, type GcpTarget } from './gcp-target.js';

let target: GcpTarget;

beforeAll(async () => {
  target = await openGcpTarget(makeTempDir('kms-gcp-init-'));
});
afterAll(async () => {
  await target?.close();
  cleanupTempDirs();
});

type Report = { ready: boolean; steps: Array<Record<string, string>> };

async function init(o: { credentialsFile?: string; keyName?: string } = {}): Promise<{ code: number | null; stderr: string; report: Report | undefined }> {
  const dir = makeTempDir('kms-gcp-init-');
  const config = join(dir, 'config.yaml');
  const t = { ...target, ...(o.keyName !== undefined ? { keyName: o.keyName } : {}) };
  const opts = { target: t, ...(o.credentialsFile !== undefined ? { credentialsFile: o.credentialsFile } : {}) };
  writeFileSync(config, gcpYaml(opts) +
    `state_dir: ${JSON.stringify(join(dir, 'state'))}\nsocket: { path: ${JSON.stringify(join(dir, 'kms.sock'))}, group: "" }\n` +
    `audit: { path: ${JSON.stringify(join(dir, 'audit.log'))} }\n`);
  const r = await runCli(['--json', 'init', '--config', config], { env: gcpDaemonEnv(opts) });
  return { code: r.code, stderr: r.stderr.toString(), report: r.code === 0 ? JSON.parse(r.stdout.toString()) as Report : undefined };
}

const step = (r: Awaited<ReturnType<typeof init>>) => r.report?.steps.find((s) => s.what === 'Cloud KMS key');

describe('init with root.type gcp-kms', () => {
  it('a usable key: checked, it wraps and unwraps', async () => {
    const r = await init();
    expect(r.code, r.stderr).toBe(0);
    expect(r.report?.ready).toBe(true);
    expect(step(r)).toMatchObject({ action: 'checked' });
    expect(step(r)?.detail).toContain('wraps and unwraps');
  });

  describe.skipIf(REAL_GCP)(`what is missing${REAL_GCP ? ` (${NEEDS_TEST_SERVER})` : ''}`, () => {
    const account = (email: string, perms: Array<'encrypt' | 'decrypt' | 'get'>) =>
      writeSecret(makeTempDir('kms-gcp-init-'), 'sa.json', JSON.stringify(target.server!.serviceAccount(email, perms)));

    it('PERMISSION_DENIED on encrypt: the role to grant, with the gcloud command for this account', async () => {
      const r = await init({ credentialsFile: account('reader@rustfs-test.iam.gserviceaccount.com', ['get']) });
      expect(r.code, r.stderr).toBe(0);
      expect(r.report?.ready).toBe(false);
      expect(step(r)?.action).toBe('todo');
      expect(step(r)?.detail).toContain("PERMISSION_DENIED: Permission 'cloudkms.cryptoKeyVersions.useToEncrypt' denied");
      expect(step(r)?.command).toBe(
        `gcloud kms keys add-iam-policy-binding ${target.keyName.split('/')[7]} --keyring kms-ring --location europe-west1 --project rustfs-test ` +
        '--member serviceAccount:reader@rustfs-test.iam.gserviceaccount.com --role roles/cloudkms.cryptoKeyEncrypterDecrypter',
      );
    });

    it('no cloudkms.cryptoKeys.get: wraps and unwraps, but health checks need it', async () => {
      const r = await init({ credentialsFile: account('wrapper@rustfs-test.iam.gserviceaccount.com', ['encrypt', 'decrypt']) });
      expect(r.code, r.stderr).toBe(0);
      expect(step(r)?.action).toBe('todo');
      expect(step(r)?.detail).toContain('cloudkms.cryptoKeys.get');
      expect(step(r)?.command).toContain('--role roles/cloudkms.viewer');
    });

    it('NOT_FOUND: check the key name and location, or create the key', async () => {
      const r = await init({ keyName: 'projects/rustfs-test/locations/europe-west1/keyRings/kms-ring/cryptoKeys/absent' });
      expect(r.code, r.stderr).toBe(0);
      expect(step(r)?.action).toBe('todo');
      expect(step(r)?.detail).toMatch(/^NOT_FOUND: .*absent not found/);
      expect(step(r)?.command).toBe('gcloud kms keys create absent --keyring kms-ring --location europe-west1 --project rustfs-test --purpose encryption');
    });

    it('FAILED_PRECONDITION: a disabled primary version is named with its state', async () => {
      target.server!.setVersionState(target.keyName, 1, 'DISABLED');
      try {
        const r = await init();
        expect(r.code).not.toBe(0);
        expect(r.stderr).toMatch(/FAILED_PRECONDITION: primary key version .*cryptoKeyVersions\/1 is DISABLED, not ENABLED/);
      } finally {
        target.server!.setVersionState(target.keyName, 1, 'ENABLED');
      }
    });
  });
});
