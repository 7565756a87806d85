// Requests Node's HTTP parser refuses (a bad request line, headers over the limit, a request that
// never completed) never reach a route, yet each leaves an audit trace: at most one line per source
// per interval, carrying how many refusals it stands for, so a flood cannot fill the audit disk.
import type { Caller } from '../access/identity.js';
import type { AuditSink } from '../ops/pipeline.js';
import type { Logger } from '../logging.js';

/** One audit line per source per this interval at most. */
export const MALFORMED_AUDIT_INTERVAL_MS = 10_000;
/** Sources tracked at once; refusals from further sources share one "other sources" tally. */
export const MALFORMED_AUDIT_MAX_SOURCES = 256;
const OTHER_SOURCES = '*';

interface Tally {
  windowStart: number;
  /** Refusals not yet written. */
  pending: number;
  /** Parser error code of the latest refusal (e.g. HPE_HEADER_OVERFLOW). */
  reason: string;
}

export interface MalformedAudit {
  readonly audit: AuditSink;
  readonly logger: Logger;
  readonly tallies: Map<string, Tally>;
}

export function createMalformedAudit(audit: AuditSink, logger: Logger): MalformedAudit {
  return { audit, logger, tallies: new Map() };
}

/** Records one refused, unparsable request from `sourceIp` (rate-limited per source). */
export function auditMalformed(state: MalformedAudit, sourceIp: string | undefined, reason: string, now = Date.now()): void {
  let source = sourceIp ?? 'unix';
  if (!state.tallies.has(source) && state.tallies.size >= MALFORMED_AUDIT_MAX_SOURCES) source = OTHER_SOURCES;
  const tally = state.tallies.get(source);
  if (tally === undefined) {
    state.tallies.set(source, { windowStart: now, pending: 0, reason });
    write(state, source, 1, reason);
    return;
  }
  tally.pending++;
  tally.reason = reason;
  if (now - tally.windowStart >= MALFORMED_AUDIT_INTERVAL_MS) settle(state, source, tally, now);
}

/** Writes the tallies whose interval has ended and forgets quiet sources; call it every interval. */
export function flushMalformed(state: MalformedAudit, now = Date.now()): void {
  for (const [source, tally] of state.tallies) {
    if (now - tally.windowStart < MALFORMED_AUDIT_INTERVAL_MS) continue;
    if (tally.pending === 0) state.tallies.delete(source);
    else settle(state, source, tally, now);
  }
}

function settle(state: MalformedAudit, source: string, tally: Tally, now: number): void {
  write(state, source, tally.pending, tally.reason);
  tally.pending = 0;
  tally.windowStart = now;
}

function write(state: MalformedAudit, source: string, count: number, reason: string): void {
  const caller: Caller = source === OTHER_SOURCES || source === 'unix' ? { kind: 'access-key' } : { kind: 'access-key', sourceIp: source };
  const extra: Record<string, string> = { http_error: reason.slice(0, 64), refused_requests: String(count) };
  if (source === OTHER_SOURCES) extra.sources = 'other';
  try {
    state.audit.record({
      op: 'admin_http', transport: 'http', caller, claimed: { extra }, outcome: 'failure', errorCode: 'InvalidRequest', durationUs: 0,
    });
    state.audit.flush?.();
  } catch (err) {
    state.logger.error({ err: (err as Error).message }, 'audit write failed for a malformed admin HTTP request');
  }
}
