// Gauges of a running daemon (or in-process manager), read at scrape time: keys by state, the key
// cache, locked memory, connections, the audit chain's length and whether the log can be written.
import { native } from '../native/index.js';
import type { KeyService } from '../keys/service.js';
import type { KeyState } from '../keys/types.js';
import type { Metrics } from './metrics.js';

export interface GaugeTargets {
  service: KeyService;
  /** The socket server (connections and requests in flight), when there is one. */
  socket?: { readonly connectionCount: number; readonly inflight: number };
  /** Open admin HTTP connections, when the API is on. */
  httpConnections?: () => number;
  /** Newest audit record, when there is an audit log. */
  auditHead?: () => { seq: number };
  /** Whether the audit log takes lines, and its failed writes so far. */
  auditHealth?: () => { writable: boolean; writeFailures: number };
}

const STATES: readonly KeyState[] = ['Enabled', 'Disabled', 'PendingDeletion'];

function keysByState(service: KeyService): Array<{ labels: Record<string, string>; value: number }> {
  const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
  let marker: string | undefined;
  for (;;) {
    const page = service.listKeys({ limit: 1000, ...(marker !== undefined ? { marker } : {}) });
    for (const k of page.keys) counts.set(k.state, (counts.get(k.state) ?? 0) + 1);
    if (!page.truncated || page.nextMarker === undefined) break;
    marker = page.nextMarker;
  }
  return STATES.map((state) => ({ labels: { state }, value: counts.get(state) ?? 0 }));
}

export function addDaemonGauges(metrics: Metrics, t: GaugeTargets): void {
  metrics.addGauge({ name: 'rustfs_kms_keys', help: 'Master keys, by state.', labelNames: ['state'], read: () => keysByState(t.service) });
  metrics.addGauge({
    name: 'rustfs_kms_key_cache_unwrapped_versions',
    help: 'Master-key versions currently unwrapped in locked memory (the key cache).',
    read: () => t.service.unwrappedVersions,
  });
  metrics.addGauge({
    name: 'rustfs_kms_locked_memory_bytes',
    help: 'Bytes of mlock()ed native memory holding key slots.',
    read: () => native.stats().lockedBytes,
  });
  metrics.addGauge({ name: 'rustfs_kms_key_slots_in_use', help: 'Native key slots in use (root and master-key versions).', read: () => native.stats().slotsInUse });
  if (t.socket !== undefined) {
    const socket = t.socket;
    metrics.addGauge({ name: 'rustfs_kms_socket_connections', help: 'Open Unix-socket connections.', read: () => socket.connectionCount });
    metrics.addGauge({ name: 'rustfs_kms_socket_inflight_requests', help: 'Socket requests being worked on.', read: () => socket.inflight });
  }
  if (t.httpConnections !== undefined) {
    const read = t.httpConnections;
    metrics.addGauge({ name: 'rustfs_kms_http_connections', help: 'Open admin HTTP connections.', read });
  }
  if (t.auditHead !== undefined) {
    const head = t.auditHead;
    metrics.addGauge({ name: 'rustfs_kms_audit_records', help: 'Sequence number of the newest audit record.', read: () => head().seq });
  }
  if (t.auditHealth !== undefined) {
    const health = t.auditHealth;
    metrics.addGauge({
      name: 'rustfs_kms_audit_writable',
      help: '1 while the audit log takes lines; 0 while it cannot be written (disk full) and new requests are refused.',
      read: () => (health().writable ? 1 : 0),
    });
    metrics.addGauge({
      name: 'rustfs_kms_audit_write_failures_total', type: 'counter',
      help: 'Audit writes and fsyncs that failed (each retry counts).',
      read: () => health().writeFailures,
    });
  }
  metrics.addGauge({
    name: 'rustfs_kms_uptime_seconds',
    help: 'Seconds since the key service started.',
    read: () => Math.round((Date.now() - t.service.startedAt) / 1000),
  });
}
