// Wiring: config → root of trust → keystore → key service → policy → pipeline → socket server.
// Start-up refuses, with the reason, anything unsafe: loose permissions, a second daemon on the
// same state, memory that cannot be locked, a root that does not open the existing keys.
import { closeSync, constants as fsc, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { native } from '../native/index.js';
import { LocalRoot } from '../roots/local.js';
import { assertPrivatePath } from '../roots/permissions.js';
import type { RootOfTrust } from '../roots/types.js';
import { FileKeystore } from '../keystore/file.js';
import type { Keystore } from '../keystore/types.js';
import { KeyService } from '../keys/service.js';
import { Policy, withAdminAccessKey } from '../access/policy.js';
import { reloadNameTables } from '../access/identity.js';
import { Pipeline } from '../rpc/pipeline.js';
import { AuditLog } from '../audit/log.js';
import { SocketServer } from '../rpc/server.js';
import { LIST_LIMIT_MAX, BATCH_COUNT, MAX_PLAINTEXT_BYTES } from '../rpc/protocol.js';
import { VERSION } from '../package-info.js';
import { redactedConfig, type DaemonConfig } from './config.js';
import { createHash } from 'node:crypto';
import { createLogger, type Logger } from './logger.js';
import { applySocketPermissions, prepareSocketPath } from './socket.js';
// Backends and the admin HTTP API are imported when configured: most hosts never load them.
import type { AdminHttpServer, DeploymentInfo } from '../http/index.js';

export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

export interface RunningDaemon {
  config: DaemonConfig;
  audit: AuditLog;
  service: KeyService;
  server: SocketServer;
  pipeline: Pipeline;
  /** SIGHUP: policy and name tables from the config file again; connections stay. */
  reload(config: DaemonConfig): void;
  /** SIGTERM: stop accepting, drain, flush, wipe. */
  stop(): Promise<void>;
  /** What the admin HTTP API's reconfigure route runs: main.ts installs its SIGHUP path here. */
  onReloadRequest(hook: () => string): void;
}

export interface StartOptions {
  logger: Logger;
  /** An inherited listening socket (systemd activation) instead of creating one. */
  listenFd?: number;
  /** With listenFd: the group the activated socket belongs to, for the built-in policy's group rule. */
  listenGid?: number;
}

export async function startDaemon(config: DaemonConfig, options: StartOptions): Promise<RunningDaemon> {
  const { logger } = options;
  native.setAllowUnlockedMemory(config.allowUnlockedMemory);
  native.hardenProcess(config.hardening.mlockall);
  prepareStateDir(config);
  const lockFd = lockStateDir(config.stateDir);
  let service: KeyService | undefined;
  let audit: AuditLog | undefined;
  try {
    audit = openAudit(config, logger);
    audit.lifecycle('daemon_start', { version: VERSION, pid: process.pid });
    const root = await openRoot(config, logger);
    const keystore = await openKeystore(config);
    service = new KeyService({
      keystore, root, logger,
      idleTtlMs: config.cache.idleTtlS * 1000,
      offlineTtlMs: config.cache.offlineTtlS * 1000,
    });
    await service.start();

    const limits = {
      max_frame_bytes: config.limits.maxFrameBytes,
      max_plaintext_bytes: MAX_PLAINTEXT_BYTES,
      max_batch_count: BATCH_COUNT.max,
      max_list_limit: LIST_LIMIT_MAX,
      max_connections: config.limits.maxConnections,
      max_inflight_per_connection: config.limits.maxInflightPerConnection,
    };
    const pipeline = new Pipeline(
      { service, version: VERSION, limits, endpoint: backendEndpoint(config), auditHead: () => (audit as AuditLog).head },
      Policy.defaults(process.getuid?.() ?? 0, undefined),
      audit,
      logger,
    );
    // ---- admin HTTP API (src/http): metrics count the shared pipeline from here on ----
    const http = config.adminHttp !== undefined ? await import('../http/index.js') : undefined;
    const metrics = http?.createDaemonMetrics(pipeline);
    // ---- end admin HTTP API ----
    const server = new SocketServer(pipeline, {
      maxFrameBytes: config.limits.maxFrameBytes,
      maxConnections: config.limits.maxConnections,
      maxInflightPerConnection: config.limits.maxInflightPerConnection,
      idleTimeoutMs: config.limits.idleTimeoutS * 1000,
    }, logger);

    let socketGid: number | undefined;
    if (options.listenFd !== undefined) {
      await server.listen({ fd: options.listenFd });
      socketGid = options.listenGid; // systemd made the socket (SocketGroup=); without this the group rule was lost
    } else {
      await prepareSocketPath(config.socket.path, config.dev);
      const previous = process.umask(0o177); // born 0600; widened to the configured mode below
      try {
        await server.listen(config.socket.path);
      } finally {
        process.umask(previous);
      }
      socketGid = applySocketPermissions(config.socket.path, config.socket.mode, config.socket.group);
    }
    const policyFor = (c: DaemonConfig) =>
      c.policy !== undefined ? new Policy(c.policy) : withAdminAccessKey(Policy.defaults(process.getuid?.() ?? 0, socketGid), config.adminHttp?.accessKey);
    pipeline.setAuthorizer(policyFor(config));

    // ---- admin HTTP API (src/http): off unless admin_http is configured ----
    let adminHttp: AdminHttpServer | undefined;
    let reloadHook: (() => string) | undefined;
    if (config.adminHttp !== undefined && http !== undefined && metrics !== undefined) {
      try {
        adminHttp = await http.startAdminHttp({
          config: config.adminHttp, pipeline, audit, metrics, service, logger, socket: server,
          auditHead: () => (audit as AuditLog).head,
          deployment: deploymentInfo(config),
          reload: () => {
            if (reloadHook === undefined) throw new Error('reloading is not available in this process');
            return reloadHook();
          },
          ...(config.defaultKeyId !== undefined ? { defaultKeyId: config.defaultKeyId } : {}),
        });
      } catch (err) {
        await server.shutdown(0);
        throw new StartupError(`admin HTTP API on ${config.adminHttp.listen}: ${(err as Error).message}`);
      }
    }
    // ---- end admin HTTP API ----

    const auditLog = audit;
    const running: RunningDaemon = {
      config, service, server, pipeline, audit: auditLog,
      onReloadRequest(hook) {
        reloadHook = hook;
      },
      reload(next) {
        const policy = policyFor(next); // a bad policy throws before anything changes
        reloadNameTables();
        pipeline.setAuthorizer(policy);
        logger.level = next.logLevel;
        auditLog.lifecycle('daemon_reload', { policy_rules: next.policy?.length ?? 0, log_level: next.logLevel });
        logger.info({ rules: next.policy?.length ?? 'default' }, 'policy and log level reloaded');
      },
      async stop() {
        await adminHttp?.close(); // admin HTTP API (src/http)
        await server.shutdown(config.limits.drainTimeoutS * 1000);
        await (service as KeyService).close();
        native.wipeAll();
        auditLog.lifecycle('daemon_stop', { pid: process.pid });
        await auditLog.close();
        closeSync(lockFd);
      },
    };
    return running;
  } catch (err) {
    if (service !== undefined) await service.close().catch(() => undefined);
    if (audit !== undefined) await audit.close().catch(() => undefined);
    closeSync(lockFd);
    throw err;
  }
}

/** Where the keys live, for `status`: the Vault address, the PKCS#11 module, or the state directory. */
function backendEndpoint(config: DaemonConfig): string {
  if (config.root.type === 'vault-transit' && config.root.vault !== undefined) return config.root.vault.address;
  if (config.root.type === 'pkcs11' && config.root.pkcs11 !== undefined) return config.root.pkcs11.module;
  return config.stateDir;
}

function openAudit(config: DaemonConfig, logger: Logger): AuditLog {
  const dir = dirname(config.audit.path);
  if (!existsSync(dir)) {
    if (!config.dev) throw new StartupError(`audit log directory ${dir} does not exist`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  try {
    return AuditLog.open({
      path: config.audit.path,
      fsync: config.audit.fsync,
      fsyncIntervalMs: config.audit.fsyncIntervalMs,
      maxBytes: config.audit.maxBytes,
      onError: (err) => logger.error({ err: err.message }, 'audit log failed; refusing operations until restarted'),
    });
  } catch (err) {
    throw new StartupError(`audit log ${config.audit.path}: ${(err as Error).message}`);
  }
}

function prepareStateDir(config: DaemonConfig): void {
  const dir = config.stateDir;
  if (!existsSync(dir)) {
    if (!config.dev) throw new StartupError(`state directory ${dir} does not exist (create it 0700, owned by the daemon's user)`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  try {
    assertPrivatePath(dir, 'state directory');
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
}

/** flock on <state_dir>/lock keeps a second daemon off the same keys. */
function lockStateDir(stateDir: string): number {
  const path = join(stateDir, 'lock');
  const fd = openSync(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  try {
    native.lockFile(fd);
  } catch (err) {
    closeSync(fd);
    throw new StartupError(`state directory ${stateDir} is in use by another rustfs-kmsd (${path}: ${(err as Error).message})`);
  }
  return fd;
}

async function openRoot(config: DaemonConfig, logger: Logger): Promise<RootOfTrust> {
  switch (config.root.type) {
    case 'local':
      try {
        return LocalRoot.open({
          keyFile: config.root.local.keyFile,
          ...(config.root.local.passphraseEnv !== undefined ? { passphraseEnv: config.root.local.passphraseEnv } : {}),
          saltFile: join(config.stateDir, 'root.salt'),
          create: config.dev,
          env: process.env,
        });
      } catch (err) {
        throw new StartupError((err as Error).message);
      }
    case 'vault-transit':
      try {
        const { openVaultTransitRoot } = await import('../vault/wiring.js');
        return openVaultTransitRoot(config, vaultLogger(config));
      } catch (err) {
        throw new StartupError(`root.vault: ${(err as Error).message}`);
      }
    case 'pkcs11': {
      const p11 = config.root.pkcs11;
      if (p11 === undefined) throw new StartupError('root.type is pkcs11 but the root.pkcs11 section is missing');
      // Test hook: a tiny seal budget per on-token version, so a test sees automatic rotation.
      const sealLimit = Number(process.env.RUSTFS_KMS_TEST_PKCS11_SEAL_LIMIT ?? '');
      try {
        const { Pkcs11Root } = await import('../roots/pkcs11.js');
        return Pkcs11Root.open({
          ...p11, // the config's section is the root's options
          env: process.env,
          stateDir: config.stateDir,
          logger,
          ...(Number.isSafeInteger(sealLimit) && sealLimit > 0 ? { sealLimit } : {}),
        });
      } catch (err) {
        throw new StartupError(`root.pkcs11: ${(err as Error).message}`);
      }
    }
    default:
      throw new StartupError(`root.type ${config.root.type} is not available in this build`);
  }
}

async function openKeystore(config: DaemonConfig): Promise<Keystore> {
  switch (config.keystore.type) {
    case 'file':
      return new FileKeystore(config.stateDir);
    case 'vault-kv':
      try {
        const { openVaultKvKeystore } = await import('../vault/wiring.js');
        return openVaultKvKeystore(config, vaultLogger(config));
      } catch (err) {
        throw new StartupError(`keystore (vault-kv): ${(err as Error).message}`);
      }
    default:
      throw new StartupError(`keystore.type ${config.keystore.type} is not available in this build`);
  }
}

/** The Vault backends log through their own child of a logger at the configured level. */
let vaultLog: Logger | undefined;
function vaultLogger(config: DaemonConfig): Logger {
  vaultLog ??= createLogger(config.logLevel).child({ component: 'vault' });
  return vaultLog;
}

/** What the admin HTTP API reports about this deployment (RustFS's status, config, backup routes). */
function deploymentInfo(config: DaemonConfig): DeploymentInfo {
  const fingerprint = createHash('sha256').update(JSON.stringify(redactedConfig(config))).digest('hex');
  const vault = config.root.vault;
  return {
    stateDir: config.stateDir,
    ...(config.configPath !== undefined ? { configPath: config.configPath } : {}),
    configFingerprint: fingerprint,
    rootType: config.root.type,
    keystoreType: config.keystore.type,
    cacheIdleTtlS: config.cache.idleTtlS,
    timeoutS: config.timeoutSecs,
    retryAttempts: config.retryAttempts,
    ...(vault !== undefined
      ? {
        vault: {
          address: vault.address, namespace: vault.namespace, transitMount: vault.transitMount,
          kvMount: config.keystore.kvMount, prefix: config.keystore.prefix, authMethod: vault.auth.method,
        },
      }
      : {}),
  };
}
