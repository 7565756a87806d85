// Where the gcp-kms tests run: the Cloud KMS TEST SERVER (test/gcp-kms-server/, not Google Cloud) by
// default, or the real service when KMS_TEST_CLOUD=real and KMS_TEST_GCP_KEY_NAME names a key (with
// GOOGLE_APPLICATION_CREDENTIALS holding a service-account key allowed to use it). Daemons are real
// rustfs-kmsd processes with root.type gcp-kms and the real @google-cloud/kms client.
import { cacheAndDeadlineYaml, codeOf, startCloudDaemon, type CloudDaemon } from './cloud-daemon.js';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GcpKmsTestServer } from '../gcp-kms-server/server.js';

export const REAL_GCP = process.env.KMS_TEST_CLOUD === 'real' && (process.env.KMS_TEST_GCP_KEY_NAME ?? '') !== '';
export const NEEDS_TEST_SERVER = 'needs the Cloud KMS test server\'s fault switches or call counts; skipped against real Google Cloud';

export interface GcpTarget {
  keyName: string;
  /** undefined = the SDK's default endpoint (real Google Cloud). */
  endpoint: string | undefined;
  /** 0600 service-account key file; for the real service, GOOGLE_APPLICATION_CREDENTIALS's file. */
  credentialsFile: string;
  server: GcpKmsTestServer | undefined;
  close(): Promise<void>;
}

let counter = 0;

/** A fresh key on the test server (one per target), or the configured real key. */
export async function openGcpTarget(dir: string): Promise<GcpTarget> {
  if (REAL_GCP) {
    return {
      keyName: process.env.KMS_TEST_GCP_KEY_NAME as string,
      endpoint: undefined,
      credentialsFile: process.env.GOOGLE_APPLICATION_CREDENTIALS ?? '',
      server: undefined,
      close: async () => undefined,
    };
  }
  const server = await GcpKmsTestServer.start();
  counter += 1;
  const keyName = `projects/rustfs-test/locations/europe-west1/keyRings/kms-ring/cryptoKeys/root-${counter}`;
  server.createKey(keyName);
  const credentialsFile = writeSecret(dir, 'sa.json', JSON.stringify(server.serviceAccount('kms-daemon@rustfs-test.iam.gserviceaccount.com')));
  return { keyName, endpoint: server.endpoint, credentialsFile, server, close: () => server.stop() };
}

export function writeSecret(dir: string, name: string, content: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode });
  chmodSync(path, mode);
  return path;
}

export interface GcpDaemonOptions {
  target: GcpTarget;
  /** Put credentials_file in the config (default); false = GOOGLE_APPLICATION_CREDENTIALS only. */
  credentialsInConfig?: boolean;
  credentialsFile?: string;
  idleTtlS?: number;
  offlineTtlS?: number;
  timeoutSecs?: number;
  retryAttempts?: number;
  env?: Record<string, string | undefined>;
  dir?: string;
  /** Leave key_name out of the file (set by RUSTFS_KMS_GCP_KEY_NAME instead). */
  keyNameFromEnv?: boolean;
}


const q = (s: string): string => JSON.stringify(s);

export function gcpYaml(o: GcpDaemonOptions): string {
  const t = o.target;
  const creds = o.credentialsFile ?? t.credentialsFile;
  return [
    'root:',
    ...(o.keyNameFromEnv === true ? [] : ['  type: gcp-kms']),
    '  gcp_kms:',
    ...(o.keyNameFromEnv === true ? [] : [`    key_name: ${q(t.keyName)}`]),
    ...(o.credentialsInConfig !== false && creds !== '' ? [`    credentials_file: ${q(creds)}`] : []),
    ...(t.endpoint !== undefined ? [`    endpoint: ${q(t.endpoint)}`] : []),
    ...cacheAndDeadlineYaml(o),
  ].join('\n');
}

export function gcpDaemonEnv(o: GcpDaemonOptions): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { GOOGLE_APPLICATION_CREDENTIALS: undefined, ...(o.env ?? {}) };
  if (o.credentialsInConfig === false) env.GOOGLE_APPLICATION_CREDENTIALS = o.credentialsFile ?? o.target.credentialsFile;
  return env;
}

export type GcpDaemon = CloudDaemon;

export function startGcpDaemon(o: GcpDaemonOptions): Promise<GcpDaemon> {
  return startCloudDaemon('kms-gcp-', { ...(o.dir !== undefined ? { dir: o.dir } : {}), config: gcpYaml(o), env: gcpDaemonEnv(o) });
}


export async function waitUntil(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export { codeOf };
