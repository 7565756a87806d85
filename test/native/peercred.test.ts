// SO_PEERCRED / SO_PEERGROUPS over real Unix sockets: an in-process client, a client running as
// another user (setpriv), and the refusal paths.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native, type PeerCredentials } from '../../src/native/index.js';
import { sharedTempDir } from '../helpers/other-user.js';

function fdOf(socket: net.Socket | net.Server): number {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('no fd on this socket handle');
  return fd;
}

let dir: string;
let socketPath: string;
let server: net.Server;
// Each accepted connection's credentials, read on the server side as soon as it is accepted.
const accepted: Array<{ creds?: PeerCredentials; error?: Error; socket: net.Socket }> = [];
let onAccept: (() => void) | undefined;

beforeAll(async () => {
  dir = sharedTempDir('rustfs-kms-peercred-'); // uid 65534 must reach the socket
  socketPath = join(dir, 'kms.sock');
  server = net.createServer((socket) => {
    try {
      accepted.push({ creds: native.peerCredentials(fdOf(socket)), socket });
    } catch (error) {
      accepted.push({ error: error as Error, socket });
    }
    onAccept?.();
  });
  server.listen(socketPath);
  await once(server, 'listening');
  chmodSync(socketPath, 0o777);
});

afterAll(async () => {
  for (const a of accepted) a.socket.destroy();
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

function nextAccept(): Promise<(typeof accepted)[number]> {
  const n = accepted.length;
  return new Promise((resolve) => {
    const check = () => {
      if (accepted.length > n) {
        onAccept = undefined;
        resolve(accepted[n]!);
      }
    };
    onAccept = check;
    check();
  });
}

describe('peerCredentials over a Unix socket', () => {
  it('in-process client: uid, gid, pid and groups of this process', async () => {
    const got = nextAccept();
    const client = net.connect(socketPath);
    await once(client, 'connect');
    const a = await got;
    expect(a.error).toBeUndefined();
    const c = a.creds!;
    expect(c.uid).toBe(process.getuid!());
    expect(c.gid).toBe(process.getgid!());
    expect(c.pid).toBe(process.pid);
    expect(Array.isArray(c.groups)).toBe(true);
    for (const g of c.groups) expect(Number.isInteger(g)).toBe(true);
    // The kernel's supplementary group list (process.getgroups() also adds the egid, so use /proc).
    const groupsLine = /^Groups:[ \t]*([^\n]*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]!.trim();
    const ownGroups = groupsLine === '' ? [] : groupsLine.split(/\s+/).map(Number);
    expect([...c.groups].sort((x, y) => x - y)).toEqual(ownGroups.sort((x, y) => x - y));
    expect(Object.keys(c).sort()).toEqual(['gid', 'groups', 'pid', 'uid']);

    // The client side sees the server, which is this process too.
    const back = native.peerCredentials(fdOf(client));
    expect(back).toMatchObject({ uid: process.getuid!(), gid: process.getgid!(), pid: process.pid });
    client.destroy();
  });

  /** Connects from a child started under setpriv; resolves with what the server read. */
  async function connectAs(setprivArgs: string[]) {
    const got = nextAccept();
    const script = `
      const s = require('node:net').connect(${JSON.stringify(socketPath)}, () => process.stdout.write('connected\\n'));
      s.on('error', (e) => { process.stderr.write(String(e)); process.exit(2); });
      s.on('close', () => process.exit(0));
      setTimeout(() => process.exit(3), 20000);
    `;
    const child = spawn('setpriv', [...setprivArgs, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = once(child, 'close');
    const a = await Promise.race([got, exited.then(([code]) => Promise.reject(new Error(`client exited ${code}: ${stderr}`)))]);
    a.socket.destroy(); // lets the child exit cleanly
    const [code] = (await exited) as [number | null];
    expect(code, stderr).toBe(0);
    return { a, pid: child.pid };
  }

  it('a client running as uid/gid 65534 with no groups is reported as such, with its own pid', async () => {
    const { a, pid } = await connectAs(['--reuid=65534', '--regid=65534', '--clear-groups']);
    expect(a.error).toBeUndefined();
    // setpriv execs node, so the connecting process is the spawned pid.
    expect(a.creds).toEqual({ uid: 65534, gid: 65534, pid, groups: [] });
    expect(pid).not.toBe(process.pid);
  });

  it('supplementary groups of the peer come through SO_PEERGROUPS', async () => {
    const { a, pid } = await connectAs(['--reuid=65534', '--regid=65534', '--groups=4,27,100,65533']);
    expect(a.error).toBeUndefined();
    expect(a.creds!.uid).toBe(65534);
    expect(a.creds!.gid).toBe(65534);
    expect(a.creds!.pid).toBe(pid);
    expect([...a.creds!.groups].sort((x, y) => x - y)).toEqual([4, 27, 100, 65533]);
  });

  it('more than 64 supplementary groups (the first SO_PEERGROUPS buffer) are all reported', async () => {
    const many = Array.from({ length: 100 }, (_, i) => 1000 + i);
    const { a } = await connectAs(['--reuid=65534', '--regid=65534', `--groups=${many.join(',')}`]);
    expect(a.error).toBeUndefined();
    expect([...a.creds!.groups].sort((x, y) => x - y)).toEqual(many);
  });

  it('credentials are those of the connecting process, not of the later reader', async () => {
    // A socketpair-like check via two connections: both peers are this process, and the server's
    // view of each stays stable when read again later.
    const got = nextAccept();
    const client = net.connect(socketPath);
    await once(client, 'connect');
    const a = await got;
    const again = native.peerCredentials(fdOf(a.socket));
    expect(again).toEqual(a.creds);
    client.destroy();
  });
});

describe('peerCredentials refusals', () => {
  it('a regular file descriptor throws an Error naming SO_PEERCRED', () => {
    const path = join(dir, 'plain-file');
    const fd = openSync(path, 'w');
    try {
      expect(() => native.peerCredentials(fd)).toThrow(Error);
      expect(() => native.peerCredentials(fd)).toThrow(/SO_PEERCRED/);
      expect(() => native.peerCredentials(fd)).toThrow(/socket/i); // ENOTSOCK
    } finally {
      closeSync(fd);
    }
  });

  it('a closed / never-opened descriptor throws', () => {
    expect(() => native.peerCredentials(99999)).toThrow(/SO_PEERCRED/);
    expect(() => native.peerCredentials(99999)).toThrow(/Bad file descriptor/);
  });

  it('a TCP socket (no peer process) is refused rather than guessed', async () => {
    const tcp = net.createServer();
    tcp.listen(0, '127.0.0.1');
    await once(tcp, 'listening');
    const port = (tcp.address() as net.AddressInfo).port;
    const acceptedTcp = once(tcp, 'connection');
    const client = net.connect(port, '127.0.0.1');
    await once(client, 'connect');
    const [serverSide] = (await acceptedTcp) as [net.Socket];
    try {
      expect(() => native.peerCredentials(fdOf(serverSide))).toThrow(/SO_PEERCRED/);
      expect(() => native.peerCredentials(fdOf(client))).toThrow(/SO_PEERCRED/);
    } finally {
      serverSide.destroy();
      client.destroy();
      tcp.close();
    }
  });

  it('bad fd arguments throw errors naming fd', () => {
    expect(() => native.peerCredentials(-1)).toThrow(RangeError);
    expect(() => native.peerCredentials(-1)).toThrow(/fd/);
    expect(() => native.peerCredentials(1.5)).toThrow(/fd must be an integer/);
    expect(() => native.peerCredentials(2 ** 31)).toThrow(/fd must be an integer/);
    expect(() => native.peerCredentials(Number.NaN)).toThrow(/fd/);
    expect(() => (native.peerCredentials as (x: unknown) => unknown)('3')).toThrow(TypeError);
    expect(() => (native.peerCredentials as () => unknown)()).toThrow(/fd must be a number/);
  });
});
