// The Vault API test server as a child process (node test/vault-server/main.mjs), driven over stdin,
// with a real daemon in front of it.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupTempDirs, repoRoot } from '../helpers/daemon.js';
import { codeOf, startVaultDaemon, type VaultDaemon } from './harness.js';
import type { Backends, VaultTarget } from './target.js';

let child: ChildProcess;
let address = '';
let rootToken = '';
const replies: Record<string, unknown>[] = [];
let d: VaultDaemon | undefined;

function command(line: string): Promise<Record<string, unknown>> {
  const want = line.split(' ')[0];
  const seen = replies.length;
  child.stdin?.write(`${line}\n`);
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = () => {
      const reply = replies.slice(seen).find((r) => r.ok === want);
      if (reply !== undefined) resolve(reply);
      else if (Date.now() - started > 10_000) reject(new Error(`no answer to "${line}"`));
      else setTimeout(check, 20);
    };
    check();
  });
}

async function api(method: string, path: string, body?: unknown): Promise<number> {
  const res = await fetch(`${address}/v1/${path}`, {
    method, headers: { 'X-Vault-Token': rootToken, 'Content-Type': 'application/json' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  await res.arrayBuffer();
  return res.status;
}

beforeAll(async () => {
  child = spawn(process.execPath, [join(repoRoot, 'test', 'vault-server', 'main.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const first = new Promise<void>((resolve) => {
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as Record<string, unknown>;
      if (typeof msg.address === 'string') {
        address = msg.address;
        rootToken = String(msg.root_token);
        resolve();
      } else {
        replies.push(msg);
      }
    });
  });
  await first;
});

afterAll(async () => {
  await d?.stop();
  child.stdin?.end();
  await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  cleanupTempDirs();
});

describe('Vault test server as a child process', () => {
  it('serves sys/health, mounts, and a daemon; down and up switch from stdin', async () => {
    const health = await fetch(`${address}/v1/sys/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ initialized: true, sealed: false, standby: false });

    expect(await api('POST', 'sys/mounts/transit', { type: 'transit' })).toBe(204);
    expect(await api('POST', 'transit/keys/rustfs-kms', {})).toBe(204);
    // secret/ is KV v2 already, as on `vault server -dev`.
    const b: Backends = { id: 'child', namespace: '', transitMount: 'transit', transitKey: 'rustfs-kms', kvMount: 'secret', prefix: 'rustfs-kms' };
    const target = { address } as VaultTarget;
    d = await startVaultDaemon({ target, backends: b, auth: { method: 'token', token: rootToken }, timeoutSecs: 1, retryAttempts: 0 });
    await d.kms.createKey('child-key');
    await d.kms.createKey('other-key');
    const sealed = await d.kms.encrypt('child-key', Buffer.from('cached'));

    await command('down');
    expect((await d.kms.decrypt(sealed.ciphertext)).plaintext.toString()).toBe('cached');
    const r = await codeOf(d.kms.createKey('while-down'));
    expect(r.code).toBe('BackendUnavailable');
    expect(r.message).toContain(address);

    await command('up');
    expect((await d.kms.createKey('after-up')).keyId).toBe('after-up');
    const recorded = (await command('requests')).requests as { path: string }[];
    expect(recorded.some((x) => x.path === 'secret/data/rustfs-kms/child-key')).toBe(true);
  });
});
