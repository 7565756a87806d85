// RustFS's backup and restore routes (27–31) over this daemon's own backup: the wrapped key records
// of the file keystore (src/ops/backup.ts, as `rustfs-kms backup`), written to
// <state_dir>/backups. No separate backup KEK: the records stay wrapped by the root, which is never
// in a backup. A dry run is read-only; a real restore needs the daemon stopped (it holds the state
// directory), so the route says how to do it offline.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { KmsError } from '../errors.js';
import { BackupError, createBackup, parseBackup, planRestore, writeBackupFile, type KeyBackup } from '../ops/backup.js';
import { InvalidJsonError, NotImplementedError, type JsonErrorBody } from './errors.js';
import { bad, jsonObject, optString } from './params.js';
import type { DeploymentInfo } from './shapes.js';
import type { Route, RouteAnswer, RouteEnv } from './routes.js';

type RouteSpec = Omit<Route, 'prefix' | 'maxBodyBytes' | 'timeoutMs'>;

const BACKUP_ERROR: JsonErrorBody = (err) => ({ success: false, message: err.message });
const BACKUP_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const ok = (json: unknown): RouteAnswer => ({ status: 200, json });

/** A backup or restore that cannot run in this state: 409 (RustFS: "service Running or refused"). */
class ConflictError extends KmsError {
  constructor(message: string) {
    super('InvalidRequest', message);
  }
}

const backupStatus = (err: KmsError, fallback: number): number => (err instanceof ConflictError ? 409 : fallback);

function deployment(env: RouteEnv): DeploymentInfo {
  if (env.deployment === undefined) throw new KmsError('Internal', 'the deployment is not known to this server');
  return env.deployment;
}

/** This daemon's deployment: its host and state directory, hashed. */
function deploymentIdentity(d: DeploymentInfo): string {
  return createHash('sha256').update(`${hostname()}\0${d.stateDir}`).digest('hex').slice(0, 32);
}

const backupRoot = (d: DeploymentInfo): string => join(d.stateDir, 'backups');

function requireFileKeystore(d: DeploymentInfo): void {
  if (d.keystoreType !== 'file') {
    throw new NotImplementedError('backups over the admin API cover the file keystore; a vault-kv keystore is backed up with Vault (its KV v2 mount)');
  }
}

function bundleName(value: string | undefined, field: string): string {
  if (value === undefined || value === '') throw bad(`${field} is required`);
  if (!BACKUP_NAME.test(value)) throw bad(`${field} ${JSON.stringify(value.slice(0, 64))} must be 1–128 of A-Z a-z 0-9 . _ - without a leading dot`);
  return value;
}

function readBundle(d: DeploymentInfo, name: string): KeyBackup {
  const path = join(backupRoot(d), `${name}.json`);
  if (!existsSync(path)) throw bad(`no backup named ${name} in ${backupRoot(d)}`);
  return parseBackup(readFileSync(path, 'utf8'), path);
}

function restoreBody(body: Buffer, fields: readonly string[]): Record<string, unknown> {
  const b = jsonObject(body, fields);
  if (b === undefined) throw new InvalidJsonError('Request body is required');
  const g = b.observed_generation;
  if (g !== undefined && g !== null && (typeof g !== 'number' || !Number.isInteger(g) || g < 0)) {
    throw new InvalidJsonError('invalid JSON: observed_generation must be a non-negative integer');
  }
  return b;
}

export function backupRoutes(route: (r: RouteSpec & { maxBodyBytes?: number; timeoutMs?: number }) => Route): Route[] {
  return [
    route({
      methods: ['GET'], path: '/kms/backup', op: 'backup', params: [], errors: BACKUP_ERROR, status: backupStatus,
      args: () => ({}),
      respond: (_r, _req, _run, env) => {
        const d = deployment(env);
        const file = d.keystoreType === 'file';
        return ok({
          service_status: 'Running', backend: d.keystoreType === 'file' ? 'local' : 'vault-kv2',
          responsibility: file ? 'metadata-plus-external-root' : null, export_supported: file,
          deployment_identity: deploymentIdentity(d), backup_root: file ? backupRoot(d) : null,
          backup_kek_configured: false, backup_kek_id: null, backup_kek_version: null,
          target_key_dir: file ? join(d.stateDir, 'keys') : null,
          ...(file ? {} : { unavailable_reason: 'the vault-kv keystore is backed up with Vault itself' }),
        });
      },
    }),
    route({
      methods: ['POST'], path: '/kms/backup', op: 'backup', params: [], errors: BACKUP_ERROR, status: backupStatus, timeoutMs: 60_000,
      args: (req) => {
        const id = optString(jsonObject(req.body, ['backup_id']), 'backup_id');
        if (id !== undefined) bundleName(id, 'backup_id');
        return {};
      },
      respond: (_r, req, _run, env) => {
        const d = deployment(env);
        requireFileKeystore(d);
        const id = optString(jsonObject(req.body, ['backup_id']), 'backup_id') ?? `backup-${new Date().toISOString().replace(/[-:.]/g, '')}`;
        const backup = createBackup({ stateDir: d.stateDir, createdBy: `admin-http:${req.accessKey ?? ''}` });
        mkdirSync(backupRoot(d), { recursive: true, mode: 0o700 });
        try {
          writeBackupFile(join(backupRoot(d), `${id}.json`), backup, false);
        } catch (err) {
          if (err instanceof BackupError) throw new ConflictError(err.message);
          throw err;
        }
        return ok({
          backup_id: id, snapshot_generation: backup.created_at, deployment_identity: deploymentIdentity(d), artifact_count: backup.key_count,
          manifest_digest: backup.records_sha256, backup_kek_id: backup.root_ref ?? backup.root_refs.join(','), backup_kek_version: 1,
          sanitized_config_included: false,
        });
      },
    }),
    route({
      methods: ['POST'], path: '/kms/restore/dry-run', op: 'restore', params: [], errors: BACKUP_ERROR, status: backupStatus, timeoutMs: 60_000,
      args: (req) => {
        bundleName(optString(restoreBody(req.body, ['bundle', 'observed_generation']), 'bundle'), 'bundle');
        return {};
      },
      respond: (_r, req, _run, env) => {
        const d = deployment(env);
        requireFileKeystore(d);
        const name = optString(restoreBody(req.body, ['bundle', 'observed_generation']), 'bundle') as string;
        const report = { backup_id: name, target_deployment_identity: deploymentIdentity(d), blockers: [] as unknown[], conflicts: [] as unknown[], external_mismatches: [] };
        let backup: KeyBackup;
        try {
          backup = readBundle(d, name);
        } catch (err) {
          if (!(err instanceof BackupError)) throw err;
          report.blockers.push({ code: 'bundle-corrupted', detail: err.message });
          return ok({ report, config_comparison: null });
        }
        try {
          const plan = planRestore(backup, d.stateDir);
          for (const item of plan.items) {
            if (item.action !== 'kept') continue;
            const kind = item.disk !== undefined && item.disk.currentVersion > item.backup.currentVersion ? 'version-regression'
              : item.disk !== undefined && item.disk.revision > item.backup.revision ? 'generation-regression' : 'key-already-exists';
            report.conflicts.push({ key_id: item.keyId, kind, detail: item.reason });
          }
        } catch (err) {
          if (!(err instanceof BackupError)) throw err;
          report.blockers.push({ code: 'deployment-mismatch', detail: err.message });
        }
        return ok({ report, config_comparison: null });
      },
    }),
    route({
      methods: ['POST'], path: '/kms/restore', op: 'restore', params: [], errors: BACKUP_ERROR, status: backupStatus,
      args: (req) => {
        const b = restoreBody(req.body, ['bundle', 'observed_generation', 'confirm_backup_id', 'confirm_conflict_policy']);
        const name = bundleName(optString(b, 'bundle'), 'bundle');
        const confirm = optString(b, 'confirm_backup_id');
        if (confirm !== name) throw bad(`confirm_backup_id must repeat the bundle's backup id (${name})`);
        const policy = optString(b, 'confirm_conflict_policy');
        if (policy !== 'fail' && policy !== 'restore-into-empty-target') throw bad('confirm_conflict_policy must be "fail" or "restore-into-empty-target"');
        return {};
      },
      respond: (_r, req, _run, env) => {
        const d = deployment(env);
        requireFileKeystore(d);
        const name = optString(jsonObject(req.body, ['bundle', 'observed_generation', 'confirm_backup_id', 'confirm_conflict_policy']), 'bundle') as string;
        readBundle(d, name); // an unreadable bundle is reported before the refusal to restore
        throw new ConflictError(
          'the daemon is running and holds its state directory, so it cannot restore into it: stop it (systemctl stop ' +
          `rustfs-kms.service rustfs-kms.socket), then run \`rustfs-kms restore ${join(backupRoot(d), `${name}.json`)} --state-dir ${d.stateDir} --dry-run\` ` +
          'and the same without --dry-run, and start it again',
        );
      },
    }),
    route({
      methods: ['POST'], path: '/kms/restore/abort', op: 'restore', params: [], errors: BACKUP_ERROR, status: backupStatus,
      args: (req) => {
        const b = jsonObject(req.body, ['confirm_target_key_dir']);
        if (b === undefined) throw new InvalidJsonError('Request body is required');
        if (optString(b, 'confirm_target_key_dir') === undefined) throw bad('confirm_target_key_dir is required');
        return {};
      },
      respond: (_r, req, _run, env) => {
        const d = deployment(env);
        const target = join(d.stateDir, 'keys');
        if (optString(jsonObject(req.body, ['confirm_target_key_dir']), 'confirm_target_key_dir') !== target) {
          throw bad(`confirm_target_key_dir must be this daemon's key directory (${target})`);
        }
        throw new ConflictError('no restore is in progress: this daemon never restores while it runs (restores run offline with `rustfs-kms restore`)');
      },
    }),
  ];
}
