// Socket activation: the daemon started by Debian's systemd-socket-activate (which listens like
// rustfs-kms.socket and execs the daemon with LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES), a client over
// the inherited socket with kernel peer credentials, and clear refusals of activation variables
// that are meant for the daemon but wrong. Plus the parsing itself, in process.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, readFileSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ActivationError, socketActivation, type ActivationProbe } from '../../src/daemon/systemd.js';
import { CLI_JS, DAEMON_JS, assertBuilt, canConnect, cleanEnv, cleanupTempDirs, makeTempDir, runCli } from '../helpers/daemon.js';
import { RawConn } from '../integration/wire.js';
import { exitWithin, haveCommand, spawnActivated, waitServing, type ActivatedDaemon } from './helpers.js';

const started: ActivatedDaemon[] = [];

beforeAll(() => {
  assertBuilt();
  if (!haveCommand('systemd-socket-activate')) {
    throw new Error('systemd-socket-activate is missing: run "bash scripts/install-test-deps.sh" (Debian package systemd)');
  }
});
afterAll(async () => {
  for (const d of started) if (d.running) d.proc.kill('SIGKILL');
  cleanupTempDirs();
});

function auditLines(stateDir: string): Array<Record<string, any>> {
  return readFileSync(join(stateDir, 'audit.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
}

describe('socketActivation() (sd_listen_fds_with_names semantics)', () => {
  const sock = { isSocket: () => true } as Stats;
  const file = { isSocket: () => false } as Stats;
  const probe = (kinds: Record<number, 'unix' | 'tcp' | 'file'>): ActivationProbe => ({
    fstat: (fd) => {
      const k = kinds[fd];
      if (k === undefined) throw new Error('EBADF: bad file descriptor');
      return k === 'file' ? file : sock;
    },
    peerCredentials: (fd) => {
      if (kinds[fd] !== 'unix') throw new Error('SO_PEERCRED reported no peer process');
      return { uid: 0, gid: 0, pid: 1, groups: [] };
    },
  });
  const run = (env: Record<string, string>, kinds: Record<number, 'unix' | 'tcp' | 'file'> = { 3: 'unix' }, pid = 4242) => {
    const e: NodeJS.ProcessEnv = { ...env };
    const result = socketActivation(e, pid, probe(kinds));
    return { result, env: e };
  };

  it('not activated: no variables, or LISTEN_PID of another process', () => {
    expect(run({}).result).toEqual({});
    const other = run({ LISTEN_PID: '1', LISTEN_FDS: '1' });
    expect(other.result.socket).toBeUndefined();
    expect(other.result.ignored).toMatch(/LISTEN_PID=1 is another process/);
    const orphan = run({ LISTEN_FDS: '1' });
    expect(orphan.result.socket).toBeUndefined();
    expect(orphan.result.ignored).toMatch(/without LISTEN_PID/);
  });

  it('picks fd 3 without names, the fd named "kms" with names, and unsets the variables', () => {
    const a = run({ LISTEN_PID: '4242', LISTEN_FDS: '1' });
    expect(a.result.socket).toEqual({ fd: 3, count: 1 });
    expect(a.env).toEqual({});
    const b = run({ LISTEN_PID: '4242', LISTEN_FDS: '3', LISTEN_FDNAMES: 'admin:metrics:kms' }, { 3: 'tcp', 4: 'tcp', 5: 'unix' });
    expect(b.result.socket).toEqual({ fd: 5, name: 'kms', count: 3 });
    const c = run({ LISTEN_PID: '4242', LISTEN_FDS: '1', LISTEN_FDNAMES: 'rustfs-kms.socket' });
    expect(c.result.socket).toEqual({ fd: 3, name: 'rustfs-kms.socket', count: 1 });
  });

  it('refuses variables meant for us that are wrong, saying what is wrong', () => {
    const refuse = (env: Record<string, string>, kinds: Record<number, 'unix' | 'tcp' | 'file'>, message: RegExp) => {
      expect(() => run(env, kinds)).toThrow(ActivationError);
      expect(() => run(env, kinds)).toThrow(message);
    };
    refuse({ LISTEN_PID: '4242', LISTEN_FDS: 'two' }, { 3: 'unix' }, /LISTEN_FDS=two is not a number/);
    refuse({ LISTEN_PID: '4242' }, { 3: 'unix' }, /LISTEN_FDS=\(unset\)/);
    refuse({ LISTEN_PID: '4242', LISTEN_FDS: '0' }, {}, /passed no file descriptors/);
    refuse({ LISTEN_PID: 'me', LISTEN_FDS: '1' }, { 3: 'unix' }, /LISTEN_PID=me is not a process id/);
    refuse({ LISTEN_PID: '4242', LISTEN_FDS: '2', LISTEN_FDNAMES: 'kms' }, { 3: 'unix', 4: 'unix' }, /names 1 descriptor\(s\).*LISTEN_FDS=2/);
    refuse({ LISTEN_PID: '4242', LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b' }, { 3: 'unix', 4: 'unix' }, /none is named "kms"/);
    refuse({ LISTEN_PID: '4242', LISTEN_FDS: '1' }, {}, /descriptor 3 is not open/);
    refuse({ LISTEN_PID: '4242', LISTEN_FDS: '1' }, { 3: 'file' }, /descriptor 3 is not a socket/);
    refuse({ LISTEN_PID: '4242', LISTEN_FDS: '1', LISTEN_FDNAMES: 'kms' }, { 3: 'tcp' }, /descriptor 3 \("kms"\) is not a listening Unix stream socket/);
  });
});

describe('systemd-socket-activate → rustfs-kmsd', () => {
  it('serves on the inherited socket named "kms"; the audit log has the client\'s kernel uid and pid', async () => {
    const dir = makeTempDir('kms-act-');
    const sock = join(dir, 'kms.sock');
    const stateDir = join(dir, 'state');
    const d = await spawnActivated({ listen: [sock], fdnames: 'kms', cwd: dir, args: ['--dev', '--state-dir', stateDir, '--socket', sock] });
    started.push(d);
    // The first connection makes systemd-socket-activate exec the daemon (same pid); it waits in the backlog.
    const first = await RawConn.open(sock);
    await waitServing(d, sock);
    expect(d.stderr()).not.toMatch(/LISTEN_.*ignor/);
    const health = await first.call(1, 'health');
    expect(health).toMatchObject({ id: 1, ok: true, result: { healthy: true } });
    first.close();

    // A separate client process: its pid and uid must be what the daemon audits, from SO_PEERCRED.
    const cli = spawn(process.execPath, [CLI_JS, '--socket', sock, '--json', 'status'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    cli.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    const clientPid = cli.pid as number;
    const code = await new Promise<number | null>((resolve) => cli.once('exit', (c) => resolve(c)));
    expect(code, out).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ rootType: 'local', keystoreType: 'file' });

    const st = await d.stop('SIGTERM');
    expect(st.code, d.stderr()).toBe(0);
    const lines = auditLines(stateDir);
    const status = lines.filter((l) => l.op === 'status');
    expect(status).toHaveLength(1);
    expect(status[0]?.caller).toMatchObject({ kind: 'peer', uid: process.getuid?.(), pid: clientPid });
    const healthLine = lines.find((l) => l.op === 'health');
    expect(healthLine?.caller).toMatchObject({ kind: 'peer', uid: process.getuid?.(), pid: process.pid });
    // The socket belongs to systemd (here: systemd-socket-activate): the daemon never unlinks it.
    expect(statSync(sock).isSocket()).toBe(true);
    const verify = await runCli(['audit', 'verify', join(stateDir, 'audit.log')]);
    expect(verify.code, verify.stdout.toString() + verify.stderr).toBe(0);
  });

  it('members of the activated socket\'s group get the data operations by default (and only those)', async () => {
    if (process.getuid?.() !== 0 || !haveCommand('setpriv')) {
      throw new Error('this test runs a client as another uid: it needs root and setpriv (util-linux)');
    }
    const dir = makeTempDir('kms-act-');
    chmodSync(dir, 0o755);
    const sock = join(dir, 'kms.sock');
    const stateDir = join(dir, 'state');
    const d = await spawnActivated({ listen: [sock], fdnames: 'kms', cwd: dir, args: ['--dev', '--state-dir', stateDir, '--socket', sock] });
    started.push(d);
    // What SocketGroup=/SocketMode=0660 do in a .socket unit.
    const gid = 4242;
    chownSync(sock, 0, gid);
    chmodSync(sock, 0o660);
    const trigger = await RawConn.open(sock);
    await waitServing(d, sock);
    trigger.close();
    const asMember = (args: string[]) => new Promise<{ code: number | null; out: string }>((resolve) => {
      const p = spawn('setpriv', ['--reuid', '4343', '--regid', String(gid), '--clear-groups', process.execPath,
        CLI_JS, '--socket', sock, '--json', ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      p.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
      p.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
      p.once('exit', (code) => resolve({ code, out }));
    });
    const health = await asMember(['health']);
    expect(health.code, health.out).toBe(0);
    const create = await asMember(['key', 'create', 'not-allowed']);
    expect(create.code).toBe(1);
    expect(create.out).toContain('AccessDenied');
    expect((await d.stop()).code).toBe(0);
  });

  it('with several sockets, takes the one named "kms" (LISTEN_FDNAMES=other:kms → fd 4)', async () => {
    const dir = makeTempDir('kms-act-');
    const other = join(dir, 'other.sock');
    const sock = join(dir, 'kms.sock');
    const stateDir = join(dir, 'state');
    const d = await spawnActivated({ listen: [other, sock], fdnames: 'other:kms', cwd: dir, args: ['--dev', '--state-dir', stateDir, '--socket', sock] });
    started.push(d);
    const trigger = await RawConn.open(sock);
    await waitServing(d, sock);
    expect(await trigger.call(7, 'health')).toMatchObject({ id: 7, ok: true });
    trigger.close();
    expect(d.stderr()).toContain('fd 4');
    expect((await d.stop()).code).toBe(0);
  });

  it('refuses to start when LISTEN_FDS is for it but invalid, naming the problem', async () => {
    const dir = makeTempDir('kms-act-');
    const cases: Array<{ env: string; fd3?: 'file'; message: RegExp }> = [
      { env: 'LISTEN_FDS=banana', message: /LISTEN_FDS=banana is not a number of file descriptors/ },
      { env: 'LISTEN_FDS=1 LISTEN_FDNAMES=a:b', message: /LISTEN_FDNAMES names 2 descriptor\(s\)/ },
      { env: 'LISTEN_FDS=1', fd3: 'file', message: /inherited descriptor 3 is not a socket/ },
    ];
    for (const c of cases) {
      // sh's $$ is the pid the daemon keeps after exec, so LISTEN_PID really is the daemon's.
      // fd 3: a plain file where the case needs one, else /dev/null (the checks before it fail first).
      const redirect = c.fd3 === 'file' ? `3<${JSON.stringify(DAEMON_JS)}` : '3</dev/null';
      const script = `export LISTEN_PID=$$ ${c.env}; exec ${JSON.stringify(process.execPath)} ${JSON.stringify(DAEMON_JS)} ` +
        `--dev --state-dir ${JSON.stringify(join(dir, 'state'))} --socket ${JSON.stringify(join(dir, 'kms.sock'))} ${redirect}`;
      const p = spawn('sh', ['-c', script], { cwd: dir, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      p.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      p.stdout.resume();
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
      const st = await exitWithin(exited, 20_000, `daemon with ${c.env}`);
      expect(st.code, stderr).toBe(1);
      expect(stderr, c.env).toMatch(c.message);
      expect(stderr).toContain('socket activation');
      expect(await canConnect(join(dir, 'kms.sock'))).toBe(false);
    }
  });

  it('LISTEN_* variables for another process are ignored (with a warning): the daemon makes its own socket', async () => {
    const dir = makeTempDir('kms-act-');
    const sock = join(dir, 'kms.sock');
    const p = spawn(process.execPath, [DAEMON_JS, '--dev', '--state-dir', join(dir, 'state'), '--socket', sock], {
      cwd: dir, env: cleanEnv({ LISTEN_PID: '1', LISTEN_FDS: '1', LISTEN_FDNAMES: 'kms' }), stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    p.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => p.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      const deadline = Date.now() + 20_000;
      while (!(stderr.includes('serving on ') && (await canConnect(sock)))) {
        if (p.exitCode !== null || Date.now() > deadline) throw new Error(`daemon did not serve:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(stderr).toMatch(/LISTEN_PID=1 is another process/);
      expect(statSync(sock).isSocket()).toBe(true);
      p.kill('SIGTERM');
      expect((await exitWithin(exited, 20_000, 'daemon')).code).toBe(0);
    } finally {
      if (p.exitCode === null) p.kill('SIGKILL');
    }
  });
});
