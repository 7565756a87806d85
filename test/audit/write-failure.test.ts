// An audit line that cannot be written must hold back the answer it describes, and new work is
// refused with BackendUnavailable until the log can be written again. /dev/full fails every write
// with ENOSPC, like a full log disk that never empties (recovery: test/hostile/audit-disk-full.test.ts).
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { AuditUnavailableError } from '../../src/audit/unavailable.js';
import { Pipeline, type AuditEvent } from '../../src/ops/pipeline.js';
import { KmsError } from '../../src/errors.js';
import type { OperationEnv } from '../../src/ops/operations.js';

const event: AuditEvent = {
  op: 'health', transport: 'socket', caller: { kind: 'peer', uid: 1, gid: 1, pid: 1, groups: [1] },
  claimed: undefined, outcome: 'success', durationUs: 1,
};

describe('audit write failures fail closed', () => {
  it('flush() throws when the batch cannot be written; new work is refused until it can; the failure is reported once', () => {
    const errors: string[] = [];
    const log = AuditLog.open({ path: '/dev/full', fsync: 'never', fsyncIntervalMs: 1000, maxBytes: 0, onError: (e) => errors.push(e.message) });
    log.record(event); // queued for this tick: nothing written yet
    expect(() => log.flush()).toThrow(/audit log cannot be written: disk full \(ENOSPC\)/);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('/dev/full');
    expect(log.health).toEqual({ writable: false, writeFailures: 1 });
    expect(() => log.ensureWritable()).toThrow(AuditUnavailableError); // retried, still full
    expect(log.health.writeFailures).toBe(2);
    expect(errors).toHaveLength(1);
    expect(() => log.flush()).not.toThrow(); // nothing of its own pending: refusals themselves can still be answered
  });

  it('Pipeline.flushAudit turns the failure into KmsError BackendUnavailable naming the cause, and run() refuses new work the same way', () => {
    const log = AuditLog.open({ path: '/dev/full', fsync: 'never', fsyncIntervalMs: 1000, maxBytes: 0 });
    const pipeline = new Pipeline({} as OperationEnv, { decide: () => ({ allowed: true, rule: 0, reason: 'test' }) }, log);
    log.record(event);
    let caught: unknown;
    try {
      pipeline.flushAudit();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(KmsError);
    expect((caught as KmsError).code).toBe('BackendUnavailable');
    expect((caught as KmsError).message).toMatch(/disk full \(ENOSPC\)/);
    let answer: KmsError | null = null;
    pipeline.run('health', {}, event.caller, undefined, 'socket', (e) => {
      answer = e;
    });
    expect(answer).toBeInstanceOf(KmsError);
    expect((answer as unknown as KmsError).code).toBe('BackendUnavailable');
  });
});
