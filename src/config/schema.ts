// The whole config file: the sections composed in the order the docs and error messages list them.
import type { Static } from '@sinclair/typebox';
import { optional, section } from './field.js';
import { AdminHttpSection } from './sections/admin-http.js';
import { AuditSection } from './sections/audit.js';
import { CacheSection } from './sections/cache.js';
import { HardeningSection } from './sections/hardening.js';
import { KeystoreSection } from './sections/keystore.js';
import { LimitsSection } from './sections/limits.js';
import { PolicySection } from './sections/policy.js';
import { RootSection } from './sections/root.js';
import { SocketSection } from './sections/socket.js';
import { topLevelFields } from './sections/top-level.js';

export const ConfigFileSchema = section(
  {
    state_dir: topLevelFields.state_dir,
    socket: optional(SocketSection),
    root: optional(RootSection),
    keystore: optional(KeystoreSection),
    cache: optional(CacheSection),
    limits: optional(LimitsSection),
    audit: optional(AuditSection),
    admin_http: optional(AdminHttpSection),
    policy: optional(PolicySection),
    default_key_id: topLevelFields.default_key_id,
    timeout_secs: topLevelFields.timeout_secs,
    retry_attempts: topLevelFields.retry_attempts,
    log_level: topLevelFields.log_level,
    allow_unlocked_memory: topLevelFields.allow_unlocked_memory,
    hardening: optional(HardeningSection),
  },
  { description: 'rustfs-kmsd configuration file (/etc/rustfs-kms/config.yaml).' },
);

/** The YAML file as written (snake_case), after validation. */
export type ConfigFile = Static<typeof ConfigFileSchema>;
