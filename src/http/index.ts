// Wiring of the admin HTTP API into the daemon: secret key, metrics gauges, the default policy's
// rule for the admin access key. daemon.ts calls these in two short, delimited places.
import { withAdminAccessKey as withAccessKey, type Policy } from '../access/policy.js';
import type { AdminHttpConfig } from '../config/index.js';
import type { KeyService } from '../keys/service.js';
import { Metrics } from '../metrics/metrics.js';
import { addDaemonGauges } from '../metrics/gauges.js';
import type { AuditSink, Pipeline } from '../ops/pipeline.js';
import { AdminHttpServer, readSecretKeyFile, type AdminHttpLogger } from './server.js';
import type { DeploymentInfo } from './shapes.js';

export type { DeploymentInfo } from './shapes.js';

export { AdminHttpServer, readSecretKeyFile, DEFAULT_ADMIN_HTTP_LIMITS, type AdminHttpOptions, type AdminHttpLimits } from './server.js';
export { ROUTES, PREFIXES, httpStatus, type Route, type RouteAnswer } from './routes.js';
export { SigV4Verifier, SignatureError, MAX_CLOCK_SKEW_MS, type AdminCredentials } from './sigv4.js';

/** The built-in policy plus the configured admin access key (see access/policy.ts). */
export function withAdminAccessKey(policy: Policy, admin: AdminHttpConfig | undefined): Policy {
  return withAccessKey(policy, admin?.accessKey);
}

/** Metrics for a daemon that serves the admin API: counts every request of the shared pipeline. */
export function createDaemonMetrics(pipeline: Pipeline): Metrics {
  const metrics = new Metrics({ processMetrics: true });
  pipeline.setObserver(metrics.observe);
  return metrics;
}

export interface AdminHttpWiring {
  config: AdminHttpConfig;
  pipeline: Pipeline;
  audit: AuditSink;
  metrics: Metrics;
  service: KeyService;
  socket?: { readonly connectionCount: number; readonly inflight: number };
  auditHead?: () => { seq: number };
  auditHealth?: () => { writable: boolean; writeFailures: number };
  defaultKeyId?: string;
  logger: AdminHttpLogger;
  /** Reloads the config file as SIGHUP does (RustFS's POST /kms/reconfigure). */
  reload?: () => string;
  deployment?: DeploymentInfo;
}

/** Reads the secret key file, starts listening, registers the daemon's gauges. */
export async function startAdminHttp(w: AdminHttpWiring): Promise<AdminHttpServer> {
  const secretKey = readSecretKeyFile(w.config.secretKeyFile);
  const server = await AdminHttpServer.start({
    listen: w.config.listen,
    credentials: { accessKey: w.config.accessKey, secretKey, region: w.config.region },
    pipeline: w.pipeline,
    audit: w.audit,
    metrics: w.metrics,
    logger: w.logger,
    limits: { maxConnections: w.config.maxConnections, maxConnectionsPerSource: w.config.maxConnectionsPerSource },
    ...(w.defaultKeyId !== undefined ? { defaultKeyId: w.defaultKeyId } : {}),
    env: {
      clearCache: () => w.service.clearCache(),
      ...(w.reload !== undefined ? { reload: w.reload } : {}),
      ...(w.deployment !== undefined ? { deployment: w.deployment } : {}),
    },
  });
  addDaemonGauges(w.metrics, {
    service: w.service,
    ...(w.socket !== undefined ? { socket: w.socket } : {}),
    ...(w.auditHead !== undefined ? { auditHead: w.auditHead } : {}),
    ...(w.auditHealth !== undefined ? { auditHealth: w.auditHealth } : {}),
    httpConnections: () => server.connectionCount,
  });
  return server;
}
