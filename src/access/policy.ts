// Ordered access rules: the first rule whose `match` fits the caller decides. It allows when the
// operation is in `allow` (or `*`) and every key involved matches one of `keys`; otherwise, and
// when no rule matches at all, the answer is no.

import { compileGlob, type Glob } from './glob.js';
import type { Caller } from './identity.js';
import { expandActions } from './actions.js';

export interface PolicyMatch {
  uid?: number;
  user?: string;
  gid?: number;
  group?: string;
  accessKey?: string;
}

export interface PolicyRule {
  match: PolicyMatch;
  allow: string[];
  keys: string[];
}

export const DATA_OPERATIONS = [
  'generate_data_key', 'generate_data_key_batch', 'decrypt', 'encrypt', 're_encrypt', 'describe_key', 'health', 'status',
] as const;

export interface Decision {
  allowed: boolean;
  /** Which rule decided (index in the policy), or -1 when none matched. */
  rule: number;
  reason: string;
  /**
   * The deciding rule's key globs as a predicate, when they are narrower than '*': operations that
   * name no key up front (list_keys) show only the keys it covers.
   */
  visible?: (keyId: string) => boolean;
}

interface CompiledRule {
  rule: PolicyRule;
  ops: Set<string> | null; // null = '*'
  keys: Glob[];
}

export class Policy {
  private readonly compiled: CompiledRule[];

  constructor(readonly rules: readonly PolicyRule[]) {
    this.compiled = rules.map((rule) => ({
      rule,
      ops: rule.allow.includes('*') ? null : expandActions(rule.allow), // RustFS kms:* names are aliases
      keys: (rule.keys.length === 0 ? ['*'] : rule.keys).map(compileGlob),
    }));
  }

  /**
   * The built-in policy: the daemon's own user and root may do everything; members of the socket's
   * group may use the data operations on any key; anyone else is denied.
   */
  static defaults(daemonUid: number, socketGid: number | undefined): Policy {
    const rules: PolicyRule[] = [
      { match: { uid: daemonUid }, allow: ['*'], keys: ['*'] },
      { match: { uid: 0 }, allow: ['*'], keys: ['*'] },
    ];
    if (socketGid !== undefined) rules.push({ match: { gid: socketGid }, allow: [...DATA_OPERATIONS], keys: ['*'] });
    return new Policy(rules);
  }

  decide(caller: Caller, op: string, keyIds: readonly string[]): Decision {
    for (let i = 0; i < this.compiled.length; i++) {
      const c = this.compiled[i] as CompiledRule;
      if (!matches(c.rule.match, caller)) continue;
      if (c.ops !== null && !c.ops.has(op)) return { allowed: false, rule: i, reason: `rule ${i} does not allow ${op}` };
      for (const keyId of keyIds) {
        if (!c.keys.some((g) => g.test(keyId))) {
          return { allowed: false, rule: i, reason: `rule ${i} does not cover key ${keyId}` };
        }
      }
      const everything = c.rule.keys.length === 0 || c.rule.keys.includes('*');
      return everything
        ? { allowed: true, rule: i, reason: `allowed by rule ${i}` }
        : { allowed: true, rule: i, reason: `allowed by rule ${i}`, visible: (id) => c.keys.some((g) => g.test(id)) };
    }
    return { allowed: false, rule: -1, reason: 'no policy rule matches the caller' };
  }
}

/**
 * The built-in policy plus "the configured admin access key may do everything": what the daemon
 * uses when the config has no `policy` (an explicit policy names the access key itself).
 */
export function withAdminAccessKey(policy: Policy, accessKey: string | undefined): Policy {
  if (accessKey === undefined) return policy;
  return new Policy([...policy.rules, { match: { accessKey }, allow: ['*'], keys: ['*'] }]);
}

function matches(match: PolicyMatch, caller: Caller): boolean {
  if (match.uid !== undefined) return caller.uid === match.uid;
  if (match.user !== undefined) return caller.user === match.user;
  if (match.gid !== undefined) return caller.groups?.includes(match.gid) ?? caller.gid === match.gid;
  if (match.group !== undefined) return caller.groupNames?.includes(match.group) ?? false;
  if (match.accessKey !== undefined) return caller.accessKey === match.accessKey;
  return false;
}
