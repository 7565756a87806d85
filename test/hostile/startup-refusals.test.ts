// Issue 11, items 10 and 11: a refused start leaves an honest audit log and no socket behind.
// Each refusal (a root key file readable by others, a socket group that does not exist, an admin
// HTTP port another process holds, a wrong PKCS#11 PIN, a missing token or key label) adds no
// "success" line: only a daemon_start line with outcome "failure" naming the reason, and the chain
// still verifies. A socket the refused start created is removed; clients get ENOENT, not
// ECONNREFUSED from a dead file. Afterwards the daemon starts on the same state and answers health.
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  cleanupTempDirs, killAllDaemons, makeTempDir, runCli, runDaemonExpectingExit, startDaemon, type StartDaemonOptions,
} from '../helpers/daemon.js';
import { RawConn } from '../integration/wire.js';
import { freePort } from '../http/clients.js';
import { configYaml, haveSoftHsm, makeToken, writeConfig } from '../pkcs11/harness.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

interface AuditLine {
  seq: number;
  op: string;
  outcome: string;
  detail?: Record<string, unknown>;
}

function auditLines(stateDir: string): AuditLine[] {
  const path = join(stateDir, 'audit.log');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as AuditLine);
}

/** Runs a start that must be refused; checks the exit, the audit lines it added, and the socket. */
async function expectRefusedStart(options: StartDaemonOptions & { stateDir: string; socket: string }, reason: string): Promise<void> {
  const before = auditLines(options.stateDir);
  const r = await runDaemonExpectingExit(options);
  expect(r.code, r.stderr).toBe(1);
  expect(r.stderr).toContain(reason);
  const added = auditLines(options.stateDir).slice(before.length);
  for (const line of added) {
    expect(line, JSON.stringify(line)).toMatchObject({ op: 'daemon_start', outcome: 'failure' });
    expect(String(line.detail?.refused)).toContain(reason);
  }
  expect(added.length).toBeLessThanOrEqual(1);
  expect(existsSync(options.socket), `socket ${options.socket} left behind`).toBe(false);
  if (existsSync(join(options.stateDir, 'audit.log'))) {
    const verified = await runCli(['audit', 'verify', join(options.stateDir, 'audit.log')]);
    expect(verified.code, verified.stdout.toString() + verified.stderr).toBe(0);
  }
}

async function expectServes(options: StartDaemonOptions & { stateDir: string }): Promise<void> {
  const before = auditLines(options.stateDir).length;
  const d = await startDaemon(options);
  const c = await RawConn.open(d.socketPath);
  try {
    const r = await c.call(1, 'health');
    expect(r.result?.healthy, JSON.stringify(r)).toBe(true);
  } finally {
    c.close();
  }
  expect(await d.stop()).toBe(0);
  const lines = auditLines(d.stateDir).slice(before);
  expect(lines.map((l) => `${l.op}:${l.outcome}`)).toEqual(['daemon_start:success', 'health:success', 'daemon_stop:success']);
}

describe('refused starts of the real daemon', () => {
  it('a root key file readable by others (0644): a failure line naming it, no success line, no socket', async () => {
    const dir = makeTempDir('kms-refuse-');
    const where = { dir, stateDir: join(dir, 'state'), socket: join(dir, 'kms.sock') };
    await expectServes(where); // creates the state, the root key and a first start/stop pair
    const keyFile = join(where.stateDir, 'root.key');
    chmodSync(keyFile, 0o644);
    await expectRefusedStart(where, 'root key file');
    chmodSync(keyFile, 0o600);
    await expectServes(where);
  });

  it('a socket group that does not exist: refused naming it, and no kms.sock is left behind', async () => {
    const dir = makeTempDir('kms-refuse-');
    const where = { dir, stateDir: join(dir, 'state'), socket: join(dir, 'kms.sock') };
    await expectServes(where);
    await expectRefusedStart({ ...where, config: 'socket: { group: nosuchgroup }\n' }, 'socket group "nosuchgroup" does not exist');
    await expectServes(where);
  });

  it('an admin HTTP port another process holds: refused after the socket was made, and the socket is removed', async () => {
    const dir = makeTempDir('kms-refuse-');
    const where = { dir, stateDir: join(dir, 'state'), socket: join(dir, 'kms.sock') };
    await expectServes(where);
    const port = await freePort();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.0.1', resolve));
    try {
      const secret = join(dir, 'admin.secret');
      writeFileSync(secret, 'a-secret-of-some-length\n', { mode: 0o600 });
      await expectRefusedStart(
        { ...where, config: `admin_http: { listen: "127.0.0.1:${port}", access_key: admin, secret_key_file: ${secret} }\n` },
        `admin HTTP API on 127.0.0.1:${port}`,
      );
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => resolve()));
    }
    await expectServes(where);
  });
});

describe.skipIf(!haveSoftHsm())('refused starts with a PKCS#11 root', () => {
  it('a wrong PIN, a missing token and a missing key label: failure lines only, no socket', async () => {
    const token = makeToken('kms-refuse', '739251');
    const init = await runCli(['init', '--config', writeConfig(token, { mode: 'wrap' })], { env: token.env });
    expect(init.code, init.stderr).toBe(0);
    const dir = makeTempDir('kms-refuse-');
    const where = { dir, stateDir: join(dir, 'state'), socket: join(dir, 'kms.sock') };
    const good = { ...where, config: configYaml(token, { mode: 'wrap' }), env: token.env };
    await expectServes(good);
    await expectRefusedStart(
      { ...where, config: configYaml(token, { mode: 'wrap', pinEnv: 'KMS_TEST_PIN' }), env: { ...token.env, KMS_TEST_PIN: '271828' } },
      'CKR_PIN_INCORRECT',
    );
    await expectRefusedStart({ ...where, config: configYaml(token, { mode: 'wrap', tokenLabel: 'kms-absent' }), env: token.env }, 'kms-absent');
    await expectRefusedStart({ ...where, config: configYaml(token, { mode: 'wrap', keyLabel: 'no-such-key' }), env: token.env }, 'no-such-key');
    await expectServes(good);
  });
});
