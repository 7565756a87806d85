// OperationContext: who a call is made for and where it came from, after the RustFS KMS crate's
// type of the same name. It travels as the protocol's `ctx` (docs/protocol.md §4) and lands in the
// audit log as *claimed* by the caller: recorded, never used for authorization.
//
// It is structurally a `CallOptions` (it has a `ctx` property), so every KmsClient method that takes
// call options takes an OperationContext too, unchanged; KmsManager accepts it the same way.
import { randomUUID } from 'node:crypto';
import type { WireContext } from '../ops/protocol.js';

interface ContextFields {
  principal?: string;
  requestId?: string;
  sourceIp?: string;
  userAgent?: string;
  extra: Readonly<Record<string, string>>;
}

/**
 * An immutable builder: every `with…` returns a new context, so a base context can be shared and
 * specialised per request without one request's fields leaking into another's.
 *
 * ```ts
 * const ctx = OperationContext.new('backup-service').withSourceIp('10.0.0.7').withContext('bucket', 'photos');
 * await kms.generateDataKey(new GenerateKeyRequest('rustfs-objects'), ctx);
 * ```
 */
export class OperationContext {
  private readonly fields: ContextFields;

  /** `principal`: the end user or service the call is made for. A fresh request id is generated. */
  constructor(principal?: string) {
    this.fields = { requestId: randomUUID(), extra: {} };
    if (principal !== undefined) this.fields.principal = principal;
  }

  /** Same as the constructor; reads like the Rust crate's `OperationContext::new(principal)`. */
  static new(principal?: string): OperationContext {
    return new OperationContext(principal);
  }

  private with(change: Partial<ContextFields>): OperationContext {
    const next = Object.create(OperationContext.prototype) as OperationContext;
    (next as unknown as { fields: ContextFields }).fields = { ...this.fields, ...change };
    return next;
  }

  withPrincipal(principal: string): OperationContext {
    return this.with({ principal });
  }

  /** The caller's correlation id (default: a random UUID made by the constructor). */
  withRequestId(requestId: string): OperationContext {
    return this.with({ requestId });
  }

  /** Where the end request came from (e.g. the S3 client's address). */
  withSourceIp(sourceIp: string): OperationContext {
    return this.with({ sourceIp });
  }

  /** The calling program and version. */
  withUserAgent(userAgent: string): OperationContext {
    return this.with({ userAgent });
  }

  /** A free-form pair (the protocol's `ctx.extra`, at most 32 pairs of at most 1024 bytes each). */
  withContext(key: string, value: string): OperationContext {
    return this.with({ extra: { ...this.fields.extra, [key]: value } });
  }

  get principal(): string | undefined {
    return this.fields.principal;
  }

  get requestId(): string | undefined {
    return this.fields.requestId;
  }

  get sourceIp(): string | undefined {
    return this.fields.sourceIp;
  }

  get userAgent(): string | undefined {
    return this.fields.userAgent;
  }

  get extra(): Readonly<Record<string, string>> {
    return this.fields.extra;
  }

  /** The wire form (`ctx`); a fresh object each time. This getter is what makes it a CallOptions. */
  get ctx(): WireContext {
    const f = this.fields;
    const wire: WireContext = {};
    if (f.principal !== undefined) wire.principal = f.principal;
    if (f.requestId !== undefined) wire.request_id = f.requestId;
    if (f.userAgent !== undefined) wire.user_agent = f.userAgent;
    if (f.sourceIp !== undefined) wire.source_ip = f.sourceIp;
    const keys = Object.keys(f.extra);
    if (keys.length > 0) wire.extra = { ...f.extra };
    return wire;
  }

  toWire(): WireContext {
    return this.ctx;
  }
}

export function isOperationContext(value: unknown): value is OperationContext {
  return value instanceof OperationContext;
}
