// Wiring: config → root of trust → keystore → key service → policy → pipeline → socket server.
// Start-up refuses, with the reason, anything unsafe: loose permissions, a second daemon on the
// same state, memory that cannot be locked, a root that does not open the existing keys.
import { closeSync, existsSync, lstatSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { native } from '../native/index.js';
import { backendEndpoint, openKeystore, openRoot } from '../ops/backends.js';
import { assertPrivatePath, assertTrustedDirectory } from '../permissions.js';
import type { RootOfTrust } from '../roots/types.js';
import type { Keystore } from '../keystore/types.js';
import { KeyService } from '../keys/service.js';
import { Policy, withAdminAccessKey } from '../access/policy.js';
import { reloadNameTables } from '../access/identity.js';
import { Pipeline } from '../ops/pipeline.js';
import { AuditLog } from '../audit/log.js';
import { SocketServer } from '../rpc/server.js';
import { LIST_LIMIT_MAX, BATCH_COUNT, MAX_PLAINTEXT_BYTES } from '../ops/protocol.js';
import { VERSION } from '../package-info.js';
import { redactedConfig, type DaemonConfig } from '../config/index.js';
import { createHash } from 'node:crypto';
import { createLogger, type Logger } from './logger.js';
import {
  applySocketPermissions, createdSocket, prepareSocketPath, removeCreatedSocket, resolveSocketGroup, type CreatedSocket,
} from './socket.js';
import { StateDirInUseError, lockStateDir as lockStateDirectory } from '../keystore/state-lock.js';
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
  native.hardenProcess();
  prepareStateDir(config);
  const lockFd = lockStateDir(config.stateDir);
  let service: KeyService | undefined;
  let audit: AuditLog | undefined;
  let listening: SocketServer | undefined;
  let socketFile: CreatedSocket | undefined;
  try {
    audit = openAudit(config, logger);
    // Checked before anything is created: a refusal here leaves no socket behind.
    const configuredGid = options.listenFd === undefined ? resolveSocketGroup(config.socket.group) : undefined;
    const { root, keystore } = await openBackends(config, logger);
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
      maxBufferedBytes: config.limits.maxBufferedBytes,
      frameTimeoutMs: config.limits.frameTimeoutS * 1000,
    }, logger);

    let socketGid: number | undefined;
    if (options.listenFd !== undefined) {
      await server.listen({ fd: options.listenFd });
      listening = server;
      socketGid = options.listenGid; // systemd made the socket (SocketGroup=); without this the group rule was lost
    } else {
      await prepareSocketPath(config.socket.path, config.dev);
      const previous = process.umask(0o177); // born 0600; widened to the configured mode below
      try {
        await server.listen(config.socket.path);
      } finally {
        process.umask(previous);
      }
      listening = server;
      socketFile = createdSocket(config.socket.path);
      socketGid = applySocketPermissions(config.socket.path, config.socket.mode, configuredGid);
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
          auditHealth: () => (audit as AuditLog).health,
          deployment: deploymentInfo(config),
          reload: () => {
            if (reloadHook === undefined) throw new Error('reloading is not available in this process');
            return reloadHook();
          },
          ...(config.defaultKeyId !== undefined ? { defaultKeyId: config.defaultKeyId } : {}),
        });
      } catch (err) {
        throw new StartupError(`admin HTTP API on ${config.adminHttp.listen}: ${(err as Error).message}`);
      }
    }
    // ---- end admin HTTP API ----

    const auditLog = audit;
    // Written once start-up can no longer be refused: a refused start never reads as a success.
    auditLog.lifecycle('daemon_start', { version: VERSION, pid: process.pid });
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
    if (listening !== undefined) await listening.shutdown(0).catch(() => undefined);
    if (socketFile !== undefined) removeCreatedSocket(socketFile);
    if (service !== undefined) await service.close().catch(() => undefined);
    if (audit !== undefined) auditRefusedStart(audit, err);
    if (audit !== undefined) await audit.close().catch(() => undefined);
    closeSync(lockFd);
    throw err;
  }
}

/** The refused start's one line: outcome failure and the reason (messages never carry key material). */
function auditRefusedStart(audit: AuditLog, err: unknown): void {
  const reason = err instanceof Error ? err.message : String(err);
  try {
    audit.lifecycle('daemon_start', { version: VERSION, pid: process.pid, refused: reason.slice(0, 1024) }, 'failure');
  } catch {
    // the audit log itself is what failed; stderr carries the reason
  }
}

function openAudit(config: DaemonConfig, logger: Logger): AuditLog {
  const dir = dirname(config.audit.path);
  if (!existsSync(dir)) {
    if (!config.dev) throw new StartupError(`audit log directory ${dir} does not exist`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  try {
    // The same checks as the state directory and socket path: nobody else may swap the file.
    assertTrustedDirectory(dir, 'audit log directory');
    if (existsOrLink(config.audit.path)) assertPrivatePath(config.audit.path, 'audit log');
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
  try {
    return AuditLog.open({
      path: config.audit.path,
      fsync: config.audit.fsync,
      fsyncIntervalMs: config.audit.fsyncIntervalMs,
      maxBytes: config.audit.maxBytes,
      onError: (err) => logger.error({}, err.message),
      onRecover: ({ downMs }) => logger.info({ down_ms: downMs }, `audit log writable again after ${Math.round(downMs / 1000)} s; held-back lines written, serving`),
    });
  } catch (err) {
    throw new StartupError(`audit log ${config.audit.path}: ${(err as Error).message}`);
  }
}

/** True for anything at `path`, a dangling symlink included. */
function existsOrLink(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
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
  try {
    return lockStateDirectory(stateDir);
  } catch (err) {
    if (!(err instanceof StateDirInUseError)) throw err;
    throw new StartupError(`state directory ${stateDir} is in use by another rustfs-kmsd${err.holder} (${join(stateDir, 'lock')}: ${err.reason})`);
  }
}

/** Opens the configured root and keystore; any refusal is a StartupError naming the section. */
async function openBackends(config: DaemonConfig, logger: Logger): Promise<{ root: RootOfTrust; keystore: Keystore }> {
  // The Vault backends log through their own child of a logger at the configured level.
  const vault = config.root.type === 'vault-transit' || config.keystore.type === 'vault-kv';
  const options = { create: config.dev, logger: vault ? createLogger(config.logLevel).child({ component: 'vault' }) : logger };
  try {
    const root = await openRoot(config, options);
    try {
      return { root, keystore: await openKeystore(config, options) };
    } catch (err) {
      await root.close().catch(() => undefined);
      throw err;
    }
  } catch (err) {
    throw new StartupError((err as Error).message);
  }
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
