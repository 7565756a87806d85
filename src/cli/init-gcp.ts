// init for root.type gcp-kms: the Cloud KMS key must exist, be a symmetric key with an enabled
// primary version, and wrap and unwrap 32 random bytes (probe AAD) with the configured credentials.
// init never creates cloud resources or grants roles: it prints the exact gcloud command instead.
import { readFileSync } from 'node:fs';
import type { DaemonConfig } from '../config/index.js';
import { KEY_BYTES, native, withSecureBuffer, type SlotHandle } from '../native/index.js';
import { CloudRoot } from '../roots/cloud.js';
import { GcpKmsService, classifyGcpError } from '../roots/gcp-kms.js';
import type { InitStep } from './init.js';
import { CliError } from './locate.js';

const PROBE_AAD = Buffer.from('rustfs-kms/v1/init-probe');
const ROLE = 'roles/cloudkms.cryptoKeyEncrypterDecrypter';
const WHAT = 'Cloud KMS key';

/** projects/P/locations/L/keyRings/R/cryptoKeys/K → the gcloud flags that name it. */
function gcloudKey(keyName: string): { key: string; flags: string } {
  const [, project, , location, , ring, , key] = keyName.split('/');
  return { key: key as string, flags: `--keyring ${ring} --location ${location} --project ${project}` };
}

/** The service account the credentials file names (only its client_email is read). */
function member(config: DaemonConfig): string {
  const file = config.root.gcpKms?.credentialsFile ?? process.env.GOOGLE_APPLICATION_CREDENTIALS;
  try {
    const email = (JSON.parse(readFileSync(file ?? '', 'utf8')) as { client_email?: unknown }).client_email;
    if (typeof email === 'string' && email !== '') return `serviceAccount:${email}`;
  } catch {
    // ADC without a key file (metadata server, workload identity): the operator knows the account.
  }
  return 'serviceAccount:SERVICE_ACCOUNT_EMAIL';
}

function codeIn(message: string): string | undefined {
  return /\b(PERMISSION_DENIED|NOT_FOUND|FAILED_PRECONDITION|UNAUTHENTICATED|INVALID_ARGUMENT)\b/.exec(message)?.[1];
}

export async function initGcpKms(config: DaemonConfig): Promise<InitStep> {
  const gcp = config.root.gcpKms;
  if (gcp === undefined) throw new CliError('InitFailed', 'root.type is gcp-kms but root.gcp_kms.key_name is not configured');
  const { key, flags } = gcloudKey(gcp.keyName);
  const where = `${gcp.keyName} at ${gcp.endpoint ?? 'https://cloudkms.googleapis.com'}`;
  const createCommand = `gcloud kms keys create ${key} ${flags} --purpose encryption`;
  const bindCommand = (role: string) => `gcloud kms keys add-iam-policy-binding ${key} ${flags} --member ${member(config)} --role ${role}`;
  let service: GcpKmsService;
  try {
    service = await GcpKmsService.open({ config: gcp, env: process.env });
  } catch (err) {
    throw new CliError('InitFailed', (err as Error).message);
  }
  const root = new CloudRoot(service, { timeoutMs: config.timeoutSecs * 1000, retryAttempts: config.retryAttempts });
  try {
    let getDenied = false;
    try {
      await service.probe(AbortSignal.timeout(config.timeoutSecs * 1000));
    } catch (err) {
      const f = classifyGcpError(err);
      if (f.code === 'NOT_FOUND') {
        return { what: WHAT, path: where, action: 'todo', command: createCommand, detail: `NOT_FOUND: ${f.message} Check the project, location, key ring and key name, or create the key` };
      }
      if (f.code === 'FAILED_PRECONDITION') {
        throw new CliError('InitFailed', `${WHAT} ${where} cannot wrap: FAILED_PRECONDITION: ${f.message} (enable or restore the version: gcloud kms keys versions enable VERSION --key ${key} ${flags}; or make an enabled version primary)`);
      }
      if (f.code !== 'PERMISSION_DENIED') throw new CliError('InitFailed', `${WHAT} ${where}: ${f.code}: ${f.message}`);
      getDenied = true; // cloudkms.cryptoKeys.get is only for health checks: go on to the wrap probe
    }
    try {
      await probe(root);
    } catch (err) {
      const message = (err as Error).message;
      const code = codeIn(message);
      if (code === 'PERMISSION_DENIED') {
        return {
          what: WHAT, path: where, action: 'todo', command: bindCommand(ROLE),
          detail: `the credentials may not wrap and unwrap with it (${message.replace(/^.*PERMISSION_DENIED: /, 'PERMISSION_DENIED: ')}): grant ${ROLE} (cloudkms.cryptoKeyVersions.useToEncrypt and useToDecrypt) on the key`,
        };
      }
      if (code === 'NOT_FOUND') return { what: WHAT, path: where, action: 'todo', command: createCommand, detail: `NOT_FOUND: check the key name and location, or create the key` };
      if (code === 'FAILED_PRECONDITION') {
        throw new CliError('InitFailed', `${WHAT} ${where} cannot wrap or unwrap: ${message.replace(/^.*FAILED_PRECONDITION: /, 'FAILED_PRECONDITION: ')} (the key version must be ENABLED)`);
      }
      throw new CliError('InitFailed', `${WHAT} ${where} does not wrap and unwrap with the configured credentials: ${message}`);
    }
    if (getDenied) {
      return {
        what: WHAT, path: where, action: 'todo', command: bindCommand('roles/cloudkms.viewer'),
        detail: 'wraps and unwraps, but the credentials may not read the key (PERMISSION_DENIED on cloudkms.cryptoKeys.get): health checks need it (roles/cloudkms.viewer on the key, or a custom role with cloudkms.cryptoKeys.get)',
      };
    }
    return { what: WHAT, path: where, action: 'checked', detail: 'exists, ENCRYPT_DECRYPT with an enabled primary version; wraps and unwraps with the configured credentials' };
  } finally {
    await root.close();
  }
}

/** Wraps 32 random bytes bound to the probe AAD and unwraps them: what the daemon will need. */
async function probe(root: CloudRoot): Promise<void> {
  const slot = native.slotGenerate();
  let back: SlotHandle | undefined;
  try {
    back = await root.unwrap(await root.wrap(slot, PROBE_AAD), PROBE_AAD);
    const same = withSecureBuffer(KEY_BYTES, (a) => withSecureBuffer(KEY_BYTES, (b) => {
      native.slotExport(slot, a);
      native.slotExport(back as SlotHandle, b);
      return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
    }));
    if (!same) throw new CliError('InitFailed', 'the Cloud KMS key unwrapped different bytes than it wrapped');
  } finally {
    native.slotDestroy(slot);
    if (back !== undefined) native.slotDestroy(back);
  }
}
