// What one finished request leaves for the audit log (and the metrics): the audit layer owns the
// type, so it depends on no transport and no operation table; the pipeline fills it in.
import type { Caller } from '../access/identity.js';

/** The caller's claimed operation context (`ctx` of docs/protocol.md §4): recorded, never trusted. */
export interface ClaimedContext {
  principal?: string;
  request_id?: string;
  user_agent?: string;
  source_ip?: string;
  extra?: Record<string, string>;
}

export type Outcome = 'success' | 'denied' | 'failure';

export interface AuditEvent {
  op: string;
  transport: 'socket' | 'http' | 'library';
  caller: Caller;
  /** The caller's own claims (ctx): recorded, never trusted. */
  claimed: ClaimedContext | undefined;
  outcome: Outcome;
  errorCode?: string;
  keyId?: string;
  keyVersion?: number;
  durationUs: number;
}

export interface AuditSink {
  record(event: AuditEvent): void;
  /** Writes what record() buffered; the socket server calls it before its answers leave. Throws when it cannot. */
  flush?(): void;
  /** Before new work: throws while the log cannot be written (a full disk), after retrying. */
  ensureWritable?(): void;
  /** A refusal of a caller nobody identified: written once per key and interval, the rest counted. */
  recordRefusal?(key: string, event: AuditEvent): void;
}

