// root.type aws-kms: the root.aws_kms section, the RUSTFS_KMS_AWS_* variables and RUSTFS_KMS_TYPE /
// RUSTFS_KMS_BACKEND = aws, through the real config loader.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, type DaemonConfig } from '../../src/config/index.js';

const dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-aws-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function load(yaml: string | undefined, env: Record<string, string> = {}): DaemonConfig {
  let config: string | undefined;
  if (yaml !== undefined) {
    config = join(dir, `c${++n}.yaml`);
    writeFileSync(config, yaml);
  }
  return loadConfig({ env, cli: {}, ...(config !== undefined ? { configPath: config } : {}), cwd: dir, defaultConfigPath: join(dir, 'none.yaml') });
}

function error(yaml: string | undefined, env: Record<string, string> = {}): ConfigError {
  try {
    load(yaml, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const ARN = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

describe('root.aws_kms', () => {
  it('reads key_id, region and endpoint; the keystore stays file', () => {
    const c = load('root:\n  type: aws-kms\n  aws_kms:\n    key_id: alias/rustfs\n    region: us-east-2\n    endpoint: https://vpce-1.kms.us-east-2.vpce.amazonaws.com/\n');
    expect(c.root.type).toBe('aws-kms');
    expect(c.root.awsKms).toEqual({ keyId: 'alias/rustfs', region: 'us-east-2', endpoint: 'https://vpce-1.kms.us-east-2.vpce.amazonaws.com' });
    expect(c.keystore.type).toBe('file');
  });

  it('takes the region from a key ARN when none is set', () => {
    expect(load(`root: { type: aws-kms, aws_kms: { key_id: "${ARN}" } }\n`).root.awsKms?.region).toBe('eu-west-1');
  });

  it('a missing key_id names the field and both ways to set it', () => {
    const e = error('root: { type: aws-kms }\n');
    expect(e.field).toBe('root.aws_kms.key_id');
    expect(e.message).toMatch(/RUSTFS_KMS_AWS_KEY_ID/);
  });

  it('refuses a malformed key id', () => {
    const e = error('root: { type: aws-kms, aws_kms: { key_id: "my key" } }\n');
    expect(e.field).toBe('root.aws_kms.key_id');
    expect(e.message).toMatch(/alias\/NAME/);
  });

  it('refuses http:// to a non-loopback host, with the reason', () => {
    const e = error('root: { type: aws-kms, aws_kms: { key_id: alias/k, region: eu-west-1, endpoint: "http://kms.example.com" } }\n');
    expect(e.field).toBe('root.aws_kms.endpoint');
    expect(e.message).toMatch(/non-loopback host kms\.example\.com.*TLS/);
  });

  it('allows http:// on loopback (tests, local proxies)', () => {
    expect(load('root: { type: aws-kms, aws_kms: { key_id: alias/k, region: eu-west-1, endpoint: "http://127.0.0.1:4566" } }\n').root.awsKms?.endpoint)
      .toBe('http://127.0.0.1:4566');
  });

  it('points at the SDK credential chain when a secret is put in the file', () => {
    const e = error('root: { type: aws-kms, aws_kms: { key_id: alias/k, secret_access_key: x } }\n');
    expect(e.message).toMatch(/default credential chain/);
  });
});

describe('environment', () => {
  for (const [name, value] of [['RUSTFS_KMS_TYPE', 'aws'], ['RUSTFS_KMS_BACKEND', 'aws'], ['RUSTFS_KMS_TYPE', 'aws-kms'], ['RUSTFS_KMS_BACKEND', 'aws-kms']] as const) {
    it(`${name}=${value} with RUSTFS_KMS_AWS_* selects aws-kms and keeps the file keystore`, () => {
      const c = load(undefined, {
        [name]: value, RUSTFS_KMS_AWS_KEY_ID: 'alias/rustfs', RUSTFS_KMS_AWS_REGION: 'ap-south-1', RUSTFS_KMS_AWS_ENDPOINT_URL: 'http://127.0.0.1:9',
      });
      expect(c.root.type).toBe('aws-kms');
      expect(c.keystore.type).toBe('file');
      expect(c.root.awsKms).toEqual({ keyId: 'alias/rustfs', region: 'ap-south-1', endpoint: 'http://127.0.0.1:9' });
    });
  }

  it('aws without a key id names the variable that selected it', () => {
    const e = error(undefined, { RUSTFS_KMS_BACKEND: 'aws' });
    expect(e.message).toMatch(/set by RUSTFS_KMS_BACKEND/);
  });

  it('RUSTFS_KMS_TYPE and RUSTFS_KMS_BACKEND must agree', () => {
    expect(error(undefined, { RUSTFS_KMS_TYPE: 'aws', RUSTFS_KMS_BACKEND: 'vault' }).field).toBe('RUSTFS_KMS_BACKEND');
  });

  it('bad RUSTFS_KMS_AWS_* values name the variable', () => {
    const base = { RUSTFS_KMS_TYPE: 'aws', RUSTFS_KMS_AWS_KEY_ID: 'alias/k' };
    expect(error(undefined, { ...base, RUSTFS_KMS_AWS_REGION: 'EU West' }).field).toBe('RUSTFS_KMS_AWS_REGION');
    expect(error(undefined, { ...base, RUSTFS_KMS_AWS_ENDPOINT_URL: 'http://10.0.0.1' }).field).toBe('RUSTFS_KMS_AWS_ENDPOINT_URL');
    expect(error(undefined, { ...base, RUSTFS_KMS_AWS_KEY_ID: 'not a key' }).field).toBe('RUSTFS_KMS_AWS_KEY_ID');
  });
});
