// The Azure adapter's part of a stored blob: which algorithm and which exact key version wrapped the
// material, then the ciphertext. Old records keep unwrapping after the key is rotated in Key Vault
// because they name their version; the vault itself is never taken from the blob (only the configured
// vault_url gets a token).
//
// Layout: 0x01 ‖ alg length (u8) ‖ alg (ASCII) ‖ key version length (u8) ‖ key version (ASCII) ‖ ciphertext.

export const AZURE_BLOB_VERSION = 0x01;
export const WRAP_ALGORITHMS = ['RSA-OAEP-256', 'A256KW'] as const;
export type AzureWrapAlgorithm = (typeof WRAP_ALGORITHMS)[number];
const VERSION_PATTERN = /^[0-9A-Za-z]{1,64}$/;

/** A blob that is not one of ours: the root treats it as a refusal, never as an outage. */
export class AzureBlobError extends Error {
  override readonly name = 'AzureBlobError';
}

export interface AzureBlob {
  algorithm: AzureWrapAlgorithm;
  keyVersion: string;
  ciphertext: Uint8Array;
}

export function encodeAzureBlob(b: AzureBlob): Buffer {
  if (!VERSION_PATTERN.test(b.keyVersion)) throw new AzureBlobError(`Key Vault returned an unexpected key version ${JSON.stringify(b.keyVersion.slice(0, 80))}`);
  const alg = Buffer.from(b.algorithm, 'ascii');
  const version = Buffer.from(b.keyVersion, 'ascii');
  return Buffer.concat([Buffer.from([AZURE_BLOB_VERSION, alg.length]), alg, Buffer.from([version.length]), version, b.ciphertext]);
}

export function decodeAzureBlob(blob: Uint8Array): AzureBlob {
  const buf = Buffer.from(blob.buffer, blob.byteOffset, blob.length);
  if (buf.length < 3 || buf[0] !== AZURE_BLOB_VERSION) throw new AzureBlobError(`not an Azure Key Vault blob (format ${buf[0] ?? 'missing'}, expected ${AZURE_BLOB_VERSION})`);
  const algLength = buf[1] as number;
  const algorithm = buf.subarray(2, 2 + algLength).toString('ascii');
  const found = WRAP_ALGORITHMS.find((a) => a === algorithm);
  if (found === undefined) throw new AzureBlobError(`Azure Key Vault blob names algorithm ${JSON.stringify(algorithm)}; expected one of ${WRAP_ALGORITHMS.join(', ')}`);
  const at = 2 + algLength;
  const versionLength = buf[at] ?? 0;
  const keyVersion = buf.subarray(at + 1, at + 1 + versionLength).toString('ascii');
  if (!VERSION_PATTERN.test(keyVersion)) throw new AzureBlobError('Azure Key Vault blob names no valid key version');
  const ciphertext = buf.subarray(at + 1 + versionLength);
  if (ciphertext.length === 0) throw new AzureBlobError('Azure Key Vault blob has no ciphertext');
  return { algorithm: found, keyVersion, ciphertext };
}

/** The version from a full key id `https://<vault>/keys/<name>/<version>`, checked against the key's name. */
export function versionOfKid(kid: string, keyName: string): string {
  const m = /\/keys\/([0-9A-Za-z-]+)\/([0-9A-Za-z]+)\/?$/.exec(kid);
  if (m === null) throw new AzureBlobError(`Key Vault answered with key id ${JSON.stringify(kid.slice(0, 200))}, which names no key version`);
  if (m[1] !== keyName) throw new AzureBlobError(`Key Vault answered with key ${m[1] ?? ''}; expected ${keyName}`);
  return m[2] as string;
}
