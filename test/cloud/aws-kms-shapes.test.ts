// RustFS's admin contract names the AWS backend "aws" (/kms/status backend_type).
import { describe, expect, it } from 'vitest';
import { backendKebab } from '../../src/http/shapes.js';

describe('backend_type for the aws-kms root', () => {
  it('is "aws" whatever the keystore', () => {
    const base = { stateDir: '/s', configFingerprint: 'x', cacheIdleTtlS: 1, timeoutS: 1, retryAttempts: 1 };
    expect(backendKebab({ ...base, rootType: 'aws-kms', keystoreType: 'file' })).toBe('aws');
    expect(backendKebab({ ...base, rootType: 'local', keystoreType: 'file' })).toBe('local');
  });
});
