// The commands that work on files, not the socket: audit verify, backup, restore, install-systemd,
// completion.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { verifyAuditFiles } from '../audit/verify.js';
import { native } from '../native/index.js';
import { PACKAGE_ROOT, VERSION } from '../package-info.js';
import { LocalRoot } from '../roots/local.js';
import { BackupError, createBackup, parseBackup, restoreBackup, serializeBackup, writeBackupFile } from './backup.js';
import type { Out } from './daemon-commands.js';
import { table } from './format.js';
import { bashCompletion, zshCompletion } from './help.js';
import { InstallError, installSystemd } from './install-systemd.js';
import { CliError, fileFailure, stateDir } from './locate.js';
import { UsageError, bool, str, type Values } from './parse.js';

export function auditVerify(values: Values, files: string[], out: Out): void {
  const words = ['audit', 'verify'];
  let head: { seq: number; hash: string } | undefined;
  const headText = str(values, 'head');
  if (headText !== undefined) {
    const m = /^(\d+):([0-9a-f]{64})$/.exec(headText);
    if (m === null) throw new UsageError('--head takes SEQ:HASH as printed by "rustfs-kms status"', words);
    head = { seq: Number(m[1]), hash: m[2] as string };
  }
  let from: { seq: number; prev?: string } | undefined;
  const fromText = str(values, 'from');
  if (fromText !== undefined) {
    const m = /^(\d+)(?::([0-9a-f]{64}))?$/.exec(fromText);
    if (m === null) throw new UsageError('--from takes SEQ or SEQ:PREV (the first line\'s seq and prev hash)', words);
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

/** Backup and install errors are refusals with a reason: exit 1, code InvalidRequest as before. */
function refusals<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof BackupError || err instanceof InstallError) throw new CliError('InvalidRequest', err.message);
    throw err;
  }
}

function chosenStateDir(values: Values): { dir: string; source: string } {
  return stateDir(str(values, 'state-dir'), str(values, 'config'), process.env, process.cwd());
}

export function backup(values: Values, file: string, out: Out): void {
  const { dir, source } = chosenStateDir(values);
  if (!existsSync(dir)) {
    throw new CliError('FileError', `state directory ${dir} (${source}) does not exist; name the daemon's with --state-dir DIR or --config FILE`);
  }
  const b = refusals(() => createBackup({ stateDir: dir, createdBy: `rustfs-kms/${VERSION}` }));
  if (file === '-') {
    process.stdout.write(serializeBackup(b));
    return;
  }
  const path = resolve(file);
  try {
    refusals(() => writeBackupFile(path, b, bool(values, 'force')));
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw fileFailure('write the backup file', path, err);
  }
  const roots = b.root_refs.length > 0 ? b.root_refs.join(', ') : 'none (no keys)';
  out(
    `backed up ${b.key_count} key record(s) from ${dir} to ${path} (0600)\n` +
      `  wrapped by root ${roots}: the backup opens nothing without that root key; keep the two apart\n`,
    { file: path, state_dir: dir, key_count: b.key_count, root_refs: b.root_refs, records_sha256: b.records_sha256 },
  );
}

export function restore(values: Values, file: string, out: Out): void {
  const { dir } = chosenStateDir(values);
  let text: string;
  try {
    text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(resolve(file), 'utf8');
  } catch (err) {
    throw fileFailure('read the backup file', file === '-' ? 'stdin' : resolve(file), err);
  }
  const b = refusals(() => parseBackup(text, file === '-' ? 'stdin' : resolve(file)));
  const keyFile = resolve(str(values, 'key-file') ?? join(dir, 'root.key'));
  let rootNote: string | undefined;
  const rootRef = (): string | undefined => {
    if (!existsSync(keyFile)) return undefined;
    try {
      const root = LocalRoot.open({ keyFile, saltFile: join(dir, 'root.salt'), create: false, env: {} });
      const ref = root.ref;
      void root.close();
      return ref;
    } catch (err) {
      rootNote = `not checked (${(err as Error).message})`;
      return undefined;
    }
  };
  const report = refusals(() => restoreBackup({
    backup: b, stateDir: dir, rootRef, lockFile: (fd) => native.lockFile(fd), ...(bool(values, 'dry-run') ? { dryRun: true } : {}),
  }));
  if (rootNote !== undefined) report.rootCheck = rootNote;
  const rows = report.items.map((i) => [
    i.keyId, i.action, i.disk ? `v${i.disk.currentVersion} r${i.disk.revision}` : '-', `v${i.backup.currentVersion} r${i.backup.revision}`, i.reason,
  ]);
  out(
    (rows.length > 0 ? table(['KEY', 'ACTION', 'ON DISK', 'BACKUP', 'REASON'], rows) : '') +
      `${report.dryRun ? 'dry run: would restore' : 'restored'} ${report.restored} into ${dir}, kept ${report.kept} newer on disk, ` +
      `${report.unchanged} unchanged; ${report.onlyOnDisk.length} only on disk (untouched)\n` +
      `root: ${report.rootCheck}\n`,
    report,
  );
}

export function installSystemdCommand(values: Values, out: Out): void {
  const libDir = str(values, 'lib-dir');
  const daemon = str(values, 'daemon');
  const report = refusals(() => installSystemd({
    prefix: str(values, 'prefix') ?? '/',
    packageRoot: PACKAGE_ROOT,
    activate: !bool(values, 'no-reload'),
    env: process.env,
    ...(libDir !== undefined ? { libDir } : {}),
    ...(daemon !== undefined ? { daemon } : {}),
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

export function completion(shell: string): void {
  process.stdout.write(shell === 'zsh' ? zshCompletion() : bashCompletion());
}
