// An audit line that cannot be written must hold back the answer it describes. /dev/full fails
// every write with ENOSPC, like a full log disk.
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { Pipeline, type AuditEvent } from '../../src/ops/pipeline.js';
import { KmsError } from '../../src/errors.js';
import type { OperationEnv } from '../../src/ops/operations.js';

const event: AuditEvent = {
  op: 'health', transport: 'socket', caller: { kind: 'peer', uid: 1, gid: 1, pid: 1, groups: [1] },
  claimed: undefined, outcome: 'success', durationUs: 1,
};

describe('audit write failures fail closed', () => {
  it('flush() throws when the batch cannot be written, and later records are refused', () => {
    const errors: string[] = [];
    const log = AuditLog.open({ path: '/dev/full', fsync: 'never', fsyncIntervalMs: 1000, maxBytes: 0, onError: (e) => errors.push(e.message) });
    log.record(event); // queued for this tick: nothing written yet
    expect(() => log.flush()).toThrow(/audit log \/dev\/full cannot be written/);
    expect(errors).toHaveLength(1);
    expect(() => log.record(event)).toThrow(/cannot be written/);
    expect(() => log.flush()).not.toThrow(); // nothing pending: refusals themselves can still be answered
  });

  it('Pipeline.flushAudit turns the failure into KmsError Internal for the transports to withhold answers', () => {
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
    expect((caught as KmsError).code).toBe('Internal');
  });
});
