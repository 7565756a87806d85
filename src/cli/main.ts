#!/usr/bin/env node
// rustfs-kms: the operator's tool. Talks to rustfs-kmsd over its socket (found from --socket, then
// $RUSTFS_KMS_SOCKET, then the default path); `init` works on the state directory directly.
import { parseArgs } from 'node:util';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KmsClient, type KeyInfo } from '../rpc/client.js';
import { KmsError } from '../errors.js';
import { PACKAGE_ROOT, VERSION } from '../package-info.js';
import { block, table, time, toJson } from './format.js';
import { LocalRoot, createKeyFile } from '../roots/local.js';
import { initPkcs11Root } from '../roots/pkcs11.js';
import { loadConfig } from '../config/index.js';
import { verifyAuditFiles } from '../audit/verify.js';
import { BackupError, createBackup, parseBackup, restoreBackup, serializeBackup, writeBackupFile } from './backup.js';
import { InstallError, installSystemd } from './install-systemd.js';
import { native } from '../native/index.js';

const PRODUCTION_SOCKET = '/run/rustfs-kms/kms.sock';

const USAGE = `usage: rustfs-kms [--socket PATH] [--json] <command> [arguments]

keys
  key create KEY [--description TEXT] [--tag K=V]... [--rotation-period-days N]
  key status KEY
  key list [--prefix P] [--limit N] [--marker M]
  key enable KEY | key disable KEY | key rotate KEY
  key delete KEY [--pending-days N]        schedule deletion (7-30 days, default 30)
  key cancel-delete KEY
data
  encrypt --key KEY [--context K=V]...     stdin → envelope on stdout
  decrypt [--context K=V]...               envelope on stdin → plaintext on stdout
  datakey KEY [--context K=V]... [--bytes N] [--ciphertext-out FILE] [--without-plaintext]
daemon
  status | health
audit
  audit verify FILE... [--head SEQ:HASH] [--from SEQ[:PREV]]
                                           check the hash chain (files oldest first; --head from status)
setup
  init [--state-dir DIR] [--key-file FILE]  create the local root key (refuses to overwrite)
  init --config FILE                        create the root the config names: the local key file, or
                                            for root.type pkcs11 the root key on the token (wrap mode)
  install-systemd [--prefix DIR] [--lib-dir DIR] [--daemon PATH] [--no-reload]
                                           install units, sysusers/tmpfiles snippets, example config
backup and restore (file keystore; work on the state directory, no daemon needed)
  backup FILE [--state-dir DIR] [--force]  wrapped key records → FILE (or - for stdout); safe while the daemon runs
  restore FILE --state-dir DIR [--key-file FILE] [--dry-run]
                                           import records; newer ones on disk are kept; refuses while a daemon runs

The socket is --socket, else $RUSTFS_KMS_SOCKET, else ${PRODUCTION_SOCKET}
(or ./.kms/kms.sock when only the development daemon's socket exists).
Exit status: 0 ok, 1 the daemon refused (the error code is printed), 2 usage.
`;

class UsageError extends Error {}

const OPTIONS = {
  socket: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  'timeout-ms': { type: 'string' },
  description: { type: 'string' },
  tag: { type: 'string', multiple: true },
  'rotation-period-days': { type: 'string' },
  prefix: { type: 'string' },
  limit: { type: 'string' },
  marker: { type: 'string' },
  'pending-days': { type: 'string' },
  key: { type: 'string' },
  context: { type: 'string', multiple: true },
  bytes: { type: 'string' },
  'ciphertext-out': { type: 'string' },
  'without-plaintext': { type: 'boolean' },
  'state-dir': { type: 'string' },
  'key-file': { type: 'string' },
  config: { type: 'string' },
  head: { type: 'string' },
  from: { type: 'string' },
  force: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  'lib-dir': { type: 'string' },
  daemon: { type: 'string' },
  'no-reload': { type: 'boolean' },
} as const;

type Flags = ReturnType<typeof parse>['values'];

function parse(argv: string[]) {
  try {
    return parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function socketPath(flag: string | undefined, env: NodeJS.ProcessEnv, cwd: string): string {
  if (flag !== undefined) return resolve(cwd, flag);
  if (env.RUSTFS_KMS_SOCKET !== undefined && env.RUSTFS_KMS_SOCKET !== '') return resolve(cwd, env.RUSTFS_KMS_SOCKET);
  const dev = join(cwd, '.kms', 'kms.sock');
  if (!existsSync(PRODUCTION_SOCKET) && existsSync(dev)) return dev;
  return PRODUCTION_SOCKET;
}

function integer(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be a whole number, got "${value}"`);
  return Number(value);
}

function pairs(values: string[] | undefined, name: string): Record<string, string> | undefined {
  if (values === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new UsageError(`--${name} takes KEY=VALUE, got "${v}"`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

function need(value: string | undefined, what: string): string {
  if (value === undefined || value === '') throw new UsageError(`missing ${what}`);
  return value;
}

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function keyTable(keys: KeyInfo[]): string {
  return table(
    ['KEY', 'STATE', 'VERSION', 'ORIGIN', 'CREATED', 'DESCRIPTION'],
    keys.map((k) => [k.keyId, k.state, String(k.currentVersion), k.origin, time(k.createdAt) ?? '', k.description]),
  );
}

function keyBlock(k: KeyInfo): string {
  return block([
    ['key', k.keyId], ['state', k.state], ['current version', k.currentVersion], ['versions', k.versions],
    ['algorithm', k.algorithm], ['origin', k.origin], ['created', time(k.createdAt)], ['rotated', time(k.rotatedAt)],
    ['deletion date', time(k.deletionDate)], ['rotation period (days)', k.rotationPeriodDays],
    ['description', k.description || undefined],
    ['tags', Object.keys(k.tags).length > 0 ? Object.entries(k.tags).map(([a, b]) => `${a}=${b}`).join(', ') : undefined],
  ]);
}

async function withClient<T>(flags: Flags, fn: (client: KmsClient) => Promise<T>): Promise<T> {
  const timeoutMs = integer(flags['timeout-ms'], 'timeout-ms') ?? 30_000;
  const path = socketPath(flags.socket, process.env, process.cwd());
  const client = await KmsClient.connect(path, { timeoutMs, reconnect: false, ctx: { user_agent: `rustfs-kms/${VERSION}` } });
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}

async function run(argv: string[]): Promise<void> {
  const { values: flags, positionals } = parse(argv);
  const out = (human: string, json: unknown): void => {
    process.stdout.write(flags.json === true ? toJson(json) : human);
  };
  if (flags.version === true) {
    process.stdout.write(`rustfs-kms ${VERSION}\n`);
    return;
  }
  const [command, sub, arg] = positionals;
  if (flags.help === true || command === undefined || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }

  switch (command) {
    case 'init': {
      const configPath = flags.config ?? (process.env.RUSTFS_KMS_CONFIG !== undefined && process.env.RUSTFS_KMS_CONFIG !== '' ? process.env.RUSTFS_KMS_CONFIG : undefined);
      if (configPath !== undefined) return initFromConfig(flags, configPath, out);
      const stateDir = resolve(flags['state-dir'] ?? process.env.RUSTFS_KMS_STATE_DIR ?? '/var/lib/rustfs-kms');
      return initLocalRoot(resolve(flags['key-file'] ?? join(stateDir, 'root.key')), stateDir, out);
    }
    case 'health':
      return withClient(flags, async (c) => {
        const h = await c.health();
        out(block([['healthy', h.healthy], ['backend', h.backend], ['version', h.version], ['detail', h.detail]]), h);
        if (!h.healthy) process.exitCode = 1;
      });
    case 'status':
      return withClient(flags, async (c) => {
        const s = await c.status();
        out(block([
          ['root', s.rootType], ['keystore', s.keystoreType], ['endpoint', s.endpoint], ['keys', s.keyCount],
          ['uptime (s)', Math.round(s.uptimeMs / 1000)], ['max frame bytes', s.limits.maxFrameBytes],
          ['max connections', s.limits.maxConnections],
          ['audit head', s.auditHead === undefined ? undefined : `${s.auditHead.seq}:${s.auditHead.hash}`],
        ]), s);
      });
    case 'key':
      return keyCommand(flags, sub, arg, out);
    case 'audit':
      return auditCommand(flags, positionals.slice(1), out);
    case 'backup':
      return backupCommand(flags, positionals.slice(1), out);
    case 'restore':
      return restoreCommand(flags, positionals.slice(1), out);
    case 'install-systemd':
      return installSystemdCommand(flags, positionals.slice(1), out);
    case 'encrypt':
      return withClient(flags, async (c) => {
        const plaintext = await readStdin();
        const context = pairs(flags.context, 'context');
        const r = await c.encrypt(need(flags.key ?? sub, 'the key (--key KEY)'), plaintext, context ? { context } : {});
        if (flags.json === true) out('', r);
        else process.stdout.write(r.ciphertext);
      });
    case 'decrypt':
      return withClient(flags, async (c) => {
        const ciphertext = await readStdin();
        const context = pairs(flags.context, 'context');
        const r = await c.decrypt(ciphertext, context ? { context } : {});
        if (flags.json === true) out('', r);
        else process.stdout.write(r.plaintext);
      });
    case 'datakey':
      return withClient(flags, async (c) => {
        const context = pairs(flags.context, 'context');
        const bytes = integer(flags.bytes, 'bytes');
        const r = await c.generateDataKey(need(sub, 'the key id'), {
          ...(context ? { context } : {}), ...(bytes !== undefined ? { bytes } : {}),
          ...(flags['without-plaintext'] === true ? { withoutPlaintext: true } : {}),
        });
        if (flags['ciphertext-out'] !== undefined) writeFileSync(flags['ciphertext-out'], r.ciphertext, { mode: 0o600 });
        out(block([
          ['key', r.keyId], ['version', r.keyVersion], ['plaintext (hex)', r.plaintext?.toString('hex')],
          ['ciphertext (base64)', flags['ciphertext-out'] === undefined ? r.ciphertext.toString('base64') : `written to ${flags['ciphertext-out']}`],
        ]), r);
      });
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

/** `init --config FILE`: creates what the configured root needs, never overwriting anything. */
async function initFromConfig(flags: Flags, configPath: string, out: (h: string, j: unknown) => void): Promise<void> {
  const config = loadConfig({
    configPath, env: process.env, cli: flags['state-dir'] !== undefined ? { stateDir: flags['state-dir'] } : {},
  });
  switch (config.root.type) {
    case 'local':
      return initLocalRoot(resolve(flags['key-file'] ?? config.root.local.keyFile), config.stateDir, out);
    case 'pkcs11': {
      const p11 = config.root.pkcs11;
      if (p11 === undefined) throw new UsageError('root.type is pkcs11 but the config has no root.pkcs11 section');
      let result;
      try {
        result = await initPkcs11Root({ ...p11, env: process.env, sessions: 1 }); // the config's section is the root's options
      } catch (err) {
        // Not a protocol error: say what is wrong with the token, exit 1.
        const message = err instanceof Error ? err.message : String(err);
        if (flags.json === true) process.stdout.write(toJson({ error: { code: 'InitFailed', message } }));
        process.stderr.write(`rustfs-kms: init: ${message}\n`);
        process.exitCode = 1;
        return;
      }
      return out(`${result.message}\n`, {
        root_type: 'pkcs11', mode: p11.mode, token: result.token, serial: result.serial, key_label: result.keyLabel,
        created: result.created, ...(result.kcv !== undefined ? { key_check_value: result.kcv } : {}),
      });
    }
    default:
      throw new UsageError(`init has nothing to create for root.type ${config.root.type}`);
  }
}

function auditCommand(flags: Flags, args: string[], out: (h: string, j: unknown) => void): void {
  const [sub, ...files] = args;
  if (sub !== 'verify') throw new UsageError(`unknown audit command "${sub ?? ''}" (verify)`);
  if (files.length === 0) throw new UsageError('audit verify needs at least one FILE (oldest first)');
  let head: { seq: number; hash: string } | undefined;
  if (flags.head !== undefined) {
    const m = /^(\d+):([0-9a-f]{64})$/.exec(flags.head);
    if (m === null) throw new UsageError('--head takes SEQ:HASH as printed by "rustfs-kms status"');
    head = { seq: Number(m[1]), hash: m[2] as string };
  }
  let from: { seq: number; prev?: string } | undefined;
  if (flags.from !== undefined) {
    const m = /^(\d+)(?::([0-9a-f]{64}))?$/.exec(flags.from);
    if (m === null) throw new UsageError('--from takes SEQ or SEQ:PREV (the first line\'s seq and prev hash)');
    from = { seq: Number(m[1]), ...(m[2] !== undefined ? { prev: m[2] } : {}) };
  }
  const result = verifyAuditFiles(files, { ...(head !== undefined ? { head } : {}), ...(from !== undefined ? { from } : {}) });
  if (result.ok) {
    out(`OK: ${result.records} records${result.firstSeq !== undefined ? ` (seq ${result.firstSeq}..${result.lastSeq})` : ''} in ${files.length} file(s)\n`, result);
    return;
  }
  const f = result.failure as { file: string; line: number; message: string };
  out(`FAILED: ${f.file}${f.line > 0 ? ` line ${f.line}` : ''} ${f.message}\n`, result);
  process.exitCode = 1;
}

// ---- backup / restore / install-systemd ------------------------------------------------------

function defaultStateDir(flags: Flags): string {
  return resolve(flags['state-dir'] ?? process.env.RUSTFS_KMS_STATE_DIR ?? '/var/lib/rustfs-kms');
}

function backupCommand(flags: Flags, args: string[], out: (h: string, j: unknown) => void): void {
  const [file, ...extra] = args;
  if (file === undefined || extra.length > 0) throw new UsageError('backup takes one FILE (or - for stdout)');
  const stateDir = defaultStateDir(flags);
  const backup = wrapBackupError(() => createBackup({ stateDir, createdBy: `rustfs-kms/${VERSION}` }));
  if (file === '-') {
    process.stdout.write(serializeBackup(backup));
    return;
  }
  const path = resolve(file);
  wrapBackupError(() => writeBackupFile(path, backup, flags.force === true));
  const roots = backup.root_refs.length > 0 ? backup.root_refs.join(', ') : 'none (no keys)';
  out(
    `backed up ${backup.key_count} key record(s) from ${stateDir} to ${path} (0600)\n` +
      `  wrapped by root ${roots}: the backup opens nothing without that root key; keep the two apart\n`,
    { file: path, state_dir: stateDir, key_count: backup.key_count, root_refs: backup.root_refs, records_sha256: backup.records_sha256 },
  );
}

function restoreCommand(flags: Flags, args: string[], out: (h: string, j: unknown) => void): void {
  const [file, ...extra] = args;
  if (file === undefined || extra.length > 0) throw new UsageError('restore takes one FILE (or - for stdin)');
  if (flags['state-dir'] === undefined) throw new UsageError('restore needs --state-dir DIR (where the records go)');
  const stateDir = resolve(flags['state-dir']);
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(resolve(file), 'utf8');
  const backup = wrapBackupError(() => parseBackup(text, file === '-' ? 'stdin' : resolve(file)));
  const keyFile = resolve(flags['key-file'] ?? join(stateDir, 'root.key'));
  let rootNote: string | undefined;
  const rootRef = (): string | undefined => {
    if (!existsSync(keyFile)) return undefined;
    try {
      const root = LocalRoot.open({ keyFile, saltFile: join(stateDir, 'root.salt'), create: false, env: {} });
      const ref = root.ref;
      void root.close();
      return ref;
    } catch (err) {
      rootNote = `not checked (${(err as Error).message})`;
      return undefined;
    }
  };
  const report = wrapBackupError(() => restoreBackup({
    backup, stateDir, rootRef, lockFile: (fd) => native.lockFile(fd), ...(flags['dry-run'] === true ? { dryRun: true } : {}),
  }));
  if (rootNote !== undefined) report.rootCheck = rootNote;
  const rows = report.items.map((i) => [
    i.keyId, i.action, i.disk ? `v${i.disk.currentVersion} r${i.disk.revision}` : '-', `v${i.backup.currentVersion} r${i.backup.revision}`, i.reason,
  ]);
  out(
    (rows.length > 0 ? table(['KEY', 'ACTION', 'ON DISK', 'BACKUP', 'REASON'], rows) : '') +
      `${report.dryRun ? 'dry run: would restore' : 'restored'} ${report.restored}, kept ${report.kept} newer on disk, ` +
      `${report.unchanged} unchanged; ${report.onlyOnDisk.length} only on disk (untouched)\n` +
      `root: ${report.rootCheck}\n`,
    report,
  );
}

function wrapBackupError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BackupError || err instanceof InstallError) throw new KmsError('InvalidRequest', err.message);
    throw err;
  }
}

function installSystemdCommand(flags: Flags, args: string[], out: (h: string, j: unknown) => void): void {
  if (args.length > 0) throw new UsageError(`install-systemd takes no arguments, got "${args.join(' ')}"`);
  const report = wrapBackupError(() => installSystemd({
    prefix: flags.prefix ?? '/',
    packageRoot: PACKAGE_ROOT,
    activate: flags['no-reload'] !== true,
    env: process.env,
    ...(flags['lib-dir'] !== undefined ? { libDir: flags['lib-dir'] } : {}),
    ...(flags.daemon !== undefined ? { daemon: flags.daemon } : {}),
    ...(process.argv[1] !== undefined ? { cliScript: process.argv[1] } : {}),
  }));
  const lines = [
    ...report.files.map((f) => `${f.action.padEnd(9)} ${f.path}`),
    `service: ${report.execStart}`,
    ...report.ran.map((r) => `${r.ok ? 'ran' : 'FAILED'}: ${r.command}${r.output !== '' ? ` (${r.output.replace(/\n/g, '; ')})` : ''}`),
    ...report.warnings.map((w) => `warning: ${w}`),
    'next:',
    ...report.nextSteps.map((s) => `  ${s}`),
  ];
  out(lines.join('\n') + '\n', report);
  if (report.ran.some((r) => !r.ok)) process.exitCode = 1;
}

/** A refusal, not a usage mistake: exit status 1 like the daemon's refusals. */
function initLocalRoot(keyFile: string, stateDir: string, out: (h: string, j: unknown) => void): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  if (existsSync(keyFile)) throw new KmsError('KeyAlreadyExists', `root key file ${keyFile} already exists; refusing to overwrite it`);
  createKeyFile(keyFile);
  out(`created root key ${keyFile} (0600); back it up: without it no key record opens\n`, { key_file: keyFile, state_dir: stateDir });
}

async function keyCommand(flags: Flags, sub: string | undefined, keyId: string | undefined, out: (h: string, j: unknown) => void): Promise<void> {
  const one = (fn: (c: KmsClient, id: string) => Promise<KeyInfo>) =>
    withClient(flags, async (c) => {
      const k = await fn(c, need(keyId, 'the key id'));
      out(keyBlock(k), k);
    });
  switch (sub) {
    case 'create': {
      const tags = pairs(flags.tag, 'tag');
      const period = integer(flags['rotation-period-days'], 'rotation-period-days');
      return one((c, id) => c.createKey(id, {
        ...(flags.description !== undefined ? { description: flags.description } : {}),
        ...(tags ? { tags } : {}), ...(period !== undefined ? { rotationPeriodDays: period } : {}),
      }));
    }
    case 'status':
      return one((c, id) => c.describeKey(id));
    case 'enable':
      return one((c, id) => c.enableKey(id));
    case 'disable':
      return one((c, id) => c.disableKey(id));
    case 'rotate':
      return one((c, id) => c.rotateKey(id));
    case 'delete':
      return one((c, id) => c.scheduleKeyDeletion(id, integer(flags['pending-days'], 'pending-days') ?? 30));
    case 'cancel-delete':
      return one((c, id) => c.cancelKeyDeletion(id));
    case 'list':
      return withClient(flags, async (c) => {
        const limit = integer(flags.limit, 'limit');
        const page = await c.listKeys({
          ...(flags.prefix !== undefined ? { prefix: flags.prefix } : {}),
          ...(flags.marker !== undefined ? { marker: flags.marker } : {}),
          ...(limit !== undefined ? { limit } : {}),
        });
        out(keyTable(page.keys) + (page.truncated ? `(more: --marker ${page.nextMarker})\n` : ''), page);
      });
    default:
      throw new UsageError(`unknown key command "${sub ?? ''}" (create, status, list, enable, disable, rotate, delete, cancel-delete)`);
  }
}

run(process.argv.slice(2)).catch((err: unknown) => {
  const json = process.argv.includes('--json');
  if (err instanceof UsageError) {
    process.stderr.write(`rustfs-kms: ${err.message}\n\n${USAGE}`);
    process.exit(2);
  }
  const code = err instanceof KmsError ? err.code : 'Internal';
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(toJson({ error: { code, message } }));
  process.stderr.write(`rustfs-kms: ${code}: ${message}\n`);
  process.exit(1);
});
