// Layer: everything a source may set, before defaults. The file, the environment and the command line
// are applied in that order onto one Layer; finalize.ts then adds defaults and the cross-checks.
import type { FieldErrors } from './errors.js';
import { camelKeys } from './field.js';
import type { ConfigFile } from './schema.js';
import { readAdminHttp, type AdminHttpConfig } from './sections/admin-http.js';
import type { AuditConfig } from './sections/audit.js';
import type { CacheConfig } from './sections/cache.js';
import type { KeystoreConfig } from './sections/keystore.js';
import type { LimitsConfig } from './sections/limits.js';
import { readPolicy, type PolicyRule } from './sections/policy.js';
import { readRoot, type RootLayer } from './sections/root.js';
import { readSocket, type SocketLayer } from './sections/socket.js';
import type { TopLevelLayer } from './sections/top-level.js';

export interface Layer extends TopLevelLayer {
  socket: SocketLayer;
  root: RootLayer;
  keystore: Partial<KeystoreConfig>;
  cache: Partial<CacheConfig>;
  limits: Partial<LimitsConfig>;
  audit: Partial<AuditConfig>;
  adminHttp?: AdminHttpConfig;
  policy?: PolicyRule[];
  /** YAML path → the name to use in error messages (the YAML path itself, an env var or a flag). */
  origins: Map<string, string>;
}

export function emptyLayer(): Layer {
  return { socket: {}, root: { local: {} }, keystore: {}, cache: {}, limits: {}, audit: {}, origins: new Map() };
}

/** The validated file → a Layer. Sections of plain values map by name; the others have a reader. */
export function layerFromFile(file: ConfigFile, r: FieldErrors): Layer {
  const { socket, root, keystore, cache, limits, audit, admin_http, policy, hardening: _onlyMlockallFalse, ...top } = file;
  const layer: Layer = { ...emptyLayer(), ...camelKeys(top) };
  if (socket !== undefined) layer.socket = readSocket(socket);
  if (root !== undefined) layer.root = readRoot(root, r);
  if (keystore !== undefined) layer.keystore = camelKeys(keystore);
  if (cache !== undefined) layer.cache = camelKeys(cache);
  if (limits !== undefined) layer.limits = camelKeys(limits);
  if (audit !== undefined) layer.audit = camelKeys(audit);
  if (admin_http !== undefined) layer.adminHttp = readAdminHttp(admin_http);
  if (policy !== undefined) layer.policy = readPolicy(policy);
  return layer;
}
