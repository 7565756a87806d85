// RustFS's kms:* action names are aliases of the daemon's own in policy rules: one vocabulary for
// both, through the real Policy and the real config validation.
import { describe, expect, it } from 'vitest';
import { ACTION_ALIASES, expandActions } from '../../src/access/actions.js';
import { Policy } from '../../src/access/policy.js';
import { POLICY_OPERATIONS } from '../../src/config/sections/policy.js';
import { OPERATIONS } from '../../src/ops/protocol.js';

const caller = { kind: 'access-key' as const, accessKey: 'ops' };

describe('policy action aliases', () => {
  it('every alias grants only names the daemon knows', () => {
    for (const [alias, granted] of Object.entries(ACTION_ALIASES)) {
      expect(alias).toMatch(/^kms:[A-Z][A-Za-z]+$/);
      for (const g of granted) expect(POLICY_OPERATIONS, `${alias} → ${g}`).toContain(g);
    }
    for (const op of OPERATIONS) expect(POLICY_OPERATIONS).toContain(op);
  });

  it('a rule written in RustFS names decides like the same rule in the daemon\'s names', () => {
    const rustfs = new Policy([{ match: { accessKey: 'ops' }, allow: ['kms:DescribeKey', 'kms:RotateKey', 'kms:DeleteKey'], keys: ['app-*'] }]);
    const own = new Policy([{ match: { accessKey: 'ops' }, allow: ['describe_key', 'rotate_key', 'schedule_key_deletion', 'cancel_key_deletion'], keys: ['app-*'] }]);
    for (const op of [...OPERATIONS, 'configure', 'backup']) {
      for (const key of ['app-1', 'other']) {
        expect(rustfs.decide(caller, op, [key]).allowed, `${op} ${key}`).toBe(own.decide(caller, op, [key]).allowed);
      }
    }
    expect(rustfs.decide(caller, 'rotate_key', ['app-1']).allowed).toBe(true);
    expect(rustfs.decide(caller, 'create_key', ['app-1']).allowed).toBe(false);
  });

  it('kms:Configure grants key creation and configure; kms:ServiceControl grants status', () => {
    expect([...expandActions(['kms:Configure'])].sort()).toEqual(['configure', 'create_key']);
    expect([...expandActions(['kms:ServiceControl'])].sort()).toEqual(['health', 'service_control', 'status']);
    expect([...expandActions(['kms:TagResource', 'kms:UntagResource', 'kms:UpdateKeyDescription'])].sort()).toEqual(['tag_key', 'untag_key', 'update_key_description']);
    // A name that is no alias stays itself (config validation refuses unknown names).
    expect([...expandActions(['decrypt', 'constructor'])]).toEqual(['decrypt', 'constructor']);
  });
});
