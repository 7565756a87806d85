// policy: ordered access rules; absent = the built-in policy (DESIGN §7).
import type { Static } from '@sinclair/typebox';
import { OPERATIONS, policyActionNames } from '../../access/actions.js';
import { quoteList } from '../errors.js';
import { camelKeys, defaultValue, int, list, oneOf, optional, section, str } from '../field.js';
import { ACCESS_KEY_PATTERN, ACCOUNT_NAME_PATTERN, KEY_GLOB_PATTERN, MAX_ID } from '../formats.js';
import { isYamlObject } from '../yaml.js';

/** Operation names a policy rule may allow (besides '*'): the protocol's operations. */
/** Names a policy rule may allow (besides '*'): operations, admin actions, RustFS kms:* aliases. */
export const POLICY_OPERATIONS: readonly string[] = policyActionNames(OPERATIONS);
const MATCH_KEYS = ['uid', 'user', 'gid', 'group', 'access_key'];
const ONE_MATCH = `exactly one of ${quoteList(MATCH_KEYS)}`;

const match = section(
  {
    uid: optional(int({ min: 0, max: MAX_ID, expected: 'a numeric uid', description: 'Numeric user id of the caller.' })),
    user: optional(str({ pattern: ACCOUNT_NAME_PATTERN, expected: 'a user name (use uid for a numeric id)', description: 'User name (not all digits).' })),
    gid: optional(int({ min: 0, max: MAX_ID, expected: 'a numeric gid', description: 'Numeric group id (primary or supplementary).' })),
    group: optional(str({ pattern: ACCOUNT_NAME_PATTERN, expected: 'a group name (use gid for a numeric id)', description: 'Group name (not all digits).' })),
    access_key: optional(str({ pattern: ACCESS_KEY_PATTERN, expected: 'an admin HTTP access key', description: 'Admin HTTP access key.' })),
  },
  {
    minProperties: 1,
    maxProperties: 1,
    description:
      'Exactly one of `uid` (int), `user` (name), `gid` (int), `group` (name) or `access_key` (admin HTTP access key). ' +
      'User and group names must not be all digits: write numeric ids as `uid`/`gid`.',
    detail: (v) => {
      if (v !== undefined && !isYamlObject(v)) return undefined;
      const given = v === undefined ? [] : Object.keys(v);
      return `expected ${ONE_MATCH}, got ${given.length === 0 ? 'none' : quoteList(given)}`;
    },
  },
);

const operation = oneOf([...policyActionNames(OPERATIONS), '*'], {
  description: 'An operation name, an admin action or a RustFS `kms:*` action, or `"*"` for all.',
  expected: `an operation name (${quoteList(POLICY_OPERATIONS)}) or "*"`,
});

const keyGlob = str({
  pattern: KEY_GLOB_PATTERN,
  expected: 'a key id glob of 1 to 128 characters [A-Za-z0-9._-*?]',
  description: 'Key id glob (`*` matches any run of characters, `?` matches one).',
});

const rule = section(
  {
    match,
    allow: list(operation, {
      minItems: 1,
      expected: 'a non-empty list of operation names or "*"',
      description: `Operation names: ${POLICY_OPERATIONS.map((o) => `\`${o}\``).join(', ')}; or \`"*"\` for all.`,
    }),
    keys: optional(list(keyGlob, {
      minItems: 1,
      default: ['*'],
      expected: 'a non-empty list of key id globs like "rustfs-*"',
      description: 'Key id globs (`*` matches any run of characters, `?` matches one). Each glob is 1–128 characters from `[A-Za-z0-9._-*?]`.',
    })),
  },
  { description: 'One access rule: who (`match`) may call which operations (`allow`) on which keys (`keys`).' },
);

export const PolicySection = list(rule, {
  minItems: 1,
  expected: 'a list of rules { match, allow, keys }',
  docDefault: 'unset (built-in policy)',
  description: 'Access rules, first match wins. If absent, the built-in policy applies. An empty list is an error.',
  detail: (v) =>
    Array.isArray(v) && v.length === 0
      ? 'expected at least one rule, got an empty list (omit policy to use the built-in default)'
      : undefined,
});

export interface PolicyRule {
  /** Exactly one field is set. */
  match: { uid?: number; user?: string; gid?: number; group?: string; accessKey?: string };
  /** Operation names (see POLICY_OPERATIONS) or '*'. */
  allow: string[];
  /** Key id globs ('*' and '?'); ['*'] when omitted in the file. */
  keys: string[];
}

export function readPolicy(rules: Static<typeof PolicySection>): PolicyRule[] {
  return rules.map((r) => ({ match: camelKeys(r.match), allow: [...r.allow], keys: r.keys ?? defaultValue(rule.properties.keys) }));
}
