// The real daemon with admin_http on a free loopback port, for the hostile-client tests: start it,
// sign requests to it with the AWS SDK's signer, read its audit log.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import { freePort, sdkRequest, type Creds, type HttpAnswer } from '../http/clients.js';

export const R = '/rustfs/admin/v3/kms';
export const M = '/minio/admin/v3/kms';

export interface AdminDaemon {
  daemon: DaemonHandle;
  port: number;
  creds: Creds;
  send(method: string, path: string, query?: Record<string, string>, body?: string): Promise<HttpAnswer>;
  auditLines(): Array<Record<string, unknown>>;
}

/** `extraConfig` is appended to the YAML (top-level keys); `adminExtra` goes inside admin_http's map. */
export async function startAdminDaemon(extraConfig = '', adminExtra = ''): Promise<AdminDaemon> {
  const creds: Creds = { accessKey: 'hostile-test-admin', secretKey: randomBytes(24).toString('base64url') };
  const dir = makeTempDir('kms-hostile-');
  const secretFile = join(dir, 'admin.secret');
  writeFileSync(secretFile, creds.secretKey + '\n', { mode: 0o600 });
  const port = await freePort();
  const daemon = await startDaemon({
    dir,
    config: `admin_http: { listen: "127.0.0.1:${port}", access_key: ${creds.accessKey}, secret_key_file: ${secretFile}` +
      `${adminExtra === '' ? '' : `, ${adminExtra}`} }\n${extraConfig}`,
  });
  return {
    daemon, port, creds,
    send: (method, path, query = {}, body) => sdkRequest(port, creds, { method, path, query, ...(body !== undefined ? { body } : {}) }),
    auditLines: () => readFileSync(join(daemon.stateDir, 'audit.log'), 'utf8')
      .split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Resolves with `p`, or rejects naming `what` when it takes longer than `ms` (a liveness deadline). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}
