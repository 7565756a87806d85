// One pipeline for every request, whatever the transport: look up the operation, check its
// arguments, ask the policy, run the handler, write the audit record, answer. Refusals and
// failures are audited exactly like successes.
import { performance } from 'node:perf_hooks';
import { KmsError } from '../errors.js';
import type { Caller } from '../access/identity.js';
import type { Decision } from '../access/policy.js';
import { OPERATION_TABLE, type Operation, type OperationEnv } from './operations.js';
import type { WireContext } from './protocol.js';
import type { AuditEvent, AuditSink } from '../audit/event.js';
import type { Logger } from '../logging.js';
import { AuditUnavailableError } from '../audit/unavailable.js';

export type { AuditEvent, AuditSink, Outcome } from '../audit/event.js';

/** The answer for work the audit log cannot record: BackendUnavailable, saying why. */
function auditUnavailable(err: unknown): KmsError {
  if (err instanceof AuditUnavailableError) return new KmsError('BackendUnavailable', err.message);
  return new KmsError('BackendUnavailable', 'audit log cannot be written; see the daemon log');
}

export interface Authorizer {
  decide(caller: Caller, op: string, keyIds: readonly string[]): Decision;
}

export type { Logger } from '../logging.js';

/**
 * Gives the answer. `secret` says the result holds plaintexts (data keys, decrypted data). It may
 * throw (an answer that cannot be encoded): the pipeline then logs, audits and calls it once more
 * with Internal.
 */
export type Reply = (error: KmsError | null, result?: unknown, secret?: boolean) => void;

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

  /**
   * Runs one request; `reply` is called once, synchronously when the handler was (twice only when the
   * first call threw: the second carries Internal). Nothing the operation or `reply` throws escapes.
   * `copiesResult`: the transport copies the result out inside `reply` (the socket encodes it), so
   * the plaintexts in the arguments and the result are zeroed as soon as `reply` returns.
   */
  run(
    opName: string, args: Record<string, unknown>, caller: Caller, claimed: WireContext | undefined,
    transport: AuditEvent['transport'], reply: Reply, copiesResult = false,
  ): void {
    const started = performance.now();
    const event: AuditEvent = { op: opName, transport, caller, claimed, outcome: 'failure', durationUs: 0 };
    const operation = OPERATION_TABLE.get(opName);
    let parsed: unknown;
    let parsedOk = false;
    let finished = false;
    const finish = (error: KmsError | null, result?: unknown) => {
      if (finished) {
        this.logger?.error({ op: opName }, 'an operation finished twice; the second outcome is dropped');
        return;
      }
      finished = true;
      if (parsedOk && operation !== undefined) this.addKeyFields(event, operation, parsed, error === null ? result : undefined);
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
        this.deliver(reply, event, auditUnavailable(err), undefined, false);
        this.wipe(copiesResult, operation, parsedOk, parsed, result);
        return;
      }
      if (this.observer !== undefined) this.observe(event);
      this.deliver(reply, event, error, result, error === null && operation?.secretAnswer === true);
      this.wipe(copiesResult, operation, parsedOk, parsed, result);
    };

    try {
      this.audit.ensureWritable?.(); // new work only while its line can be written (a full disk refuses it)
    } catch (err) {
      event.errorCode = 'BackendUnavailable';
      if (this.observer !== undefined) this.observe(event);
      this.deliver(reply, event, auditUnavailable(err), undefined, false);
      return;
    }
    try {
      if (operation === undefined) {
        finish(new KmsError('UnknownOperation', `unknown operation "${opName.slice(0, 64)}"`));
        return;
      }
      try {
        parsed = operation.parse(args);
      } catch (err) {
        finish(this.toKmsError(err, opName));
        return;
      }
      parsedOk = true;
      const keys = operation.keys(parsed);
      const decision = this.authorizer.decide(caller, operation.action, keys);
      if (!decision.allowed) {
        finish(new KmsError('AccessDenied', `${opName} denied: ${decision.reason}`));
        return;
      }
      const outcome: unknown = operation.handle(this.env, parsed, decision);
      if (outcome instanceof Promise) {
        outcome.then(
          (result: unknown) => finish(null, result),
          (err: unknown) => finish(this.toKmsError(err, opName)),
        );
      } else {
        finish(null, outcome);
      }
    } catch (err) {
      // A handler (or a policy, or an argument reader) that throws where it should not: Internal.
      if (!finished) finish(this.toKmsError(err, opName));
      else this.logger?.error({ err: err instanceof Error ? err.message : String(err), op: opName }, 'an operation failed after it was answered');
    }
  }

  /** Calls reply; if it throws, logs it, audits an Internal line and answers Internal instead. */
  private deliver(reply: Reply, event: AuditEvent, error: KmsError | null, result: unknown, secret: boolean): void {
    try {
      reply(error, result, secret);
      return;
    } catch (err) {
      this.logger?.error({ err: err instanceof Error ? err.message : String(err), op: event.op }, 'the answer could not be given; answering Internal');
    }
    try {
      this.audit.record({ ...event, outcome: 'failure', errorCode: 'Internal' });
    } catch (err) {
      this.logger?.error({ err: (err as Error).message, op: event.op }, 'audit write failed');
    }
    try {
      reply(new KmsError('Internal', `${event.op.slice(0, 64)} could not be answered; see the daemon's log`));
    } catch (err) {
      this.logger?.error({ err: err instanceof Error ? err.message : String(err), op: event.op }, 'the Internal answer could not be given either');
    }
  }

  private addKeyFields(event: AuditEvent, operation: Operation<unknown>, parsed: unknown, result: unknown): void {
    try {
      const fields = operation.audit(parsed, result);
      if (fields.key_id !== undefined) event.keyId = fields.key_id;
      if (fields.key_version !== undefined) event.keyVersion = fields.key_version;
    } catch (err) {
      this.logger?.error({ err: err instanceof Error ? err.message : String(err), op: event.op }, 'audit fields could not be read');
    }
  }

  /** Zeroes the plaintexts of a request whose answer the transport has copied out. */
  private wipe(copiesResult: boolean, operation: Operation<unknown> | undefined, parsedOk: boolean, parsed: unknown, result: unknown): void {
    if (!copiesResult || !parsedOk || operation?.wipe === undefined) return;
    try {
      operation.wipe(parsed, result);
    } catch (err) {
      this.logger?.error({ err: err instanceof Error ? err.message : String(err), op: operation.op }, 'plaintexts could not be zeroed');
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
