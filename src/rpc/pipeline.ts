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
   * Internal when they could not be written: the caller must withhold those answers.
   */
  flushAudit(): void {
    try {
      this.audit.flush?.();
    } catch (err) {
      this.logger?.error({ err: (err as Error).message }, 'audit write failed; answers withheld');
      throw new KmsError('Internal', 'the audit log could not be written');
    }
  }

  /** A request refused before it reached the op table (malformed envelope, repeated id): audited too. */
  auditRefusal(op: string, caller: Caller, transport: AuditEvent['transport'], errorCode: string): void {
    try {
      this.audit.record({ op, transport, caller, claimed: undefined, outcome: 'failure', errorCode, durationUs: 0 });
    } catch (err) {
      this.logger?.error({ err: (err as Error).message, op }, 'audit write failed');
    }
  }

  /** The policy's answer for an action that runs no operation (admin HTTP service routes). */
  decide(caller: Caller, action: string, keyIds: readonly string[]): Decision {
    return this.authorizer.decide(caller, action, keyIds);
  }

  /** The policy in force (the admin HTTP API describes it to madmin). */
  get currentAuthorizer(): Authorizer {
    return this.authorizer;
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
        this.logger?.error({ err: (err as Error).message, op: opName }, 'audit write failed');
        if (this.observer !== undefined) this.observe({ ...event, outcome: 'failure', errorCode: 'Internal' });
        reply(new KmsError('Internal', 'the audit log could not be written'));
        return;
      }
      if (this.observer !== undefined) this.observe(event);
      reply(error, result);
    };

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
