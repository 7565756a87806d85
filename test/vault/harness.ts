// Real daemons (test/helpers/daemon.ts starts the built rustfs-kmsd) configured for Vault: root
// vault-transit, keystore vault-kv, on the target of target.ts.
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KmsClient } from '../../src/rpc/client.js';
import { makeTempDir, startDaemon, type DaemonHandle } from '../helpers/daemon.js';
import type { Backends, VaultTarget } from './target.js';

export type DaemonAuth =
  | { method: 'token'; token: string }
  | { method: 'token'; tokenFile: string }
  | { method: 'approle'; roleIdFile: string; secretIdFile: string; mount: string }
  | { method: 'kubernetes'; role: string; jwtFile: string; mount: string };

export interface VaultDaemonOptions {
  target: VaultTarget;
  backends: Backends;
  auth: DaemonAuth;
  /** Default: the target's address. */
  address?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
  syncIntervalS?: number;
  idleTtlS?: number;
  offlineTtlS?: number;
  timeoutSecs?: number;
  retryAttempts?: number;
  env?: Record<string, string | undefined>;
  dir?: string;
}

export interface VaultDaemon {
  daemon: DaemonHandle;
  kms: KmsClient;
  dir: string;
  stop(): Promise<void>;
}

const q = (s: string) => JSON.stringify(s);

export function vaultYaml(o: VaultDaemonOptions): string {
  const b = o.backends;
  const lines = [
    'root:',
    '  type: vault-transit',
    '  vault:',
    `    address: ${q(o.address ?? o.target.address)}`,
    `    namespace: ${q(b.namespace)}`,
    `    transit_mount: ${q(b.transitMount)}`,
    `    transit_key: ${q(b.transitKey)}`,
    '    auth:',
  ];
  const a = o.auth;
  if (a.method === 'token') {
    lines.push('      method: token');
    if ('tokenFile' in a) lines.push(`      token_file: ${q(a.tokenFile)}`);
  } else if (a.method === 'approle') {
    lines.push('      method: approle', `      role_id_file: ${q(a.roleIdFile)}`, `      secret_id_file: ${q(a.secretIdFile)}`, `      mount: ${q(a.mount)}`);
  } else {
    lines.push('      method: kubernetes', `      role: ${q(a.role)}`, `      jwt_file: ${q(a.jwtFile)}`, `      mount: ${q(a.mount)}`);
  }
  const tls = o.tls ?? (o.target.caFile !== undefined ? { caFile: o.target.caFile } : undefined);
  if (tls !== undefined) {
    lines.push('    tls:');
    if (tls.caFile !== undefined) lines.push(`      ca_file: ${q(tls.caFile)}`);
    if (tls.certFile !== undefined) lines.push(`      cert_file: ${q(tls.certFile)}`);
    if (tls.keyFile !== undefined) lines.push(`      key_file: ${q(tls.keyFile)}`);
    if (tls.serverName !== undefined) lines.push(`      server_name: ${q(tls.serverName)}`);
  }
  lines.push(
    'keystore:',
    '  type: vault-kv',
    `  kv_mount: ${q(b.kvMount)}`,
    `  prefix: ${q(b.prefix)}`,
    `  sync_interval_s: ${o.syncIntervalS ?? 1}`,
    'cache:',
    `  idle_ttl_s: ${o.idleTtlS ?? 300}`,
    `  offline_ttl_s: ${o.offlineTtlS ?? 3600}`,
    `timeout_secs: ${o.timeoutSecs ?? 5}`,
    `retry_attempts: ${o.retryAttempts ?? 2}`,
    '',
  );
  return lines.join('\n');
}

export async function startVaultDaemon(o: VaultDaemonOptions): Promise<VaultDaemon> {
  const dir = o.dir ?? makeTempDir('kms-vault-');
  const env: Record<string, string | undefined> = { ...(o.env ?? {}) };
  if (o.auth.method === 'token' && 'token' in o.auth) env.RUSTFS_KMS_VAULT_TOKEN = o.auth.token;
  const daemon = await startDaemon({ dir, config: vaultYaml(o), env });
  const kms = await KmsClient.connect(daemon.socketPath, { timeoutMs: 30_000 });
  return {
    daemon, kms, dir,
    async stop() {
      await kms.close().catch(() => undefined);
      if (daemon.running) await daemon.stop();
    },
  };
}

/** A 0600 file holding `content`. */
export function secretFile(dir: string, name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
  return path;
}

/** Polls `probe` until it returns something truthy; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last !== undefined ? ` (last error: ${(last as Error).message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The KmsError code of a rejected promise ("" when it resolved). */
export async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
    return { code: '', message: '' };
  } catch (err) {
    return { code: String((err as { code?: unknown }).code ?? 'thrown'), message: (err as Error).message };
  }
}
