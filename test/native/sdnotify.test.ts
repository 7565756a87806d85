// sd_notify datagrams: a python3 receiver binds an AF_UNIX SOCK_DGRAM socket (Node has no Unix
// datagram sockets in core) and prints every datagram as a JSON line.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { native } from '../../src/native/index.js';

const RECEIVER = `
import json, socket, sys
addr = sys.argv[1]
if addr.startswith('@'):
    addr = '\\0' + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(addr)
print(json.dumps({'bound': sys.argv[1]}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({'hex': data.hex()}), flush=True)
`;

class Receiver {
  private readonly queue: Buffer[] = [];
  private waiter: ((b: Buffer) => void) | undefined;
  private constructor(readonly child: ChildProcessWithoutNullStreams) {}

  static async start(address: string): Promise<Receiver> {
    const child = spawn('python3', ['-u', '-c', RECEIVER, address], { stdio: ['pipe', 'pipe', 'pipe'] });
    const r = new Receiver(child);
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const lines = createInterface({ input: child.stdout });
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`receiver exited ${code}: ${stderr}`)));
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as { bound?: string; hex?: string };
        if (msg.bound !== undefined) resolve();
        else if (msg.hex !== undefined) r.push(Buffer.from(msg.hex, 'hex'));
      });
    });
    return r;
  }

  private push(b: Buffer): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w(b);
    } else this.queue.push(b);
  }

  next(timeoutMs = 5000): Promise<Buffer> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no datagram arrived')), timeoutMs);
      this.waiter = (b) => {
        clearTimeout(t);
        resolve(b);
      };
    });
  }

  stop(): void {
    this.child.kill();
  }
}

let dir: string;
const receivers: Receiver[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rustfs-kms-notify-'));
});
afterAll(() => {
  for (const r of receivers) r.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function receiver(address: string): Promise<Receiver> {
  const r = await Receiver.start(address);
  receivers.push(r);
  return r;
}

describe('sdNotify to a filesystem socket', () => {
  it('delivers READY=1 and a multi-line status as single datagrams, byte for byte', async () => {
    const path = join(dir, 'notify.sock');
    const r = await receiver(path);
    native.sdNotify(path, 'READY=1');
    expect((await r.next()).toString('utf8')).toBe('READY=1');
    native.sdNotify(path, 'STATUS=serving\nWATCHDOG=1');
    expect((await r.next()).toString('utf8')).toBe('STATUS=serving\nWATCHDOG=1');
    native.sdNotify(path, 'STATUS=schlüssel bereit ✓');
    expect((await r.next()).equals(Buffer.from('STATUS=schlüssel bereit ✓', 'utf8'))).toBe(true);
    native.sdNotify(path, 'STOPPING=1');
    expect((await r.next()).toString('utf8')).toBe('STOPPING=1');
  });

  it('a socket path of the maximum length (107 bytes) works', async () => {
    const base = join(dir, 'n');
    const path = base + 'x'.repeat(107 - base.length);
    expect(Buffer.byteLength(path)).toBe(107);
    const r = await receiver(path);
    native.sdNotify(path, 'READY=1');
    expect((await r.next()).toString()).toBe('READY=1');
  });
});

describe('sdNotify to an abstract socket', () => {
  it("delivers to '@name' (leading NUL, no trailing NUL in the address)", async () => {
    const name = `@rustfs-kms-test-${process.pid}-${randomBytes(6).toString('hex')}`;
    const r = await receiver(name);
    native.sdNotify(name, 'READY=1');
    expect((await r.next()).toString()).toBe('READY=1');
    native.sdNotify(name, 'STATUS=serving\nWATCHDOG=1');
    expect((await r.next()).toString()).toBe('STATUS=serving\nWATCHDOG=1');
  });

  it('the abstract name is matched exactly (a prefix or longer name does not reach it)', async () => {
    const name = `@rustfs-kms-exact-${randomBytes(6).toString('hex')}`;
    const r = await receiver(name);
    expect(() => native.sdNotify(name.slice(0, -1), 'READY=1')).toThrow(/sendto NOTIFY_SOCKET failed/);
    expect(() => native.sdNotify(name + 'x', 'READY=1')).toThrow(/sendto NOTIFY_SOCKET failed/);
    native.sdNotify(name, 'X=1');
    expect((await r.next()).toString()).toBe('X=1');
  });
});

describe('sdNotify refusals', () => {
  it('relative and empty paths throw with a message', () => {
    expect(() => native.sdNotify('relative', 'READY=1')).toThrow(Error);
    expect(() => native.sdNotify('relative', 'READY=1')).toThrow(/absolute path or an abstract name/);
    expect(() => native.sdNotify('./notify.sock', 'READY=1')).toThrow(/absolute path/);
    expect(() => native.sdNotify('', 'READY=1')).toThrow(/NOTIFY_SOCKET must be 1\.\.107 bytes/);
  });

  it('a path that is too long throws rather than being truncated', () => {
    expect(() => native.sdNotify('/' + 'a'.repeat(107), 'READY=1')).toThrow(/1\.\.107 bytes/);
  });

  it('a missing socket throws naming the failed sendto', () => {
    expect(() => native.sdNotify(join(dir, 'nobody-listens.sock'), 'READY=1')).toThrow(/sendto NOTIFY_SOCKET failed: No such file/);
  });

  it('non-string arguments throw TypeErrors naming them', () => {
    const call = native.sdNotify as (...args: unknown[]) => void;
    expect(() => call()).toThrow(TypeError);
    expect(() => call()).toThrow(/socketPath must be a string/);
    expect(() => call(Buffer.from('/run/notify'), 'READY=1')).toThrow(/socketPath must be a string/);
    expect(() => call('/run/notify', 1)).toThrow(TypeError);
    expect(() => call('/run/notify', 1)).toThrow(/message must be a string/);
    expect(() => call('/run/notify', Buffer.from('READY=1'))).toThrow(/message must be a string/);
  });

  // Regression (fixed addon bug): with the message missing, SdNotify blames socketPath because its
  // first check is "Length() >= 2 && info[0].IsString()". Expected: the error names message.
  it('a missing message is reported as "message must be a string"', () => {
    const call = native.sdNotify as (...args: unknown[]) => void;
    expect(() => call('/run/notify')).toThrow(/message must be a string/);
  });
});
