// init for root.type vault-transit: the Transit key must exist and wrap and unwrap with the
// configured token. It is created when missing and the token may; otherwise the exact vault command.
import type { DaemonConfig } from '../config/index.js';
import { KEY_BYTES, native, withSecureBuffer, type SlotHandle } from '../native/index.js';
import { VaultTransitRoot } from '../roots/vault-transit.js';
import { VaultResponseError, acquireVaultClient } from '../vault/client.js';
import { clientOptions } from '../ops/vault-wiring.js';
import type { InitStep } from './init.js';
import { CliError } from './locate.js';

const PROBE_AAD = Buffer.from('rustfs-kms/v1/init-probe');

export async function initVaultTransit(config: DaemonConfig): Promise<InitStep> {
  const vault = config.root.vault;
  if (vault === undefined) throw new CliError('InitFailed', 'root.type is vault-transit but root.vault is not configured');
  const keyPath = `${vault.transitMount}/keys/${vault.transitKey}`;
  const where = `${vault.address}${vault.namespace !== '' ? ` (namespace ${vault.namespace})` : ''}`;
  const env = `VAULT_ADDR=${vault.address}${vault.namespace !== '' ? ` VAULT_NAMESPACE=${vault.namespace}` : ''}`;
  const createCommand = `${env} vault write -f ${keyPath} type=aes256-gcm96`;
  const handle = acquireVaultClient(clientOptions(config, undefined));
  const root = new VaultTransitRoot({ client: handle.client, release: () => handle.release(), mount: vault.transitMount, key: vault.transitKey });
  try {
    let created = false;
    try {
      await handle.client.read(keyPath);
    } catch (err) {
      if (!(err instanceof VaultResponseError) || err.status !== 404) throw vaultFailure(`reading Transit key ${keyPath} at ${where}`, err);
      try {
        await handle.client.write(keyPath, { type: 'aes256-gcm96' });
        created = true;
      } catch (createErr) {
        if (createErr instanceof VaultResponseError && createErr.status === 403) {
          return {
            what: 'Transit key', path: `${keyPath} at ${where}`, action: 'todo', command: createCommand,
            detail: 'missing, and the configured token may not create it: run the command with a token that may',
          };
        }
        throw vaultFailure(`creating Transit key ${keyPath} at ${where}`, createErr);
      }
    }
    await probe(root, keyPath);
    return {
      what: 'Transit key', path: `${keyPath} at ${where}`, action: created ? 'created' : 'checked',
      detail: created ? 'created (aes256-gcm96) with the configured token; it wraps and unwraps' : 'exists; it wraps and unwraps with the configured token',
    };
  } finally {
    await root.close();
  }
}

/** Wraps a throw-away key and unwraps it: the operations the daemon will need. */
async function probe(root: VaultTransitRoot, keyPath: string): Promise<void> {
  const slot = native.slotGenerate();
  let back: SlotHandle | undefined;
  try {
    const wrapped = await root.wrap(slot, PROBE_AAD);
    back = await root.unwrap(wrapped, PROBE_AAD);
    const same = withSecureBuffer(KEY_BYTES, (a) => withSecureBuffer(KEY_BYTES, (b) => {
      native.slotExport(slot, a);
      native.slotExport(back as SlotHandle, b);
      return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
    }));
    if (!same) throw new CliError('InitFailed', `Transit key ${keyPath} unwrapped a different key than it wrapped`);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError('InitFailed', `Transit key ${keyPath} does not wrap and unwrap with the configured token: ${(err as Error).message} ` +
      `(the token's policy needs update on ${keyPath.replace('/keys/', '/encrypt/')} and ${keyPath.replace('/keys/', '/decrypt/')}, read on ${keyPath}; see docs/operations.md)`);
  } finally {
    native.slotDestroy(slot);
    if (back !== undefined) native.slotDestroy(back);
  }
}

function vaultFailure(what: string, err: unknown): CliError {
  const detail = err instanceof VaultResponseError ? `HTTP ${err.status}${err.errors.length > 0 ? `: ${err.errors.join('; ')}` : ''}` : (err as Error).message;
  return new CliError('InitFailed', `${what}: ${detail}`);
}
