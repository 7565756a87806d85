// The hand-written encoder for flat data-operation results must produce exactly the bytes the
// general msgpackr path produces, for every shape it accepts.
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { decodeMessage, encodeFrame, encodeOk } from '../../src/rpc/codec.js';

const ids = [0, 1, 127, 128, 255, 256, 65535, 65536, 0xffffffff];
const bins = [0, 1, 32, 93, 255, 256, 4096, 65535];
const versions = [1, 127, 128, 300, 70000, 0xffffffff];

describe('encodeOk fast path', () => {
  it('matches encodeFrame byte for byte for data-key, encrypt and decrypt results', () => {
    let cases = 0;
    for (const id of ids) {
      for (const len of bins) {
        for (const version of versions) {
          const results = [
            { plaintext: randomBytes(32), ciphertext: randomBytes(len), key_id: 'rustfs-objects', key_version: version },
            { ciphertext: randomBytes(len), key_id: 'k', key_version: version },
            { plaintext: randomBytes(len), key_id: 'a'.repeat(31), key_version: version },
          ];
          for (const result of results) {
            expect(encodeOk(id, result).equals(encodeFrame({ id, ok: true, result }))).toBe(true);
            cases += 1;
          }
        }
      }
    }
    expect(cases).toBe(ids.length * bins.length * versions.length * 3);
  });

  it('falls back to the general encoder for shapes it does not cover, with the same bytes', () => {
    const results: unknown[] = [
      { key_id: 'ü-non-ascii', key_version: 1 },
      { key_id: 'x'.repeat(40), key_version: 1 },
      { ciphertext: randomBytes(70000), key_id: 'k', key_version: 1 },
      { healthy: true, backend: 'local/file', version: '0.1.0' },
      { keys: [{ plaintext: randomBytes(32) }] },
      { a: -1 },
      [1, 2],
      null,
    ];
    for (const result of results) {
      expect(encodeOk(7, result).equals(encodeFrame({ id: 7, ok: true, result }))).toBe(true);
    }
  });

  it('omits undefined fields like the general encoder and decodes to the same value', () => {
    const result = { plaintext: undefined, ciphertext: randomBytes(93), key_id: 'k1', key_version: 2 };
    const frame = encodeOk(42, result);
    expect(frame.equals(encodeFrame({ id: 42, ok: true, result }))).toBe(true);
    expect(decodeMessage(frame.subarray(4))).toEqual({ id: 42, ok: true, result: { ciphertext: result.ciphertext, key_id: 'k1', key_version: 2 } });
  });
});
