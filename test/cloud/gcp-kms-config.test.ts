// root.gcp_kms configuration: the schema's checks and the environment names (in-process), and what
// the real daemon does with credentials (file, GOOGLE_APPLICATION_CREDENTIALS, a loose file mode, a
// missing permission, an unknown account) and without the SDK installed.
import { cpSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromYaml } from '../../src/config/index.js';
import { cleanupTempDirs, makeTempDir, repoRoot, runDaemonExpectingExit } from '../helpers/daemon.js';
import { GcpKmsTestServer } from '../gcp-kms-server/server.js';
import { NEEDS_TEST_SERVER, REAL_GCP, codeOf, gcpDaemonEnv, gcpYaml, openGcpTarget, startGcpDaemon, writeSecret, type GcpTarget } from './gcp-target.js';

afterAll(() => cleanupTempDirs());

const KEY = 'projects/my-project/locations/europe-west1/keyRings/rustfs/cryptoKeys/kms-root';

function configError(yaml: string, env: Record<string, string> = {}): string {
  try {
    configFromYaml(yaml, { env });
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

describe('root.gcp_kms config', () => {
  it('reads key_name, credentials_file and endpoint', () => {
    const c = configFromYaml(`root: { type: gcp-kms, gcp_kms: { key_name: "${KEY}", credentials_file: /etc/rustfs-kms/sa.json, endpoint: "https://kms.example.internal:8443/" } }`);
    expect(c.root.type).toBe('gcp-kms');
    expect(c.root.gcpKms).toEqual({ keyName: KEY, credentialsFile: '/etc/rustfs-kms/sa.json', endpoint: 'https://kms.example.internal:8443' });
    expect(c.keystore.type).toBe('file');
  });

  it('refuses a key name that is not projects/P/locations/L/keyRings/R/cryptoKeys/K', () => {
    const msg = configError('root: { type: gcp-kms, gcp_kms: { key_name: "projects/p/keyRings/r/cryptoKeys/k" } }');
    expect(msg).toContain('root.gcp_kms.key_name');
    expect(msg).toContain('a Cloud KMS key name like "projects/my-project/locations/europe-west1/keyRings/rustfs/cryptoKeys/kms-root"');
  });

  it('requires key_name when root.type is gcp-kms, naming the env var too', () => {
    expect(configError('root: { type: gcp-kms }')).toMatch(/root\.gcp_kms\.key_name: required when root\.type is gcp-kms: expected a Cloud KMS key name in root\.gcp_kms\.key_name or RUSTFS_KMS_GCP_KEY_NAME/);
  });

  it('refuses plain http to a non-loopback endpoint, and accepts it on loopback', () => {
    const msg = configError(`root: { type: gcp-kms, gcp_kms: { key_name: "${KEY}", endpoint: "http://kms.example.com" } }`);
    expect(msg).toContain('root.gcp_kms.endpoint');
    expect(msg).toContain('plain http is refused for a non-loopback host');
    const c = configFromYaml(`root: { type: gcp-kms, gcp_kms: { key_name: "${KEY}", endpoint: "http://127.0.0.1:9000" } }`);
    expect(c.root.gcpKms?.endpoint).toBe('http://127.0.0.1:9000');
    expect(configError(`root: { type: gcp-kms, gcp_kms: { key_name: "${KEY}", endpoint: "https://kms.example.com/v1" } }`)).toContain('with no path');
  });

  it('refuses a credential in the file, pointing at credentials_file', () => {
    const msg = configError(`root: { type: gcp-kms, gcp_kms: { key_name: "${KEY}", private_key: "-----BEGIN PRIVATE KEY-----" } }`);
    expect(msg).toContain('root.gcp_kms.private_key: not accepted here; expected credentials_file or the GOOGLE_APPLICATION_CREDENTIALS environment variable');
    expect(msg).not.toContain('BEGIN PRIVATE KEY');
  });

  it('RUSTFS_KMS_TYPE=gcp, RUSTFS_KMS_BACKEND=gcp and RUSTFS_KMS_GCP_KEY_NAME select the root', () => {
    for (const name of ['RUSTFS_KMS_TYPE', 'RUSTFS_KMS_BACKEND']) {
      const c = configFromYaml('', { env: { [name]: 'gcp', RUSTFS_KMS_GCP_KEY_NAME: KEY } });
      expect(c.root.type).toBe('gcp-kms');
      expect(c.root.gcpKms?.keyName).toBe(KEY);
    }
    expect(configError('', { RUSTFS_KMS_BACKEND: 'gcp' })).toMatch(/required when root\.type is gcp-kms \(set by RUSTFS_KMS_BACKEND\)/);
    expect(configError('', { RUSTFS_KMS_GCP_KEY_NAME: 'kms-root' })).toContain('RUSTFS_KMS_GCP_KEY_NAME: expected a Cloud KMS key name');
    expect(configError('', { RUSTFS_KMS_TYPE: 'gcp', RUSTFS_KMS_BACKEND: 'vault', RUSTFS_KMS_GCP_KEY_NAME: KEY })).toContain('RUSTFS_KMS_BACKEND: expected the same value as RUSTFS_KMS_TYPE');
  });
});

describe('gcp-kms credentials on the real daemon', () => {
  let dir: string;
  let target: GcpTarget;

  beforeAll(async () => {
    dir = makeTempDir('kms-gcp-');
    target = await openGcpTarget(dir);
  });
  afterAll(async () => {
    await target?.close();
  });

  it('uses GOOGLE_APPLICATION_CREDENTIALS when credentials_file is unset', async () => {
    const host = await startGcpDaemon({ target, credentialsInConfig: false });
    try {
      expect((await host.kms.createKey('adc')).origin).toBe('gcp');
      expect((await host.kms.encrypt('adc', Buffer.from('x'))).keyId).toBe('adc');
    } finally {
      await host.stop();
    }
  });

  it('takes root.type and the key name from RUSTFS_KMS_BACKEND and RUSTFS_KMS_GCP_KEY_NAME', async () => {
    const host = await startGcpDaemon({ target, keyNameFromEnv: true, env: { RUSTFS_KMS_BACKEND: 'gcp', RUSTFS_KMS_GCP_KEY_NAME: target.keyName } });
    try {
      expect((await host.kms.status()).rootType).toBe('gcp-kms');
      expect((await host.kms.createKey('from-env')).origin).toBe('gcp');
    } finally {
      await host.stop();
    }
  });

  it('refuses to start with a credentials file that group or others can read', async () => {
    const loose = writeSecret(makeTempDir('kms-gcp-'), 'loose.json', '{}', 0o644);
    const o = { target, credentialsFile: loose };
    const r = await runDaemonExpectingExit({ dir: makeTempDir('kms-gcp-'), config: gcpYaml(o), env: gcpDaemonEnv(o) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`root.gcp_kms.credentials_file ${loose} has mode 0644`);
    const adc = { target, credentialsFile: loose, credentialsInConfig: false };
    const r2 = await runDaemonExpectingExit({ dir: makeTempDir('kms-gcp-'), config: gcpYaml(adc), env: gcpDaemonEnv(adc) });
    expect(r2.code).not.toBe(0);
    expect(r2.stderr).toContain(`GOOGLE_APPLICATION_CREDENTIALS file ${loose} has mode 0644`);
  });

  it.skipIf(REAL_GCP)(`names PERMISSION_DENIED and the missing permission${REAL_GCP ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    const server = target.server!;
    const email = 'encrypt-only@rustfs-test.iam.gserviceaccount.com';
    const creds = writeSecret(makeTempDir('kms-gcp-'), 'enc.json', JSON.stringify(server.serviceAccount(email, ['encrypt', 'get'])));
    const host = await startGcpDaemon({ target, credentialsFile: creds, retryAttempts: 0 });
    await host.kms.createKey('enc-only');
    await host.stop();
    // The start-up check unwraps every key's current version: the daemon refuses, naming why.
    const o = { target, credentialsFile: creds, retryAttempts: 0 };
    const r = await runDaemonExpectingExit({ dir: host.dir, config: gcpYaml(o), env: gcpDaemonEnv(o) });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('does not open existing key enc-only');
    expect(r.stderr).toContain("PERMISSION_DENIED: Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied");
    expect(r.stderr).toContain(target.endpoint!);
  });

  it.skipIf(REAL_GCP)(`names UNAUTHENTICATED for a service account the cloud does not know${REAL_GCP ? ` (${NEEDS_TEST_SERVER})` : ''}`, async () => {
    const other = await GcpKmsTestServer.start(); // its account is unknown to target.server
    const creds = writeSecret(makeTempDir('kms-gcp-'), 'stranger.json', JSON.stringify(other.serviceAccount('stranger@elsewhere.iam.gserviceaccount.com')));
    await other.stop();
    const host = await startGcpDaemon({ target, credentialsFile: creds, retryAttempts: 0 });
    try {
      const r = await codeOf(host.kms.createKey('stranger'));
      expect(r.code).toBe('BackendUnavailable');
      expect(r.message).toContain('UNAUTHENTICATED');
    } finally {
      await host.stop();
    }
  });
});

describe('gcp-kms without the SDK installed', () => {
  it('refuses to start and says to install @google-cloud/kms', async () => {
    // A copy of the package whose node_modules holds everything but @google-cloud.
    const pkg = makeTempDir('kms-gcp-nosdk-');
    cpSync(join(repoRoot, 'dist'), join(pkg, 'dist'), { recursive: true });
    for (const f of ['package.json', 'binding.gyp']) cpSync(join(repoRoot, f), join(pkg, f));
    symlinkSync(join(repoRoot, 'build'), join(pkg, 'build'));
    mkdirSync(join(pkg, 'node_modules'));
    for (const entry of readdirSync(join(repoRoot, 'node_modules'))) {
      if (entry !== '@google-cloud') symlinkSync(join(repoRoot, 'node_modules', entry), join(pkg, 'node_modules', entry));
    }
    const dir = makeTempDir('kms-gcp-');
    const creds = writeSecret(dir, 'sa.json', '{}');
    const config = join(dir, 'config.yaml');
    writeFileSync(config, `root: { type: gcp-kms, gcp_kms: { key_name: "${KEY}", credentials_file: "${creds}" } }\n`);
    const { spawnSync } = await import('node:child_process');
    const r = spawnSync(process.execPath, [join(pkg, 'dist', 'src', 'daemon', 'main.js'), '--dev', '--config', config, '--state-dir', join(dir, 'state'), '--socket', join(dir, 's.sock')], {
      encoding: 'utf8', timeout: 20_000, env: { ...process.env, GOOGLE_APPLICATION_CREDENTIALS: undefined },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('install @google-cloud/kms');
  });
});
