// Azure Key Vault as a cloud root (CloudKeyService over @azure/keyvault-keys): wrapKey / unwrapKey with
// RSA-OAEP-256 (RSA, RSA-HSM keys) or A256KW (oct-HSM keys), picked from the key's type. Key Vault's
// key wrap takes no associated data, so bindsAad is false and CloudRoot wraps its binding tag with the
// material. Each blob records the algorithm and the exact key version (azure-blob.ts): a record wrapped
// before the key was rotated in Key Vault unwraps with the version that wrapped it.
//
// The 32 bytes (48 with the binding tag) go to the SDK as a view of locked memory; the SDK base64url-
// encodes them into its JSON request body (a transient JS string, unavoidable, as for Vault), and its
// response bytes are zeroed by CloudRoot once copied into locked memory.
import type { CryptographyClient, KeyClient, KeyVaultKey } from '@azure/keyvault-keys';
import type { TokenCredential } from '@azure/identity';
import type { AzureKeyVaultConfig } from '../config/sections/root-azure-keyvault.js';
import type { CloudFailure, CloudKeyService } from './cloud.js';
import { AzureBlobError, decodeAzureBlob, encodeAzureBlob, versionOfKid, type AzureWrapAlgorithm } from './azure-blob.js';
import { azureCredential, challengeVerification, loadAzureSdk, pipelineOptions, type KeysSdk } from './azure-sdk.js';

/** The key cannot be used as configured (disabled, wrong type): a refusal, not an outage. */
export class AzureKeyError extends Error {
  override readonly name = 'AzureKeyError';
  constructor(readonly code: string, message: string) {
    super(message);
  }
}

/** The wrap algorithm for a key type; EC keys cannot wrap. */
export function wrapAlgorithmFor(keyType: string | undefined): AzureWrapAlgorithm | undefined {
  if (keyType === 'RSA' || keyType === 'RSA-HSM') return 'RSA-OAEP-256';
  if (keyType === 'oct' || keyType === 'oct-HSM') return 'A256KW';
  return undefined;
}

const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

export class AzureKeyVaultService implements CloudKeyService {
  readonly type = 'azure-keyvault' as const;
  readonly origin = 'azure' as const;
  readonly bindsAad = false;
  readonly keyName: string;
  readonly endpoint: string;
  /** One client per key version: each pipeline answers Key Vault's auth challenge once. */
  private readonly crypto = new Map<string, CryptographyClient>();
  private lastVersion: string | undefined;

  constructor(
    private readonly config: AzureKeyVaultConfig,
    private readonly sdk: KeysSdk,
    private readonly credential: TokenCredential,
    private readonly keys: KeyClient,
  ) {
    this.endpoint = config.vaultUrl;
    this.keyName = `${config.vaultUrl}/keys/${config.keyName}`;
  }

  /** The configured key (its pinned version, else the current one), checked usable for wrapping. */
  async key(signal: AbortSignal): Promise<{ key: KeyVaultKey; algorithm: AzureWrapAlgorithm; version: string }> {
    const key = await this.keys.getKey(this.config.keyName, { abortSignal: signal, ...(this.config.keyVersion !== undefined ? { version: this.config.keyVersion } : {}) });
    const version = versionOfKid(key.id ?? '', this.config.keyName);
    if (key.properties.enabled === false) {
      throw new AzureKeyError('KeyDisabled', `key ${this.config.keyName} version ${version} is disabled in ${this.config.vaultUrl}; enable it (az keyvault key set-attributes --enabled true)`);
    }
    const algorithm = wrapAlgorithmFor(key.keyType);
    if (algorithm === undefined) {
      throw new AzureKeyError('UnsupportedKeyType', `key ${this.config.keyName} is of type ${String(key.keyType)}; expected RSA, RSA-HSM or oct-HSM (EC keys cannot wrap)`);
    }
    return { key, algorithm, version };
  }

  async wrap(plaintext: Uint8Array, _aad: Buffer, signal: AbortSignal): Promise<Uint8Array> {
    const { key, algorithm, version } = await this.key(signal);
    const client = this.client(version, key);
    const result = await client.wrapKey(algorithm, plaintext, { abortSignal: signal });
    // The version that really wrapped (the answer's kid), not the one asked for.
    const wrappedBy = result.keyID !== undefined ? versionOfKid(result.keyID, this.config.keyName) : version;
    this.lastVersion = wrappedBy;
    return encodeAzureBlob({ algorithm, keyVersion: wrappedBy, ciphertext: result.result });
  }

  async unwrap(ciphertext: Uint8Array, _aad: Buffer, signal: AbortSignal): Promise<Uint8Array> {
    const blob = decodeAzureBlob(ciphertext);
    const result = await this.client(blob.keyVersion).unwrapKey(blob.algorithm, blob.ciphertext, { abortSignal: signal });
    return result.result;
  }

  async probe(signal: AbortSignal): Promise<void> {
    await this.key(signal);
  }

  classify(err: unknown): CloudFailure {
    const e = err as { name?: unknown; message?: unknown; code?: unknown; statusCode?: unknown; errorResponse?: { error?: unknown } };
    const message = typeof e.message === 'string' ? e.message.split('\n')[0]?.slice(0, 500) ?? '' : String(err);
    if (err instanceof AzureBlobError) return { retryable: false, rejected: true, code: 'BlobMismatch', message };
    if (err instanceof AzureKeyError) return { retryable: false, rejected: false, code: err.code, message };
    if (e.name === 'AbortError') return { retryable: true, rejected: false, code: 'Timeout', message: 'no answer within the deadline' };
    const status = typeof e.statusCode === 'number' ? e.statusCode : undefined;
    if (e.name === 'AuthenticationError') {
      const code = typeof e.errorResponse?.error === 'string' ? e.errorResponse.error : 'AuthenticationError';
      return { retryable: status === undefined || RETRYABLE_STATUS.has(status), rejected: false, code: `AuthenticationError ${code}`, message };
    }
    if (e.name === 'CredentialUnavailableError') return { retryable: false, rejected: false, code: 'CredentialUnavailable', message };
    const code = typeof e.code === 'string' && e.code !== '' ? e.code : status !== undefined ? `HTTP ${status}` : String(e.name ?? 'Error');
    const named = status !== undefined ? `${code} (HTTP ${status})` : code;
    if (status === undefined) return { retryable: e.name === 'RestError', rejected: false, code: named, message }; // network: no answer
    // 400 on unwrap: the ciphertext does not open under this key version.
    if (status === 400) return { retryable: false, rejected: true, code: named, message };
    return { retryable: RETRYABLE_STATUS.has(status), rejected: false, code: named, message };
  }

  describe(): Record<string, unknown> {
    return {
      vault_url: this.config.vaultUrl,
      key_name: this.config.keyName,
      key_version: this.config.keyVersion ?? 'current',
      auth: this.config.auth.method,
      ...(this.lastVersion !== undefined ? { last_wrapped_with: this.lastVersion } : {}),
    };
  }

  async close(): Promise<void> {
    this.crypto.clear();
  }

  /** The client for one key version, built on the configured vault_url (never a URL from a blob). */
  private client(version: string, key?: KeyVaultKey): CryptographyClient {
    let client = this.crypto.get(version);
    if (client === undefined) {
      const options = { ...pipelineOptions(this.config), ...challengeVerification(this.config.vaultUrl) };
      client = key !== undefined
        ? new this.sdk.CryptographyClient(key, this.credential, options)
        : new this.sdk.CryptographyClient(`${this.config.vaultUrl}/keys/${this.config.keyName}/${version}`, this.credential, options);
      this.crypto.set(version, client);
    }
    return client;
  }
}

export async function openAzureKeyVault(config: AzureKeyVaultConfig, env: NodeJS.ProcessEnv): Promise<AzureKeyVaultService> {
  const { keys, identity } = await loadAzureSdk();
  const credential = azureCredential(identity, config, env);
  const client = new keys.KeyClient(config.vaultUrl, credential, { ...pipelineOptions(config), ...challengeVerification(config.vaultUrl) });
  return new AzureKeyVaultService(config, keys, credential, client);
}
