// XAES-256-GCM (c2sp.org/XAES-256-GCM) written with node:crypto only: the reference the native
// addon is benchmarked against and cross-checked with.
//
//   L  = AES-256_K(0^128), K1 = dbl(L)                                     (once per key)
//   Kx = AES-256_K(M1 ⊕ K1) ‖ AES-256_K(M2 ⊕ K1),  Mi = 0x00 ‖ i ‖ "X" ‖ 0x00 ‖ N[:12]
//   ciphertext ‖ tag = AES-256-GCM(Kx, N[12:], plaintext, aad)
//
// The CMAC of the single complete block Mi is AES_K(Mi ⊕ K1). A long-lived ECB cipher without padding
// encrypts the two blocks (ECB is stateless per block, so one keyed object serves every message, the
// way the addon keeps the expanded key schedule in the slot).
import { createCipheriv, createDecipheriv, randomFillSync, type Cipher } from 'node:crypto';

export const XAES_NONCE_BYTES = 24;
export const XAES_TAG_BYTES = 16;

/** dbl() in GF(2^128) as CMAC uses it: shift left one bit, xor 0x87 into the last byte on carry. */
export function dbl(l: Uint8Array): Buffer {
  const out = Buffer.alloc(16);
  for (let i = 0; i < 15; i++) out[i] = ((l[i]! << 1) | (l[i + 1]! >> 7)) & 0xff;
  out[15] = ((l[15]! << 1) ^ (l[0]! & 0x80 ? 0x87 : 0)) & 0xff;
  return out;
}

export class NodeXaes {
  readonly L: Buffer;
  readonly K1: Buffer;
  private readonly ecb: Cipher;
  private readonly m = Buffer.alloc(32);

  constructor(key: Uint8Array) {
    if (key.length !== 32) throw new RangeError('XAES-256-GCM key must be 32 bytes');
    this.ecb = createCipheriv('aes-256-ecb', key, null);
    this.ecb.setAutoPadding(false);
    this.L = this.ecb.update(Buffer.alloc(16));
    this.K1 = dbl(this.L);
  }

  /** The per-nonce derived key Kx (32 bytes). */
  deriveKey(nonce: Uint8Array): Buffer {
    if (nonce.length !== XAES_NONCE_BYTES) throw new RangeError('XAES-256-GCM nonce must be 24 bytes');
    const m = this.m;
    m[0] = 0x00; m[1] = 0x01; m[2] = 0x58; m[3] = 0x00;
    m[16] = 0x00; m[17] = 0x02; m[18] = 0x58; m[19] = 0x00;
    for (let i = 0; i < 12; i++) {
      m[4 + i] = nonce[i]!;
      m[20 + i] = nonce[i]!;
    }
    for (let i = 0; i < 16; i++) {
      m[i]! ^= this.K1[i]!;
      m[16 + i]! ^= this.K1[i]!;
    }
    return this.ecb.update(m);
  }

  /** ciphertext ‖ tag. aad may be given in pieces (fed in order, as one AAD). */
  seal(nonce: Uint8Array, plaintext: Uint8Array, ...aad: Uint8Array[]): Buffer {
    const cipher = createCipheriv('aes-256-gcm', this.deriveKey(nonce), nonce.subarray(12));
    const aadAll = aad.length === 1 ? aad[0]! : Buffer.concat(aad);
    if (aadAll.length > 0) cipher.setAAD(aadAll);
    const head = cipher.update(plaintext);
    const tail = cipher.final();
    return Buffer.concat([head, tail, cipher.getAuthTag()]);
  }

  /** The plaintext, or null when anything does not authenticate. */
  open(nonce: Uint8Array, sealed: Uint8Array, ...aad: Uint8Array[]): Buffer | null {
    if (sealed.length < XAES_TAG_BYTES) return null;
    const ctLen = sealed.length - XAES_TAG_BYTES;
    const decipher = createDecipheriv('aes-256-gcm', this.deriveKey(nonce), nonce.subarray(12));
    decipher.setAuthTag(sealed.subarray(ctLen));
    const aadAll = aad.length === 1 ? aad[0]! : Buffer.concat(aad);
    if (aadAll.length > 0) decipher.setAAD(aadAll);
    const head = decipher.update(sealed.subarray(0, ctLen));
    try {
      return Buffer.concat([head, decipher.final()]);
    } catch {
      return null;
    }
  }

  /**
   * The addon's envelope layout: header ‖ random nonce ‖ ciphertext ‖ tag, with
   * AAD = header ‖ nonce ‖ aad.
   */
  sealEnvelope(header: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Buffer {
    const nonce = randomFillSync(Buffer.alloc(XAES_NONCE_BYTES));
    return Buffer.concat([header, nonce, this.seal(nonce, plaintext, header, nonce, aad)]);
  }
}
