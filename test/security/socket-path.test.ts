// Socket path attacks at start-up. test/integration/startup.test.ts already covers a symlink, a
// regular file, a live daemon, a stale socket of ours (replaced), a stale socket chowned to another
// uid, and a 0777 socket directory. This file adds what is left: a sticky world-writable directory
// (1777, like /tmp), a directory owned by another uid, a group-writable directory, and a socket that
// a process of another uid really bound and still listens on; plus the mode and group the daemon
// gives its own socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import {
  cleanEnv, cleanupTempDirs, killAllDaemons, runDaemonExpectingExit, startDaemon, type DaemonHandle,
} from '../helpers/daemon.js';
import { sharedTempDir } from '../helpers/other-user.js';

const children = new Set<ChildProcess>();

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await killAllDaemons();
  cleanupTempDirs();
});

function expectRefused(r: { code: number | null; signal: NodeJS.Signals | null; stderr: string }, ...mentions: string[]): void {
  expect(r.signal, r.stderr).toBeNull();
  expect(r.code, r.stderr).toBe(1);
  for (const m of mentions) expect(r.stderr).toContain(m);
}

/** A node process as uid/gid 65534 listening on `path`; it answers "mine" to every connection. */
async function foreignListener(path: string): Promise<ChildProcess> {
  const script = `
    const net = require('node:net');
    const srv = net.createServer((s) => s.end('mine\\n'));
    srv.listen(${JSON.stringify(path)}, () => console.log('listening'));
  `;
  const p = spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, '-e', script], {
    cwd: '/', env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(p);
  let err = '';
  p.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const first = await new Promise<string>((resolve) => {
    createInterface({ input: p.stdout! }).once('line', resolve);
    p.once('exit', () => resolve(`exited: ${err}`));
  });
  expect(first).toBe('listening');
  return p;
}

function ask(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.createConnection({ path });
    s.setEncoding('utf8').on('data', (d: string) => {
      got += d;
    });
    s.once('error', reject);
    s.once('close', () => resolve(got));
  });
}

describe('socket path attacks refused at start-up', () => {
  it('a sticky world-writable directory (1777, like /tmp) is refused: the sticky bit stops deletion, not a squatter binding the name first', async () => {
    const dir = sharedTempDir('kms-sec-sock-'); // uid 65534 binds or connects below it
    const sockDir = join(dir, 'shared');
    mkdirSync(sockDir);
    chmodSync(sockDir, 0o1777);
    const socket = join(sockDir, 'kms.sock');
    const r = await runDaemonExpectingExit({ dir, socket });
    expectRefused(r, `socket directory ${sockDir} is writable by others (mode 1777)`);
    expect(readdirSync(sockDir)).toEqual([]);
  });

  it('a socket directory owned by another uid is refused, naming the owner', async () => {
    const dir = sharedTempDir('kms-sec-sock-'); // uid 65534 binds or connects below it
    const sockDir = join(dir, 'theirs');
    mkdirSync(sockDir, { mode: 0o755 });
    chownSync(sockDir, 65534, 65534);
    const r = await runDaemonExpectingExit({ dir, socket: join(sockDir, 'kms.sock') });
    expectRefused(r, `socket directory ${sockDir} is owned by uid 65534, not the daemon (uid 0) or root`);
    expect(readdirSync(sockDir)).toEqual([]);
  });

  it('a socket that a process of another uid bound and still listens on is refused as foreign, and stays theirs', async () => {
    const dir = sharedTempDir('kms-sec-sock-');
    const sockDir = join(dir, 'run');
    mkdirSync(sockDir, { mode: 0o755 });
    chownSync(sockDir, 65534, 65534); // let uid 65534 bind there ...
    const socket = join(sockDir, 'kms.sock');
    const squatter = await foreignListener(socket);
    chownSync(sockDir, 0, 0); // ... then hand the directory back to root, 0755: only the socket is foreign
    chmodSync(sockDir, 0o755);
    expect(lstatSync(socket).isSocket()).toBe(true);
    expect(lstatSync(socket).uid).toBe(65534);

    const r = await runDaemonExpectingExit({ dir, socket });
    expectRefused(r, `socket ${socket} is owned by uid 65534, not the daemon (uid 0)`);
    // Not unlinked, not taken over: the other process still answers on it.
    expect(lstatSync(socket).uid).toBe(65534);
    expect(await ask(socket)).toBe('mine\n');
    squatter.kill('SIGKILL');
  });

  // Regression (fixed bug): prepareSocketPath (src/daemon/socket.ts line 30) refuses a socket directory writable by
  // OTHERS (mode & 0o002) but not one writable by its GROUP. With /run/rustfs-kms as root:rustfs-kms
  // 0775, every member of that group (the socket's clients, in the default deployment) can unlink
  // kms.sock and bind an impostor: the other clients then send it their plaintexts and ciphertexts
  // and take its "data keys". OpenSSH's safe_path() refuses group-writable directories for the same
  // reason. Fix: refuse (mode & 0o022) and say "writable by group <name> (mode 0775)".
  it('a group-writable socket directory (0775) is refused', async () => {
    const dir = sharedTempDir('kms-sec-sock-'); // uid 65534 binds or connects below it
    const sockDir = join(dir, 'grp');
    mkdirSync(sockDir);
    chownSync(sockDir, 0, 65534);
    chmodSync(sockDir, 0o775);
    // Today the daemon starts and serves here; the correct behaviour is to exit before serving.
    let started: DaemonHandle | undefined;
    const refusal = await startDaemon({ dir, socket: join(sockDir, 'kms.sock') }).then(
      (d) => {
        started = d;
        return '';
      },
      (err: Error) => err.message,
    );
    await started?.stop();
    expect(refusal).toContain('exited before serving (code 1');
    expect(refusal).toContain(sockDir);
    expect(refusal).toContain('writable by its group');
  });
});

describe('the socket the daemon makes', () => {
  it('has exactly the configured mode and group; another uid outside that group cannot even connect, a member can', async () => {
    const dir = sharedTempDir('kms-sec-sock-');
    const socket = join(dir, 'kms.sock');
    const d = await startDaemon({ dir, socket, config: `socket: { path: ${socket}, mode: "0660", group: nogroup }\n` });
    const st = lstatSync(socket);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o7777).toBe(0o660);
    expect(st.uid).toBe(0);
    expect(st.gid).toBe(65534);
    // The kernel keeps out whoever the mode excludes, before the policy is even asked.
    const probe = `
      const s = require('node:net').createConnection(${JSON.stringify(socket)});
      s.on('connect', () => { console.log('connected'); s.destroy(); });
      s.on('error', (e) => console.log(e.code));
    `;
    const run = (ids: string[]) => new Promise<string>((resolve) => {
      let out = '';
      const p = spawn('setpriv', [...ids, '--', process.execPath, '-e', probe], { cwd: '/', env: cleanEnv() });
      p.stdout.setEncoding('utf8').on('data', (x: string) => {
        out += x;
      });
      p.once('close', () => resolve(out.trim()));
    });
    expect(await run(['--reuid=4242', '--regid=4242', '--clear-groups'])).toBe('EACCES');
    expect(await run(['--reuid=4242', '--regid=4242', '--groups=65534'])).toBe('connected');
    const c = await KmsClient.connect(d.socketPath);
    expect((await c.health()).healthy).toBe(true);
    await c.close();
    expect(await d.stop()).toBe(0);
    expect(existsSync(socket)).toBe(false);
  });
});
