// The shipped systemd files, checked by systemd's own tools (Debian's systemd package):
// systemd-analyze verify and security (exposure ≤ 2.0, with and without the documented drop-ins),
// systemd-sysusers and systemd-tmpfiles into a scratch root, the example config through the real
// config loader, "rustfs-kms install-systemd --prefix", and an strace of a daemon session checked
// against the unit's system call filter. No systemd needs to be running.
//
// systemd-analyze verify insists that ExecStart='s binary exists, and /usr/bin/rustfs-kmsd does not
// on a build machine: the tests verify a copy of the unit whose ExecStart runs this checkout's
// build (node dist/src/daemon/main.js) — exactly what install-systemd writes on a host without a
// global npm install — and, separately, the unit install-systemd produced, unmodified.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { DAEMON_JS, assertBuilt, cleanEnv, cleanupTempDirs, makeTempDir, repoRoot, runCli } from '../helpers/daemon.js';
import { exitWithin, haveCommand } from './helpers.js';

const UNITS = join(repoRoot, 'systemd');
const DROP_INS = ['network.conf', 'hsm.conf'];
const SHIPPED_EXEC = 'ExecStart=/usr/bin/rustfs-kmsd --config /etc/rustfs-kms/config.yaml';

beforeAll(() => {
  assertBuilt();
  for (const tool of ['systemd-analyze', 'systemd-sysusers', 'systemd-tmpfiles']) {
    if (!haveCommand(tool)) throw new Error(`${tool} is missing: run "bash scripts/install-test-deps.sh" (Debian package systemd)`);
  }
});
afterAll(() => cleanupTempDirs());

function sh(cmd: string, args: string[], cwd?: string): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: cleanEnv({ SYSTEMD_LOG_COLOR: '0', SYSTEMD_COLORS: '0' }), ...(cwd ? { cwd } : {}) });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** A copy of the units in a scratch directory, ExecStart= pointed at this checkout's build. */
function unitCopy(dropIns: string[] = []): { dir: string; service: string; socket: string } {
  const dir = makeTempDir('kms-units-');
  const text = readFileSync(join(UNITS, 'rustfs-kms.service'), 'utf8');
  expect(text).toContain(SHIPPED_EXEC);
  writeFileSync(join(dir, 'rustfs-kms.service'), text.replace(SHIPPED_EXEC, `ExecStart=${process.execPath} ${DAEMON_JS} --config /etc/rustfs-kms/config.yaml`));
  copyFileSync(join(UNITS, 'rustfs-kms.socket'), join(dir, 'rustfs-kms.socket'));
  if (dropIns.length > 0) {
    mkdirSync(join(dir, 'rustfs-kms.service.d'));
    for (const d of dropIns) copyFileSync(join(UNITS, 'drop-ins', d), join(dir, 'rustfs-kms.service.d', d));
  }
  return { dir, service: join(dir, 'rustfs-kms.service'), socket: join(dir, 'rustfs-kms.socket') };
}

function exposure(serviceFile: string): { level: number; report: string } {
  const r = sh('systemd-analyze', ['security', '--offline=true', '--no-pager', serviceFile]);
  const m = /Overall exposure level for rustfs-kms\.service:\s*([0-9]+(?:\.[0-9]+)?)/.exec(r.out);
  if (m === null) throw new Error(`no exposure level in systemd-analyze output (exit ${r.code}):\n${r.out}`);
  return { level: Number(m[1]), report: r.out };
}

/** "Key=value" assignments of one section, in order (comments and blank lines dropped). */
function assignments(text: string, section: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      current = sec[1] as string;
      continue;
    }
    if (current !== section) continue;
    const eq = line.indexOf('=');
    if (eq > 0) out.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return out;
}

function values(list: Array<[string, string]>, key: string): string[] {
  return list.filter(([k]) => k === key).map(([, v]) => v);
}

describe('systemd-analyze', () => {
  it('verify passes on the service and socket units', () => {
    const u = unitCopy();
    const r = sh('systemd-analyze', ['verify', '--man=no', u.service, u.socket]);
    expect(r.out).toBe('');
    expect(r.code, r.out).toBe(0);
  });

  it('verify passes with each documented drop-in, and with all of them together', () => {
    for (const set of [...DROP_INS.map((d) => [d]), DROP_INS]) {
      const u = unitCopy(set);
      const r = sh('systemd-analyze', ['verify', '--man=no', u.service, u.socket]);
      expect(r.code, `${set.join('+')}: ${r.out}`).toBe(0);
      expect(r.out, set.join('+')).toBe('');
    }
  });

  it('security rates the service 2.0 or less (parsed from "Overall exposure level")', () => {
    const { level, report } = exposure(unitCopy().service);
    expect(level, report).toBeLessThanOrEqual(2.0);
    // The sandbox choices the docs promise are what systemd sees:
    expect(report).toMatch(/✓ PrivateNetwork=/);
    expect(report).toMatch(/✓ SystemCallFilter=~@privileged|✗ SystemCallFilter=~@privileged.*chown/);
    expect(report).toMatch(/✓ CapabilityBoundingSet=~CAP_SYS_ADMIN/);
    expect(report).toMatch(/✗ MemoryDenyWriteExecute=/); // deliberately off for V8's JIT
  });

  it('the documented drop-ins (network for Vault/admin HTTP, HSM devices) keep it at 2.0 or less', () => {
    const levels: Record<string, number> = {};
    for (const set of [...DROP_INS.map((d) => [d]), DROP_INS]) {
      const { level, report } = exposure(unitCopy(set).service);
      levels[set.join('+')] = level;
      expect(level, `${set.join('+')}:\n${report}`).toBeLessThanOrEqual(2.0);
    }
    // The drop-ins are actually applied: network access costs exposure.
    expect(levels['network.conf']).toBeGreaterThan(exposure(unitCopy().service).level);
  });
});

describe('what the units say', () => {
  const service = readFileSync(join(UNITS, 'rustfs-kms.service'), 'utf8');
  const svc = assignments(service, 'Service');
  const sock = assignments(readFileSync(join(UNITS, 'rustfs-kms.socket'), 'utf8'), 'Socket');
  const one = (key: string) => {
    const v = values(svc, key);
    expect(v, key).toHaveLength(1);
    return v[0] as string;
  };

  it('service: notify type, dedicated user, directories, limits, no capabilities', () => {
    expect(one('Type')).toBe('notify');
    expect(one('User')).toBe('rustfs-kms');
    expect(one('Group')).toBe('rustfs-kms');
    expect(one('StateDirectory')).toBe('rustfs-kms');
    expect(one('StateDirectoryMode')).toBe('0700');
    expect(one('RuntimeDirectory')).toBe('rustfs-kms');
    // Not ConfigurationDirectory=: it would mount /etc/rustfs-kms read-write in the sandbox.
    expect(values(svc, 'ConfigurationDirectory')).toEqual([]);
    expect(one('LogsDirectory')).toBe('rustfs-kms');
    expect(one('LimitCORE')).toBe('0');
    expect(one('LimitMEMLOCK')).toMatch(/^(\d+[KMG]?|infinity)$/);
    expect(one('CapabilityBoundingSet')).toBe('');
    expect(one('AmbientCapabilities')).toBe('');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('UMask')).toBe('0077');
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('WatchdogSec')).toMatch(/^\d+s$/);
    expect(values(svc, 'MemoryDenyWriteExecute')).toEqual([]);
    expect(service).toMatch(/MemoryDenyWriteExecute[^\n]*\n?[^\n]*V8/);
  });

  it("service: TimeoutStopSec leaves room for the default drain timeout and the audit flush", () => {
    const stop = Number(/^(\d+)s$/.exec(one('TimeoutStopSec'))?.[1]);
    const drainDefault = loadConfig({ env: {}, cli: { dev: true, stateDir: '/nonexistent-for-test' } }).limits.drainTimeoutS;
    expect(stop).toBeGreaterThan(drainDefault + 15); // the daemon's own deadline for a clean stop (main.ts)
  });

  it('service: NODE_OPTIONS, proxies and VAULT_SKIP_VERIFY are removed from the environment', () => {
    const unset = values(svc, 'UnsetEnvironment').flatMap((v) => v.split(/\s+/));
    for (const name of ['NODE_OPTIONS', 'NODE_TLS_REJECT_UNAUTHORIZED', 'http_proxy', 'https_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'no_proxy',
      'NO_PROXY', 'all_proxy', 'ALL_PROXY', 'VAULT_SKIP_VERIFY', 'VAULT_ADDR', 'VAULT_TOKEN']) {
      expect(unset, name).toContain(name);
    }
  });

  it('socket: the path, 0660, the rustfs-kms user and group, descriptor name "kms"', () => {
    expect(values(sock, 'ListenStream')).toEqual(['/run/rustfs-kms/kms.sock']);
    expect(values(sock, 'SocketMode')).toEqual(['0660']);
    expect(values(sock, 'SocketUser')).toEqual(['rustfs-kms']);
    expect(values(sock, 'SocketGroup')).toEqual(['rustfs-kms']);
    expect(values(sock, 'FileDescriptorName')).toEqual(['kms']);
  });

  it('the example config loads through the real loader and matches the socket unit', () => {
    const config = loadConfig({ configPath: join(UNITS, 'config.example.yaml'), env: {}, cli: {} });
    expect(config.socket.path).toBe(values(sock, 'ListenStream')[0]);
    expect(config.socket.group).toBe(values(sock, 'SocketGroup')[0]);
    expect(config.socket.mode).toBe(0o660);
    expect(config.stateDir).toBe('/var/lib/rustfs-kms');
    expect(config.audit.path.startsWith('/var/log/rustfs-kms/')).toBe(true);
    expect(config.limits.drainTimeoutS + 15).toBeLessThan(Number(/^(\d+)s$/.exec(values(svc, 'TimeoutStopSec')[0] as string)?.[1]));
  });
});

describe('sysusers.d and tmpfiles.d snippets', () => {
  it('systemd-sysusers creates the user and group rustfs-kms; systemd-tmpfiles the directories, owned by it', () => {
    const root = makeTempDir('kms-sysroot-');
    mkdirSync(join(root, 'etc'));
    let r = sh('systemd-sysusers', [`--root=${root}`, join(UNITS, 'rustfs-kms.sysusers.conf')]);
    expect(r.code, r.out).toBe(0);
    const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
    const group = readFileSync(join(root, 'etc/group'), 'utf8');
    const user = /^rustfs-kms:x:(\d+):(\d+):[^:\n]*:([^:\n]*):([^:\n]*)$/m.exec(passwd);
    expect(user, passwd).not.toBeNull();
    const gid = /^rustfs-kms:x:(\d+):/m.exec(group)?.[1];
    expect(gid, group).toBeDefined();
    expect(user?.[2]).toBe(gid);
    expect(Number(user?.[1])).toBeLessThan(1000); // a system user
    expect(user?.[4]).toMatch(/nologin$/);

    r = sh('systemd-tmpfiles', [`--root=${root}`, '--create', join(UNITS, 'rustfs-kms.tmpfiles.conf')]);
    expect(r.code, r.out).toBe(0);
    for (const [dir, mode] of [['run/rustfs-kms', 0o755], ['var/lib/rustfs-kms', 0o700], ['var/log/rustfs-kms', 0o700]] as const) {
      const st = statSync(join(root, dir));
      expect(st.isDirectory(), dir).toBe(true);
      expect(st.mode & 0o7777, dir).toBe(mode);
      expect(st.uid, dir).toBe(Number(user?.[1]));
      expect(st.gid, dir).toBe(Number(gid));
    }
  });
});

describe('rustfs-kms install-systemd --prefix', () => {
  it('puts units, snippets and the example config in place; the installed units verify as they are', async () => {
    const prefix = makeTempDir('kms-prefix-');
    const r = await runCli(['--json', 'install-systemd', '--prefix', prefix, '--no-reload']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.toString()) as { files: Array<{ path: string; action: string }>; execStart: string };
    const lib = join(prefix, 'usr/local/lib');
    const expected = [
      join(lib, 'systemd/system/rustfs-kms.service'), join(lib, 'systemd/system/rustfs-kms.socket'),
      join(lib, 'sysusers.d/rustfs-kms.conf'), join(lib, 'tmpfiles.d/rustfs-kms.conf'),
      join(prefix, 'etc/rustfs-kms/config.example.yaml'), join(prefix, 'etc/rustfs-kms/config.yaml'),
    ];
    expect(report.files.map((f) => f.path).sort()).toEqual([...expected].sort());
    expect(report.files.every((f) => f.action === 'written')).toBe(true);
    for (const f of expected) expect(statSync(f).mode & 0o777, f).toBe(0o644);
    expect(readFileSync(join(lib, 'systemd/system/rustfs-kms.socket'), 'utf8')).toBe(readFileSync(join(UNITS, 'rustfs-kms.socket'), 'utf8'));
    expect(readFileSync(join(lib, 'sysusers.d/rustfs-kms.conf'), 'utf8')).toBe(readFileSync(join(UNITS, 'rustfs-kms.sysusers.conf'), 'utf8'));

    // ExecStart= names something that exists on this host, and the installed pair verifies unmodified.
    const installed = readFileSync(expected[0] as string, 'utf8');
    const exec = /^ExecStart=(\S+)(.*)$/m.exec(installed);
    expect(exec).not.toBeNull();
    expect(existsSync(exec?.[1] as string), exec?.[0]).toBe(true);
    expect(exec?.[2]).toMatch(/--config \/etc\/rustfs-kms\/config\.yaml$/);
    const v = sh('systemd-analyze', ['verify', '--man=no', expected[0] as string, expected[1] as string]);
    expect(v.code, v.out).toBe(0);
    expect(exposure(expected[0] as string).level).toBeLessThanOrEqual(2.0);

    // A second run (an upgrade) keeps the operator's config.yaml and rewrites nothing that is current.
    writeFileSync(join(prefix, 'etc/rustfs-kms/config.yaml'), 'log_level: debug\n');
    const again = await runCli(['--json', 'install-systemd', '--prefix', prefix, '--no-reload']);
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout.toString()) as { files: Array<{ path: string; action: string }> };
    const actions = Object.fromEntries(second.files.map((f) => [f.path, f.action]));
    expect(actions[join(prefix, 'etc/rustfs-kms/config.yaml')]).toBe('kept');
    expect(actions[expected[0] as string]).toBe('unchanged');
    expect(readFileSync(join(prefix, 'etc/rustfs-kms/config.yaml'), 'utf8')).toBe('log_level: debug\n');
  });

  it('--daemon sets ExecStart=; scripts/install-systemd.sh does the same with DESTDIR', async () => {
    const prefix = makeTempDir('kms-prefix-');
    const r = await runCli(['install-systemd', '--prefix', prefix, '--no-reload', '--daemon', '/opt/rustfs kms/bin/rustfs-kmsd', '--lib-dir', '/usr/lib']);
    expect(r.code, r.stderr).toBe(0);
    const unit = readFileSync(join(prefix, 'usr/lib/systemd/system/rustfs-kms.service'), 'utf8');
    expect(unit).toContain('ExecStart="/opt/rustfs kms/bin/rustfs-kmsd" --config /etc/rustfs-kms/config.yaml');

    const destdir = makeTempDir('kms-destdir-');
    const script = spawnSync('bash', [join(repoRoot, 'scripts/install-systemd.sh')], {
      encoding: 'utf8', env: cleanEnv({ DESTDIR: destdir }),
    });
    expect(script.status, `${script.stdout}${script.stderr}`).toBe(0);
    expect(readdirSync(join(destdir, 'usr/local/lib/systemd/system')).sort()).toEqual(['rustfs-kms.service', 'rustfs-kms.socket']);
    expect(existsSync(join(destdir, 'etc/rustfs-kms/config.yaml'))).toBe(true);
  });
});

describe('system call filter', () => {
  /** Names in a group, nested groups expanded, from systemd-analyze itself. */
  const groupCache = new Map<string, Set<string>>();
  function expand(item: string): Set<string> {
    if (!item.startsWith('@')) return new Set([item]);
    const cached = groupCache.get(item);
    if (cached) return cached;
    const r = sh('systemd-analyze', ['syscall-filter', '--no-pager', item]);
    if (r.code !== 0) throw new Error(`systemd-analyze syscall-filter ${item}: ${r.out}`);
    const out = new Set<string>();
    for (const line of r.out.split('\n').slice(1)) {
      const t = line.trim();
      if (t === '' || t.startsWith('#')) continue;
      for (const s of expand(t)) out.add(s);
    }
    groupCache.set(item, out);
    return out;
  }

  /** The allow list the unit's SystemCallFilter= lines build, applied in order (systemd.exec(5)). */
  function allowed(): Set<string> {
    const lines = values(assignments(readFileSync(join(UNITS, 'rustfs-kms.service'), 'utf8'), 'Service'), 'SystemCallFilter');
    expect(lines[0]?.startsWith('~')).toBe(false); // an allow list
    const set = new Set<string>();
    for (const line of lines) {
      const deny = line.startsWith('~');
      for (const item of (deny ? line.slice(1) : line).trim().split(/\s+/)) {
        for (const s of expand(item)) {
          if (deny) set.delete(s);
          else set.add(s);
        }
      }
    }
    return set;
  }

  it('allows what the addon needs (mlock, madvise, flock, prctl, prlimit64) and denies @privileged/@resources', () => {
    const set = allowed();
    for (const s of ['mlock', 'munlock', 'madvise', 'flock', 'prctl', 'prlimit64', 'pkey_alloc', 'fchown', 'accept4', 'getsockopt']) {
      expect(set.has(s), s).toBe(true);
    }
    for (const s of ['setuid', 'setrlimit', 'setpriority', 'mount', 'ptrace', 'init_module', 'reboot', 'settimeofday']) {
      expect(set.has(s), s).toBe(false);
    }
  });

  it('every system call of a real daemon session (start, key ops, SIGHUP, SIGTERM) is allowed', async () => {
    if (!haveCommand('strace')) throw new Error('strace is missing: run "bash scripts/install-test-deps.sh"');
    const dir = makeTempDir('kms-strace-');
    const sock = join(dir, 'kms.sock');
    const trace = join(dir, 'trace');
    const proc = spawn('strace', ['-f', '-qq', '-o', trace, process.execPath, DAEMON_JS, '--dev', '--state-dir', join(dir, 'state'), '--socket', sock], {
      cwd: dir, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    proc.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    // strace's own pid is proc.pid; the traced daemon is its child (the first pid in the trace).
    // Killing strace would leave the daemon running, so the cleanup kills the daemon itself.
    let daemonPid: number | undefined;
    try {
      const deadline = Date.now() + 30_000;
      while (!stderr.includes('serving on ')) {
        if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`daemon under strace did not start:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      daemonPid = Number(readFileSync(trace, 'utf8').split('\n')[0]?.split(/\s+/)[0]);
      expect(Number.isInteger(daemonPid) && daemonPid > 0).toBe(true);
      const cli = (args: string[], input?: Buffer) => runCli(args, { socket: sock, ...(input ? { input } : {}) });
      expect((await cli(['key', 'create', 'traced'])).code).toBe(0);
      const dk = join(dir, 'dk.bin');
      expect((await cli(['datakey', 'traced', '--ciphertext-out', dk])).code).toBe(0);
      expect((await cli(['decrypt'], readFileSync(dk))).code).toBe(0);
      expect((await cli(['key', 'rotate', 'traced'])).code).toBe(0);
      expect((await cli(['encrypt', '--key', 'traced'], Buffer.from('x'.repeat(30_000)))).code).toBe(0);
      expect((await cli(['status'])).code).toBe(0);
      process.kill(daemonPid as number, 'SIGHUP');
      while (!stderr.includes('policy and log level reloaded')) {
        if (Date.now() > deadline + 30_000 || proc.exitCode !== null) throw new Error(`no reload after SIGHUP:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      process.kill(daemonPid as number, 'SIGTERM');
      expect((await exitWithin(exited, 30_000, 'strace + daemon')).code, stderr).toBe(0);
    } finally {
      if (proc.exitCode === null) {
        if (daemonPid !== undefined) {
          try {
            process.kill(daemonPid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        proc.kill('SIGKILL');
      }
    }
    const used = new Set<string>();
    for (const line of readFileSync(trace, 'utf8').split('\n')) {
      const m = /^\d+\s+([a-z_0-9]+)\(/.exec(line);
      if (m) used.add(m[1] as string);
    }
    expect(used.has('mlock')).toBe(true); // the trace saw the key slots being locked
    const set = allowed();
    const denied = [...used].filter((s) => !set.has(s)).sort();
    expect(denied, `system calls the unit's filter would refuse with EPERM: ${denied.join(', ')}`).toEqual([]);
  });
});
