import { describe, expect, it } from 'vitest';
import {
  BATCH_COUNT,
  CONTEXT_LIMITS,
  CTX_LIMITS,
  DATA_KEY_BYTES,
  DECODE_LIMITS,
  DEFAULT_MAX_FRAME_BYTES,
  ERROR_CODES,
  KEY_ID_PATTERN,
  KmsError,
  LIST_LIMIT_DEFAULT,
  LIST_LIMIT_MAX,
  MAX_KEY_ID_BYTES,
  MAX_PLAINTEXT_BYTES,
  OPERATIONS,
  PENDING_DAYS,
  isErrorCode,
  isKmsError,
  isOpName,
  isValidKeyId,
} from '../../src/ops/protocol.js';

describe('protocol constants', () => {
  it('lists the error codes and operations of DESIGN §4, in order', () => {
    expect(ERROR_CODES).toEqual([
      'InvalidRequest', 'UnknownOperation', 'InvalidKeyId', 'KeyNotFound', 'KeyAlreadyExists', 'KeyDisabled',
      'KeyPendingDeletion', 'InvalidCiphertext', 'AccessDenied', 'FrameTooLarge', 'Busy', 'BackendUnavailable', 'Internal',
    ]);
    expect(OPERATIONS).toEqual([
      'health', 'status', 'create_key', 'describe_key', 'list_keys', 'enable_key', 'disable_key', 'rotate_key',
      'schedule_key_deletion', 'cancel_key_deletion', 'update_key_description', 'tag_key', 'untag_key',
      'encrypt', 'decrypt', 'generate_data_key',
      'generate_data_key_batch', 're_encrypt',
    ]);
    expect(isOpName('re_encrypt')).toBe(true);
    expect(isOpName('reEncrypt')).toBe(false);
    expect(isOpName('toString')).toBe(false);
    expect(isErrorCode('Busy')).toBe(true);
    expect(isErrorCode('busy')).toBe(false);
  });

  it('has the documented limits', () => {
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(1_048_576);
    expect(MAX_KEY_ID_BYTES).toBe(128);
    expect(MAX_PLAINTEXT_BYTES).toBe(65_536);
    expect(DATA_KEY_BYTES).toEqual({ min: 16, max: 64, default: 32 });
    expect(BATCH_COUNT).toEqual({ min: 1, max: 1024 });
    expect(LIST_LIMIT_MAX).toBe(1000);
    expect(LIST_LIMIT_DEFAULT).toBe(100);
    expect(PENDING_DAYS).toEqual({ min: 7, max: 30 });
    expect(CONTEXT_LIMITS).toEqual({ maxPairs: 64, maxCanonicalBytes: 4096 });
    expect(CTX_LIMITS).toEqual({ maxStringBytes: 1024, maxExtraPairs: 32 });
    expect(DECODE_LIMITS).toEqual({ maxDepth: 32, maxMapEntries: 4096, maxArrayLength: 65_536 });
  });

  it('accepts exactly the key ids of the pattern', () => {
    for (const ok of ['a', 'A', '0', 'rustfs-default', 'a.b_c-d', 'x'.repeat(128), '9.'.repeat(64)]) {
      expect(isValidKeyId(ok), ok).toBe(true);
      expect(KEY_ID_PATTERN.test(ok)).toBe(true);
    }
    for (const bad of ['', '.a', '-a', '_a', 'x'.repeat(129), 'a b', 'a/b', 'ä', 'a\n', 'key:1']) {
      expect(isValidKeyId(bad), JSON.stringify(bad)).toBe(false);
    }
    expect(isValidKeyId(5)).toBe(false);
  });

  it('KmsError carries a code and is recognised by isKmsError', () => {
    const e = new KmsError('KeyNotFound', 'key k does not exist');
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('KmsError');
    expect(e.code).toBe('KeyNotFound');
    expect(e.message).toBe('key k does not exist');
    expect(isKmsError(e)).toBe(true);
    expect(isKmsError(new Error('x'))).toBe(false);
  });
});
