// Envelope format v1 (DESIGN section 5): what encrypt and generate_data_key return.
//   version(1)=0x01 ‖ algorithm(1) ‖ n(1) ‖ key id(n) ‖ key version(u32be) ‖ nonce(m) ‖ ciphertext ‖ tag(16)
// AAD = bytes [0, 7+n+m) ‖ canonical(context). This module only lays out bytes; sealing is native.

export const ENVELOPE_VERSION = 0x01;
export const ALG_XAES_256_GCM = 0x01;
export const ALG_AES_256_GCM = 0x02;
export const TAG_BYTES = 16;
export const MAX_KEY_ID_BYTES = 128;

export type EnvelopeAlgorithm = typeof ALG_XAES_256_GCM | typeof ALG_AES_256_GCM;

export function nonceBytes(algorithm: EnvelopeAlgorithm): number {
  return algorithm === ALG_XAES_256_GCM ? 24 : 12;
}

/** Header = everything before the nonce: 7 + key id bytes. */
export function encodeHeader(algorithm: EnvelopeAlgorithm, keyId: string, keyVersion: number): Buffer {
  const id = Buffer.from(keyId, 'utf8');
  if (id.length < 1 || id.length > MAX_KEY_ID_BYTES) {
    throw new RangeError(`key id is ${id.length} bytes; the envelope allows 1 to ${MAX_KEY_ID_BYTES}`);
  }
  const header = Buffer.allocUnsafe(7 + id.length);
  header[0] = ENVELOPE_VERSION;
  header[1] = algorithm;
  header[2] = id.length;
  id.copy(header, 3);
  header.writeUInt32BE(keyVersion, 3 + id.length);
  return header;
}

/** Total envelope size for a plaintext of ptLength bytes. */
export function envelopeLength(headerLength: number, algorithm: EnvelopeAlgorithm, ptLength: number): number {
  return headerLength + nonceBytes(algorithm) + ptLength + TAG_BYTES;
}

export interface EnvelopeHeader {
  algorithm: EnvelopeAlgorithm;
  keyId: string;
  keyVersion: number;
  /** 7 + key id bytes: where the nonce starts. */
  headerLength: number;
  /** Plaintext length the envelope carries. */
  plaintextLength: number;
}

/**
 * Reads the header of a blob, or returns null when it cannot be an envelope v1. Callers answer
 * null with InvalidCiphertext, the same code a failed tag gives: no oracle.
 */
export function parseEnvelope(blob: Uint8Array): EnvelopeHeader | null {
  if (blob.length < 3 || blob[0] !== ENVELOPE_VERSION) return null;
  const algorithm = blob[1];
  if (algorithm !== ALG_XAES_256_GCM && algorithm !== ALG_AES_256_GCM) return null;
  const idLength = blob[2];
  if (idLength < 1 || idLength > MAX_KEY_ID_BYTES) return null;
  const headerLength = 7 + idLength;
  const overhead = headerLength + nonceBytes(algorithm) + TAG_BYTES;
  if (blob.length < overhead) return null;
  const bytes = Buffer.from(blob.buffer, blob.byteOffset, blob.length);
  const keyId = bytes.toString('utf8', 3, 3 + idLength);
  if (Buffer.byteLength(keyId) !== idLength) return null; // invalid UTF-8 in the key id
  return {
    algorithm,
    keyId,
    keyVersion: bytes.readUInt32BE(3 + idLength),
    headerLength,
    plaintextLength: blob.length - overhead,
  };
}
