// Policy action names. A rule's `allow` names the daemon's operations (the op table's names), the
// admin actions below (admin HTTP routes that run no operation), or RustFS's `kms:*` actions, which
// are aliases: each grants the daemon actions its RustFS route runs. One vocabulary for both.

/** The operations of the op table (src/ops/operations.ts), in docs/protocol.md's order. */
export const OPERATIONS = [
  'health',
  'status',
  'create_key',
  'describe_key',
  'list_keys',
  'enable_key',
  'disable_key',
  'rotate_key',
  'schedule_key_deletion',
  'cancel_key_deletion',
  'update_key_description',
  'tag_key',
  'untag_key',
  'encrypt',
  'decrypt',
  'generate_data_key',
  'generate_data_key_batch',
  're_encrypt',
] as const;

export type OpName = (typeof OPERATIONS)[number];

const OP_SET: ReadonlySet<string> = new Set<string>(OPERATIONS);

export function isOpName(value: unknown): value is OpName {
  return typeof value === 'string' && OP_SET.has(value);
}

/** Admin HTTP routes that run no operation of the op table authorize one of these. */
export const ADMIN_ACTIONS = ['configure', 'service_control', 'clear_cache', 'backup', 'restore'] as const;
export type AdminAction = (typeof ADMIN_ACTIONS)[number];

/**
 * RustFS's action names (rustfs/rustfs@20d1266496ba admin route contract) and AWS KMS's data-plane
 * names → the daemon actions they grant. RustFS gates key creation on kms:Configure and KMS status
 * on kms:ServiceControl, so those grant create_key and health/status too.
 */
export const ACTION_ALIASES: Readonly<Record<string, readonly string[]>> = {
  'kms:CreateKey': ['create_key'],
  'kms:DescribeKey': ['describe_key'],
  'kms:ListKeys': ['list_keys'],
  'kms:EnableKey': ['enable_key'],
  'kms:DisableKey': ['disable_key'],
  'kms:RotateKey': ['rotate_key'],
  'kms:DeleteKey': ['schedule_key_deletion', 'cancel_key_deletion'],
  'kms:ScheduleKeyDeletion': ['schedule_key_deletion'],
  'kms:CancelKeyDeletion': ['cancel_key_deletion'],
  'kms:UpdateKeyDescription': ['update_key_description'],
  'kms:TagResource': ['tag_key'],
  'kms:UntagResource': ['untag_key'],
  'kms:GenerateDataKey': ['generate_data_key', 'generate_data_key_batch'],
  'kms:Encrypt': ['encrypt'],
  'kms:Decrypt': ['decrypt'],
  'kms:ReEncrypt': ['re_encrypt'],
  'kms:Configure': ['configure', 'create_key'],
  'kms:ServiceControl': ['service_control', 'health', 'status'],
  'kms:ClearCache': ['clear_cache'],
  'kms:Backup': ['backup'],
  'kms:Restore': ['restore'],
};

export function isAdminAction(value: unknown): value is AdminAction {
  return typeof value === 'string' && (ADMIN_ACTIONS as readonly string[]).includes(value);
}

/** A rule's `allow` list with every alias replaced by the daemon actions it grants. */
export function expandActions(allow: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const name of allow) {
    const granted = Object.hasOwn(ACTION_ALIASES, name) ? ACTION_ALIASES[name] : undefined;
    if (granted === undefined) out.add(name);
    else for (const g of granted) out.add(g);
  }
  return out;
}

/** Names a policy rule's `allow` may use besides '*': the given operations, admin actions, aliases. */
export function policyActionNames(operations: readonly string[]): readonly string[] {
  return [...operations, ...ADMIN_ACTIONS, ...Object.keys(ACTION_ALIASES)];
}
