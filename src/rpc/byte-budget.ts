// One memory budget shared by every connection: bytes of partial frames held while they arrive.
// A single connection's limit (max_frame_bytes) does not bound a thousand connections; this does.
import { KmsError } from '../errors.js';

/** Reserving past the budget fails; the caller sheds the connection that asked. */
export class ByteBudget {
  private used = 0;

  constructor(
    readonly limit: number,
    /** The config field that sets the limit, for messages. */
    private readonly field = 'limits.max_buffered_bytes',
  ) {
    if (!Number.isSafeInteger(limit) || limit < 0) throw new RangeError(`${field} must be a non-negative integer, not ${limit}`);
  }

  get usedBytes(): number {
    return this.used;
  }

  /** Takes n bytes or throws BufferBudgetError without taking any. */
  reserve(n: number): void {
    if (this.used + n > this.limit) throw new BufferBudgetError(this.used, n, this.limit, this.field);
    this.used += n;
  }

  release(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/** Partial frames across all connections would exceed the budget: answered Busy, connection closed. */
export class BufferBudgetError extends KmsError {
  constructor(used: number, wanted: number, limit: number, field: string) {
    super('Busy', `partial frames of all connections hold ${used} bytes and this one needs ${wanted} more; the limit is ${limit} (${field})`);
    this.name = 'BufferBudgetError';
  }
}
