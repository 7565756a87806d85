// What the three cloud suites (aws-kms, gcp-kms, azure-keyvault) share: the real daemon started on a
// config with a cloud root, its client, the cache and deadline lines of that config, and reading a
// refused call's error code.
import { KmsClient } from '../../src/rpc/client.js';
import { makeTempDir, startDaemon, type DaemonHandle, type StartDaemonOptions } from '../helpers/daemon.js';

export interface CloudDaemon {
  daemon: DaemonHandle;
  kms: KmsClient;
  dir: string;
  stop(): Promise<void>;
}

export interface CacheAndDeadlines {
  idleTtlS?: number;
  offlineTtlS?: number;
  timeoutSecs?: number;
  retryAttempts?: number;
}

/** The config lines after the root section: cache TTLs and the cloud call's deadline and retries. */
export function cacheAndDeadlineYaml(o: CacheAndDeadlines): string[] {
  return [
    'cache:',
    `  idle_ttl_s: ${o.idleTtlS ?? 300}`,
    `  offline_ttl_s: ${o.offlineTtlS ?? 3600}`,
    `timeout_secs: ${o.timeoutSecs ?? 5}`,
    `retry_attempts: ${o.retryAttempts ?? 3}`,
    '',
  ];
}

/** The real daemon in `o.dir` (a new temp dir by default) and a client connected to it. */
export async function startCloudDaemon(tempPrefix: string, o: Omit<StartDaemonOptions, 'socket'> & { dir?: string }): Promise<CloudDaemon> {
  const dir = o.dir ?? makeTempDir(tempPrefix);
  const daemon = await startDaemon({ ...o, dir });
  const kms = await KmsClient.connect(daemon.socketPath, { timeoutMs: 30_000 });
  return {
    daemon, kms, dir,
    async stop() {
      await kms.close().catch(() => undefined);
      if (daemon.running) await daemon.stop();
    },
  };
}

/** The KmsError code and message of a rejected promise ("" when it resolved). */
export async function codeOf(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
    return { code: '', message: '' };
  } catch (err) {
    return { code: String((err as { code?: unknown }).code ?? 'thrown'), message: (err as Error).message };
  }
}
