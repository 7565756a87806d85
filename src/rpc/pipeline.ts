// One pipeline for every request, whatever the transport: look up the operation, check its
// arguments, ask the policy, run the handler, write the audit record, answer. Refusals and
// failures are audited exactly like successes.
import { performance } from 'node:perf_hooks';
import { KmsError } from '../errors.js';
import type { Caller } from '../access/identity.js';
import type { Decision } from '../access/policy.js';
import { OPERATION_TABLE, type OperationEnv } from './operations.js';
import type { WireContext } from './protocol.js';
import type { Logger } from '../logging.js';
import { AuditUnavailableError } from '../audit/unavailable.js';

export type Outcome = 'success' | 'denied' | 'failure';

export interface AuditEvent {
  op: string;
  transport: 'socket' | 'http' | 'library';
  caller: Caller;
  /** The caller's own claims (ctx): recorded, never trusted. */
  claimed: WireContext | undefined;
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

/** The answer for work the audit log cannot record: BackendUnavailable, saying why. */
function auditUnavailable(err: unknown): KmsError {
  if (err instanceof AuditUnavailableError) return new KmsError('BackendUnavailable', err.message);
  return new KmsError('BackendUnavailable', 'audit log cannot be written; see the daemon log');
}

export interface Authorizer {
  decide(caller: Caller, op: string, keyIds: readonly string[]): Decision;
}

export type { Logger } from '../logging.js';

export type Reply = (error: KmsError | null, result?: unknown) => void;

/** Sees every finished request (after its audit record), e.g. for metrics; must not throw or block. */
export type PipelineObserver = (event: Readonly<AuditEvent>) => void;

export class Pipeline {
  constructor(
    readonly env: OperationEnv,
    private authorizer: Authorizer,
    private readonly audit: AuditSink,
    private readonly logger?: Logger,
  ) {}

  private observer: PipelineObserver | undefined;

  /** Installs (or, with undefined, removes) the one observer of finished requests. */
  setObserver(observer: PipelineObserver | undefined): void {
    this.observer = observer;
  }

  /**
   * Audit lines of this tick go to the file before the answers they describe. Throws KmsError
   * BackendUnavailable when they could not be written: the caller must withhold those answers.
   */
  flushAudit(): void {
    try {
      this.audit.flush?.();
    } catch (err) {
      // The log said once that it cannot be written (AuditLog onError); anything else is news.
      if (!(err instanceof AuditUnavailableError)) this.logger?.error({ err: (err as Error).message }, 'audit write failed; answers withheld');
      throw auditUnavailable(err);
    }
  }

  /** A request refused before it reached the op table (malformed envelope, repeated id): audited too. */
  auditRefusal(op: string, caller: Caller, transport: AuditEvent['transport'], errorCode: string): void {
    try {
      this.audit.ensureWritable?.(); // while the disk is full a refusal goes unrecorded rather than cutting the connection
      this.audit.record({ op, transport, caller, claimed: undefined, outcome: 'failure', errorCode, durationUs: 0 });
    } catch (err) {
      if (!(err instanceof AuditUnavailableError)) this.logger?.error({ err: (err as Error).message, op }, 'audit write failed');
    }
  }

  /**
   * A refusal of a caller nobody identified (no kernel identity, no verified signature): one line
   * per `key` (e.g. source and error code) and interval, with the rest counted, so a flood of
   * them cannot fill the audit disk. Sinks without aggregation record every one.
   */
  auditRefusalAggregated(key: string, event: AuditEvent): void {
    try {
      if (this.audit.recordRefusal !== undefined) this.audit.recordRefusal(key, event);
      else this.audit.record(event);
    } catch (err) {
      if (!(err instanceof AuditUnavailableError)) this.logger?.error({ err: (err as Error).message, op: event.op }, 'audit write failed');
    }
  }

  /** Swaps the policy (SIGHUP) without touching connections or requests in flight. */
  setAuthorizer(authorizer: Authorizer): void {
    this.authorizer = authorizer;
  }

  /** Runs one request; `reply` is called exactly once, synchronously when the handler was. */
  run(
    opName: string, args: Record<string, unknown>, caller: Caller, claimed: WireContext | undefined,
    transport: AuditEvent['transport'], reply: Reply,
  ): void {
    const started = performance.now();
    const event: AuditEvent = { op: opName, transport, caller, claimed, outcome: 'failure', durationUs: 0 };
    const finish = (error: KmsError | null, result?: unknown, fields?: { key_id?: string; key_version?: number }) => {
      if (fields?.key_id !== undefined) event.keyId = fields.key_id;
      if (fields?.key_version !== undefined) event.keyVersion = fields.key_version;
      if (error !== null) {
        event.errorCode = error.code;
        if (error.code === 'AccessDenied') event.outcome = 'denied';
      } else {
        event.outcome = 'success';
      }
      event.durationUs = Math.round((performance.now() - started) * 1000);
      try {
        this.audit.record(event);
      } catch (err) {
        // An audit record that cannot be written means the operation must not be answered as done.
        if (!(err instanceof AuditUnavailableError)) this.logger?.error({ err: (err as Error).message, op: opName }, 'audit write failed');
        if (this.observer !== undefined) this.observe({ ...event, outcome: 'failure', errorCode: 'BackendUnavailable' });
        reply(auditUnavailable(err));
        return;
      }
      if (this.observer !== undefined) this.observe(event);
      reply(error, result);
    };

    try {
      this.audit.ensureWritable?.(); // new work only while its line can be written (a full disk refuses it)
    } catch (err) {
      event.errorCode = 'BackendUnavailable';
      if (this.observer !== undefined) this.observe(event);
      reply(auditUnavailable(err));
      return;
    }
    const operation = OPERATION_TABLE.get(opName);
    if (operation === undefined) {
      finish(new KmsError('UnknownOperation', `unknown operation "${opName.slice(0, 64)}"`));
      return;
    }
    let parsed: unknown;
    try {
      parsed = operation.parse(args);
    } catch (err) {
      finish(this.toKmsError(err, opName));
      return;
    }
    const keys = operation.keys(parsed);
    const decision = this.authorizer.decide(caller, operation.action, keys);
    if (!decision.allowed) {
      finish(new KmsError('AccessDenied', `${opName} denied: ${decision.reason}`), undefined, operation.audit(parsed, undefined));
      return;
    }
    let outcome: unknown;
    try {
      outcome = operation.handle(this.env, parsed, decision);
    } catch (err) {
      finish(this.toKmsError(err, opName), undefined, operation.audit(parsed, undefined));
      return;
    }
    if (outcome instanceof Promise) {
      outcome.then(
        (result: unknown) => finish(null, result, operation.audit(parsed, result)),
        (err: unknown) => finish(this.toKmsError(err, opName), undefined, operation.audit(parsed, undefined)),
      );
    } else {
      finish(null, outcome, operation.audit(parsed, outcome));
    }
  }

  private observe(event: AuditEvent): void {
    try {
      (this.observer as PipelineObserver)(event);
    } catch (err) {
      this.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'pipeline observer failed');
    }
  }

  /** Anything that is not a KmsError is a bug or an I/O fault: log it, answer Internal. */
  private toKmsError(err: unknown, op: string): KmsError {
    if (err instanceof KmsError) return err;
    this.logger?.error({ err: err instanceof Error ? err.message : String(err), op }, 'operation failed unexpectedly');
    return new KmsError('Internal', `${op} failed inside the daemon; see its log`);
  }
}

/** Audit sink for configurations without an audit log. */
export const NO_AUDIT: AuditSink = { record: () => undefined };
