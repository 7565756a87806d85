// Issue 11 item 9: the audit log path and an admin Unix socket's directory get the same owner and
// mode checks as the state directory and the socket path (the same code), and the log is opened
// with O_NOFOLLOW. Each case is refused at start-up naming the path and the problem, and nothing
// is created through a link.
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/audit/log.js';
import { assertBuilt, cleanupTempDirs, killAllDaemons, makeTempDir, runDaemonExpectingExit } from '../helpers/daemon.js';

afterEach(async () => {
  await killAllDaemons();
});
afterAll(() => cleanupTempDirs());

function expectRefused(r: { code: number | null; signal: NodeJS.Signals | null; stderr: string }, ...mentions: string[]): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.code, r.stderr).not.toBeNull();
  for (const m of mentions) expect(r.stderr).toContain(m);
}

/** A work dir and an audit directory inside it with the given mode. */
function auditDir(mode: number): { dir: string; logDir: string } {
  assertBuilt();
  const dir = makeTempDir('kms-hostile-path-');
  const logDir = join(dir, 'log');
  mkdirSync(logDir);
  chmodSync(logDir, mode);
  return { dir, logDir };
}

describe('audit log path (issue 11, item 9)', () => {
  it('a dangling audit.log symlink in a loose (1777) directory is refused naming the directory; the link target is not created', async () => {
    const { dir, logDir } = auditDir(0o1777);
    const target = join(dir, 'elsewhere.log');
    symlinkSync(target, join(logDir, 'audit.log'));
    const r = await runDaemonExpectingExit({ dir, config: `audit: { path: ${join(logDir, 'audit.log')} }\n` });
    expectRefused(r, `audit log directory ${logDir} is writable by others (mode 1777)`);
    expect(existsSync(target)).toBe(false);
  });

  it('a dangling audit.log symlink in a private directory is refused as a symbolic link; the target is not created', async () => {
    const { dir, logDir } = auditDir(0o700);
    const target = join(dir, 'elsewhere.log');
    symlinkSync(target, join(logDir, 'audit.log'));
    const r = await runDaemonExpectingExit({ dir, config: `audit: { path: ${join(logDir, 'audit.log')} }\n` });
    expectRefused(r, `audit log ${join(logDir, 'audit.log')} is a symbolic link`);
    expect(existsSync(target)).toBe(false);
  });

  it('an audit directory writable by its group is refused', async () => {
    const { dir, logDir } = auditDir(0o770);
    const r = await runDaemonExpectingExit({ dir, config: `audit: { path: ${join(logDir, 'audit.log')} }\n` });
    expectRefused(r, `audit log directory ${logDir} is writable by its group (mode 770)`);
    expect(readdirSync(logDir)).toEqual([]);
  });

  it('an existing audit.log owned by another user (0644) is refused naming the owner, and left untouched', async () => {
    const { dir, logDir } = auditDir(0o700);
    const log = join(logDir, 'audit.log');
    writeFileSync(log, '', { mode: 0o644 });
    chmodSync(log, 0o644);
    chownSync(log, 65534, 65534);
    const r = await runDaemonExpectingExit({ dir, config: `audit: { path: ${log} }\n` });
    expectRefused(r, `audit log ${log} is owned by uid 65534`);
  });

  it('an existing audit.log of ours readable by others (0644) is refused naming the mode', async () => {
    const { dir, logDir } = auditDir(0o700);
    const log = join(logDir, 'audit.log');
    writeFileSync(log, '');
    chmodSync(log, 0o644);
    const r = await runDaemonExpectingExit({ dir, config: `audit: { path: ${log} }\n` });
    expectRefused(r, `audit log ${log} has mode 0644`);
  });

  it('AuditLog.open (also the in-process library) does not follow a symlink at the path (O_NOFOLLOW)', () => {
    const { dir, logDir } = auditDir(0o700);
    const target = join(dir, 'elsewhere.log');
    symlinkSync(target, join(logDir, 'audit.log'));
    expect(() => AuditLog.open({ path: join(logDir, 'audit.log'), fsync: 'never', fsyncIntervalMs: 1000, maxBytes: 0 })).toThrow(/ELOOP|symbolic link/);
    expect(existsSync(target)).toBe(false);
  });
});

describe('admin HTTP Unix socket directory (issue 11, item 9)', () => {
  function adminConfig(dir: string, listen: string): string {
    const secret = join(dir, 'admin.secret');
    writeFileSync(secret, randomBytes(24).toString('base64url') + '\n', { mode: 0o600 });
    return `admin_http: { listen: ${listen}, access_key: admin, secret_key_file: ${secret} }\n`;
  }

  it('a socket directory writable by others is refused and no socket is created there', async () => {
    const { dir, logDir: sockDir } = auditDir(0o777);
    const r = await runDaemonExpectingExit({ dir, config: adminConfig(dir, join(sockDir, 'admin.sock')) });
    expectRefused(r, `admin_http.listen socket directory ${sockDir} is writable by others (mode 777)`);
    expect(readdirSync(sockDir)).toEqual([]);
  });

  it('a socket directory owned by another uid is refused naming the owner', async () => {
    const { dir, logDir: sockDir } = auditDir(0o755);
    chownSync(sockDir, 65534, 65534);
    const r = await runDaemonExpectingExit({ dir, config: adminConfig(dir, join(sockDir, 'admin.sock')) });
    expectRefused(r, `admin_http.listen socket directory ${sockDir} is owned by uid 65534`);
    expect(readdirSync(sockDir)).toEqual([]);
  });
});
