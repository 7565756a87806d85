// Who may call: the kernel's identity of a client process running as ANOTHER uid (setpriv), the
// built-in default policy, configured rules (uid, gid, key globs, allowed operations, first match),
// claimed ctx that grants nothing, every refusal in the audit log, and SIGHUP reloading the policy
// under live connections. Real daemon, real socket, real client processes; no mocks.
//
// The tests run as root. The daemon's socket lives in a 0755 directory with mode 0666 so that
// uid 65534 can reach it (its state directory stays 0700); the client script lives in another 0755
// directory and imports the built KmsClient (dist/src/rpc/client.js).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import {
  CLIENT_JS, cleanupTempDirs, killAllDaemons, startDaemon, cleanEnv, type DaemonHandle,
} from '../helpers/daemon.js';
import { othersCannotReach, sharedTempDir } from '../helpers/other-user.js';
// uid 65534 must read the checkout (it runs its build): otherwise these skip and say why.
const OTHERS = othersCannotReach();
const skipped = OTHERS !== undefined ? ` (skipped: ${OTHERS})` : '';

// ---- a KMS client running as another uid ----------------------------------------------------------

const CLIENT_SCRIPT = `
import { createInterface } from 'node:readline';
const [, , clientUrl, socketPath] = process.argv;
const { KmsClient } = await import(clientUrl);
const out = (v) => process.stdout.write(JSON.stringify(v, function (k, x) {
  const orig = this[k];
  return orig instanceof Uint8Array ? { $bin: Buffer.from(orig).toString('base64') } : x;
}) + '\\n');
const revive = (k, v) => (v !== null && typeof v === 'object' && typeof v.$bin === 'string' ? Buffer.from(v.$bin, 'base64') : v);
let client;
try {
  // reconnect: false — a lost connection is never silently replaced, so "the same connection" holds.
  client = await KmsClient.connect(socketPath, { reconnect: false, timeoutMs: 15000 });
} catch (err) {
  out({ ready: false, error: String(err && err.message) });
  process.exit(3);
}
out({ ready: true, pid: process.pid, uid: process.getuid(), gid: process.getgid(), groups: process.getgroups() });
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line, revive);
  try {
    const result = await client.call(cmd.op, cmd.args ?? {}, cmd.ctx ? { ctx: cmd.ctx } : undefined);
    out({ ok: true, result, connected: client.connected });
  } catch (err) {
    out({ ok: false, code: err.code, message: err.message, connected: client.connected });
  }
}
await client.close();
`;

let scriptPath = '';

function clientScript(): string {
  if (scriptPath === '') {
    const dir = sharedTempDir('kms-sec-client-');
    scriptPath = join(dir, 'uid-client.mjs');
    writeFileSync(scriptPath, CLIENT_SCRIPT, { mode: 0o644 });
    chmodSync(scriptPath, 0o644);
  }
  return scriptPath;
}

interface Answer {
  ok: boolean;
  code?: string;
  message?: string;
  result?: any;
  connected: boolean;
}

const reviveBin = (_k: string, v: any): any =>
  v !== null && typeof v === 'object' && typeof v.$bin === 'string' ? Buffer.from(v.$bin, 'base64') : v;

function encodeBin(this: any, k: string, v: unknown): unknown {
  const orig = this[k];
  return orig instanceof Uint8Array ? { $bin: Buffer.from(orig).toString('base64') } : v;
}

/** One connection to the daemon, held by a node process running as uid/gid (setpriv). */
class UidClient {
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  private stderrText = '';
  private exited = false;
  pid = 0;

  private constructor(private readonly proc: ChildProcess) {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.waiter?.();
    });
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderrText += d;
    });
    proc.once('exit', () => {
      this.exited = true;
      this.waiter?.();
    });
  }

  static async start(socket: string, who: { uid: number; gid: number; groups?: number[] }): Promise<UidClient> {
    const ids = [`--reuid=${who.uid}`, `--regid=${who.gid}`];
    ids.push(who.groups === undefined || who.groups.length === 0 ? '--clear-groups' : `--groups=${who.groups.join(',')}`);
    const proc = spawn('setpriv', [...ids, '--', process.execPath, clientScript(), pathToFileURL(CLIENT_JS).href, socket], {
      cwd: '/',
      env: cleanEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    live.add(proc);
    proc.once('exit', () => live.delete(proc));
    const c = new UidClient(proc);
    const hello = JSON.parse(await c.nextLine());
    if (hello.ready !== true) throw new Error(`client as uid ${who.uid} could not connect: ${hello.error}; stderr: ${c.stderrText}`);
    // The kernel identity the daemon will see is the one setpriv gave the process: check it here.
    expect(hello.uid).toBe(who.uid);
    expect(hello.gid).toBe(who.gid);
    c.pid = hello.pid;
    expect(c.pid).toBe(proc.pid); // setpriv execs node: the pid the daemon sees is this child's
    return c;
  }

  private async nextLine(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = this.lines.shift();
      if (l !== undefined) return l;
      if (this.exited) throw new Error(`client process exited; stderr:\n${this.stderrText}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no answer from the client process within ${timeoutMs} ms; stderr:\n${this.stderrText}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = undefined;
          r();
        };
      });
    }
  }

  async call(op: string, args: Record<string, unknown> = {}, ctx?: Record<string, unknown>): Promise<Answer> {
    this.proc.stdin!.write(JSON.stringify({ op, args, ...(ctx !== undefined ? { ctx } : {}) }, encodeBin) + '\n');
    return JSON.parse(await this.nextLine(), reviveBin) as Answer;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin!.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(t);
  }
}

const live = new Set<ChildProcess>();

// ---- small helpers ------------------------------------------------------------------------------

interface AuditLine {
  seq: number;
  op: string;
  key_id?: string;
  caller?: { uid: number; gid: number; pid: number; groups: number[] };
  claimed?: Record<string, unknown>;
  outcome: string;
  error_code?: string;
  detail?: Record<string, unknown>;
}

function auditLines(d: DaemonHandle): AuditLine[] {
  return readFileSync(join(d.stateDir, 'audit.log'), 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as AuditLine);
}

/** A 0755 working directory (socket beside it reachable by other uids); the state dir inside stays 0700. */
function reachableDir(): string {
  return sharedTempDir('kms-sec-access-');
}

async function rootClient(d: DaemonHandle): Promise<KmsClient> {
  return KmsClient.connect(d.socketPath, { timeoutMs: 15_000 });
}

async function until<T>(fn: () => Promise<T>, done: (v: T) => boolean, tries = 100, delayMs = 50): Promise<T> {
  let v = await fn();
  for (let i = 1; i < tries && !done(v); i++) {
    await new Promise((r) => setTimeout(r, delayMs));
    v = await fn();
  }
  return v;
}

function expectDenied(a: Answer, reason?: string): void {
  expect(a.ok, JSON.stringify(a)).toBe(false);
  expect(a.code).toBe('AccessDenied');
  if (reason !== undefined) expect(a.message).toContain(reason);
  expect(a.connected).toBe(true); // a refusal is an answer, not a disconnect
}

function expectServed(a: Answer): any {
  expect(a.ok, JSON.stringify(a)).toBe(true);
  return a.result;
}

const NOBODY = { uid: 65534, gid: 65534 };

afterAll(async () => {
  for (const p of live) p.kill('SIGKILL');
  await killAllDaemons();
  cleanupTempDirs();
});

// ---- the built-in default policy ------------------------------------------------------------------

describe.skipIf(OTHERS !== undefined)(`default policy (no policy in the config)${skipped}`, () => {
  const groupName = `kmssec${process.pid}`;
  let groupGid = 0;
  let d: DaemonHandle;
  let root: KmsClient;

  beforeAll(async () => {
    execFileSync('groupadd', [groupName]);
    groupGid = Number(execFileSync('getent', ['group', groupName], { encoding: 'utf8' }).split(':')[2]);
    expect(Number.isInteger(groupGid) && groupGid > 0).toBe(true);
    const dir = reachableDir();
    d = await startDaemon({ dir, config: `socket: { path: ${join(dir, 'kms.sock')}, mode: "0666", group: ${groupName} }\n` });
    root = await rootClient(d);
    await root.createKey('app-1');
  });

  afterAll(async () => {
    await root?.close();
    await d?.stop();
    try {
      execFileSync('groupdel', [groupName]);
    } catch {
      // already gone
    }
  });

  it('a uid outside the socket group (not the daemon, not root) is refused every operation', async () => {
    const c = await UidClient.start(d.socketPath, NOBODY);
    try {
      for (const [op, args] of [
        ['health', {}],
        ['status', {}],
        ['describe_key', { key_id: 'app-1' }],
        ['generate_data_key', { key_id: 'app-1' }],
        ['create_key', { key_id: 'nobody-made' }],
        ['list_keys', {}],
      ] as const) {
        expectDenied(await c.call(op, args), 'no policy rule matches the caller');
      }
    } finally {
      await c.close();
    }
    await expect(root.describeKey('nobody-made')).rejects.toMatchObject({ code: 'KeyNotFound' });
    // Every refusal is in the audit log with the kernel's uid and pid of that process.
    const mine = auditLines(d).filter((l) => l.caller?.pid === c.pid);
    expect(mine.map((l) => l.op)).toEqual(['health', 'status', 'describe_key', 'generate_data_key', 'create_key', 'list_keys']);
    for (const l of mine) {
      expect(l.outcome).toBe('denied');
      expect(l.error_code).toBe('AccessDenied');
      expect(l.caller?.uid).toBe(65534);
      expect(l.caller?.gid).toBe(65534);
    }
    expect(mine.find((l) => l.op === 'create_key')?.key_id).toBe('nobody-made');
  });

  it('a socket-group member (supplementary group, SO_PEERGROUPS) may use the data operations but not create_key or lifecycle operations', async () => {
    const c = await UidClient.start(d.socketPath, { ...NOBODY, groups: [groupGid] });
    try {
      expect(expectServed(await c.call('health')).healthy).toBe(true);
      expectServed(await c.call('status'));
      expect(expectServed(await c.call('describe_key', { key_id: 'app-1' })).state).toBe('Enabled');
      const context = { bucket: 'b' };
      const dk = expectServed(await c.call('generate_data_key', { key_id: 'app-1', context }));
      const back = expectServed(await c.call('decrypt', { ciphertext: dk.ciphertext, context }));
      expect(Buffer.compare(back.plaintext, dk.plaintext)).toBe(0);
      const enc = expectServed(await c.call('encrypt', { key_id: 'app-1', plaintext: Buffer.from('hello') }));
      expectServed(await c.call('re_encrypt', { ciphertext: enc.ciphertext }));
      expect(expectServed(await c.call('generate_data_key_batch', { key_id: 'app-1', count: 3 })).keys).toHaveLength(3);

      for (const [op, args] of [
        ['create_key', { key_id: 'group-made' }],
        ['list_keys', {}],
        ['rotate_key', { key_id: 'app-1' }],
        ['disable_key', { key_id: 'app-1' }],
        ['schedule_key_deletion', { key_id: 'app-1', pending_days: 7 }],
      ] as const) {
        expectDenied(await c.call(op, args), `does not allow ${op}`);
      }
    } finally {
      await c.close();
    }
    // The refused lifecycle operations did nothing.
    await expect(root.describeKey('group-made')).rejects.toMatchObject({ code: 'KeyNotFound' });
    const info = await root.describeKey('app-1');
    expect(info.state).toBe('Enabled');
    expect(info.currentVersion).toBe(1);
    const denied = auditLines(d).filter((l) => l.caller?.pid === c.pid && l.outcome === 'denied');
    expect(denied.map((l) => l.op)).toEqual(['create_key', 'list_keys', 'rotate_key', 'disable_key', 'schedule_key_deletion']);
    for (const l of denied) {
      expect(l.caller?.uid).toBe(65534);
      expect(l.caller?.groups).toContain(groupGid);
    }
  });

  it('claimed ctx (principal "root") is recorded under "claimed" and grants nothing', async () => {
    const ctx = { principal: 'root', user_agent: 'rustfs-kms/0.1.0', request_id: 'req-claims-root', extra: { uid: '0', group: groupName } };
    const outsider = await UidClient.start(d.socketPath, NOBODY);
    const member = await UidClient.start(d.socketPath, { ...NOBODY, groups: [groupGid] });
    try {
      expectDenied(await outsider.call('generate_data_key', { key_id: 'app-1' }, ctx));
      expectDenied(await outsider.call('create_key', { key_id: 'claimed-root' }, ctx));
      expectDenied(await member.call('create_key', { key_id: 'claimed-root' }, ctx));
      // Allowed operations carry the claim too, and it changes nothing about the caller.
      expectServed(await member.call('describe_key', { key_id: 'app-1' }, ctx));
    } finally {
      await outsider.close();
      await member.close();
    }
    await expect(root.describeKey('claimed-root')).rejects.toMatchObject({ code: 'KeyNotFound' });
    const lines = auditLines(d).filter((l) => l.claimed?.request_id === 'req-claims-root');
    expect(lines).toHaveLength(4);
    for (const l of lines) {
      expect(l.claimed).toEqual(ctx);
      expect(l.caller?.uid).toBe(65534); // the kernel's word, not the claim
    }
    expect(lines.map((l) => [l.caller?.pid, l.op, l.outcome])).toEqual([
      [outsider.pid, 'generate_data_key', 'denied'],
      [outsider.pid, 'create_key', 'denied'],
      [member.pid, 'create_key', 'denied'],
      [member.pid, 'describe_key', 'success'],
    ]);
  });
});

// ---- configured rules ---------------------------------------------------------------------------

describe.skipIf(OTHERS !== undefined)(`policy rules from the config${skipped}`, () => {
  // A numeric gid nobody needs to exist in /etc/group: the kernel reports it, the rule matches it.
  const GID = 54321;
  const OTHER_UID = 4242;
  let d: DaemonHandle;
  let root: KmsClient;

  beforeAll(async () => {
    const dir = reachableDir();
    d = await startDaemon({
      dir,
      config: [
        `socket: { path: ${join(dir, 'kms.sock')}, mode: "0666" }`,
        'policy:',
        '  - { match: { uid: 0 }, allow: ["*"] }',
        '  - { match: { uid: 65534 }, allow: [generate_data_key, decrypt, list_keys], keys: ["app-*"] }',
        `  - { match: { gid: ${GID} }, allow: [encrypt, decrypt, health], keys: ["grp-*"] }`,
        '',
      ].join('\n'),
    });
    root = await rootClient(d);
    for (const k of ['app-1', 'other-1', 'grp-1']) await root.createKey(k);
  });

  afterAll(async () => {
    await root?.close();
    await d?.stop();
  });

  it('a uid rule serves that uid the allowed operations on keys inside its glob', async () => {
    const c = await UidClient.start(d.socketPath, NOBODY);
    try {
      const context = { object: 'o1' };
      const dk = expectServed(await c.call('generate_data_key', { key_id: 'app-1', context }));
      expect(dk.key_id).toBe('app-1');
      const back = expectServed(await c.call('decrypt', { ciphertext: dk.ciphertext, context }));
      expect(Buffer.compare(back.plaintext, dk.plaintext)).toBe(0);
    } finally {
      await c.close();
    }
    const mine = auditLines(d).filter((l) => l.caller?.pid === c.pid);
    expect(mine.map((l) => [l.op, l.key_id, l.outcome, l.caller?.uid])).toEqual([
      ['generate_data_key', 'app-1', 'success', 65534],
      ['decrypt', 'app-1', 'success', 65534],
    ]);
  });

  it('a key outside the glob is refused, also when the key is named inside a ciphertext', async () => {
    const foreign = await root.generateDataKey('other-1');
    const c = await UidClient.start(d.socketPath, NOBODY);
    try {
      expectDenied(await c.call('generate_data_key', { key_id: 'other-1' }), 'rule 1 does not cover key other-1');
      expectDenied(await c.call('decrypt', { ciphertext: foreign.ciphertext }), 'rule 1 does not cover key other-1');
    } finally {
      await c.close();
    }
    const mine = auditLines(d).filter((l) => l.caller?.pid === c.pid);
    expect(mine.map((l) => [l.op, l.key_id, l.outcome, l.error_code, l.caller?.uid])).toEqual([
      ['generate_data_key', 'other-1', 'denied', 'AccessDenied', 65534],
      ['decrypt', 'other-1', 'denied', 'AccessDenied', 65534],
    ]);
  });

  it('an operation not in allow is refused, even on a key inside the glob', async () => {
    const c = await UidClient.start(d.socketPath, NOBODY);
    try {
      expectDenied(await c.call('encrypt', { key_id: 'app-1', plaintext: Buffer.from('x') }), 'rule 1 does not allow encrypt');
      expectDenied(await c.call('health'), 'rule 1 does not allow health');
      expectDenied(await c.call('create_key', { key_id: 'app-2' }), 'rule 1 does not allow create_key');
      expectDenied(await c.call('disable_key', { key_id: 'app-1' }), 'rule 1 does not allow disable_key');
    } finally {
      await c.close();
    }
    await expect(root.describeKey('app-2')).rejects.toMatchObject({ code: 'KeyNotFound' });
    expect((await root.describeKey('app-1')).state).toBe('Enabled');
    const mine = auditLines(d).filter((l) => l.caller?.pid === c.pid);
    expect(mine.map((l) => [l.op, l.outcome, l.error_code])).toEqual([
      ['encrypt', 'denied', 'AccessDenied'],
      ['health', 'denied', 'AccessDenied'],
      ['create_key', 'denied', 'AccessDenied'],
      ['disable_key', 'denied', 'AccessDenied'],
    ]);
  });

  it('a gid rule serves members of that gid (supplementary or primary) and nobody else', async () => {
    const member = await UidClient.start(d.socketPath, { uid: OTHER_UID, gid: OTHER_UID, groups: [GID] });
    const primary = await UidClient.start(d.socketPath, { uid: OTHER_UID, gid: GID });
    const outsider = await UidClient.start(d.socketPath, { uid: OTHER_UID, gid: OTHER_UID });
    try {
      for (const c of [member, primary]) {
        const enc = expectServed(await c.call('encrypt', { key_id: 'grp-1', plaintext: Buffer.from('group secret') }));
        const back = expectServed(await c.call('decrypt', { ciphertext: enc.ciphertext }));
        expect(Buffer.from(back.plaintext).toString()).toBe('group secret');
        expect(expectServed(await c.call('health')).healthy).toBe(true);
        expectDenied(await c.call('generate_data_key', { key_id: 'grp-1' }), 'rule 2 does not allow generate_data_key');
        expectDenied(await c.call('encrypt', { key_id: 'app-1', plaintext: Buffer.from('x') }), 'rule 2 does not cover key app-1');
      }
      expectDenied(await outsider.call('encrypt', { key_id: 'grp-1', plaintext: Buffer.from('x') }), 'no policy rule matches the caller');
      expectDenied(await outsider.call('health'), 'no policy rule matches the caller');
    } finally {
      await member.close();
      await primary.close();
      await outsider.close();
    }
    const lines = auditLines(d);
    const denials = lines.filter((l) => l.caller?.pid === outsider.pid);
    expect(denials.map((l) => [l.op, l.outcome, l.error_code, l.caller?.uid])).toEqual([
      ['encrypt', 'denied', 'AccessDenied', OTHER_UID],
      ['health', 'denied', 'AccessDenied', OTHER_UID],
    ]);
    expect(lines.filter((l) => l.caller?.pid === member.pid && l.outcome === 'success').every((l) => l.caller?.groups.includes(GID))).toBe(true);
  });

  // Regression (fixed bug): re_encrypt's `audit` in src/ops/operations.ts (`(_a, result) => keyFields(result)`)
  // takes the audit fields only from a successful result, so a DENIED (or failed) re_encrypt is
  // audited with no key_id at all, while a denied decrypt of the same blob records its key (decrypt's
  // `audit`, lines 304-307, reads the envelope header). "Who tried to move blobs of which key?" has
  // no answer in the log. Fix: as decrypt does, fall back to parseEnvelope(a.ciphertext) for key_id
  // and key_version when there is no result, and record destination_key_id too.
  it('a denied re_encrypt is audited with the key named in the ciphertext', async () => {
    const blob = await root.encrypt('app-1', Buffer.from('x'));
    const c = await UidClient.start(d.socketPath, NOBODY);
    try {
      expectDenied(await c.call('re_encrypt', { ciphertext: blob.ciphertext }), 'rule 1 does not allow re_encrypt');
      expectDenied(await c.call('decrypt', { ciphertext: (await root.encrypt('other-1', Buffer.from('y'))).ciphertext }));
    } finally {
      await c.close();
    }
    const mine = auditLines(d).filter((l) => l.caller?.pid === c.pid);
    expect(mine.map((l) => [l.op, l.outcome])).toEqual([['re_encrypt', 'denied'], ['decrypt', 'denied']]);
    expect(mine[1]?.key_id).toBe('other-1'); // decrypt: recorded
    expect(mine[0]?.key_id).toBe('app-1'); // re_encrypt: missing today
  });

  // Regression (fixed bug): list_keys declares no keys for the policy (src/ops/operations.ts, `keys: () => []`
  // in the list_keys entry) and its result is not filtered, so a rule restricted to keys ["app-*"]
  // that allows list_keys reveals the ids, states, descriptions and tags of EVERY key (here "other-1"
  // and "grp-1"). Fix: filter the page to the keys the deciding rule covers (the pipeline would pass
  // the decision's rule to the handler), or refuse list_keys unless the rule's keys are ["*"].
  it('list_keys under a rule restricted to "app-*" does not reveal keys outside the glob', async () => {
    const c = await UidClient.start(d.socketPath, NOBODY);
    let answer: Answer;
    try {
      answer = await c.call('list_keys', {});
    } finally {
      await c.close();
    }
    // Either answer is acceptable: AccessDenied, or a listing of app-* keys only.
    if (answer.ok) {
      const ids = (answer.result.keys as Array<{ key_id: string }>).map((k) => k.key_id);
      expect(ids).toContain('app-1');
      expect(ids.filter((id) => !id.startsWith('app-'))).toEqual([]);
    } else {
      expect(answer.code).toBe('AccessDenied');
    }
  });

  it('the first matching rule decides: a uid rule shadows a later gid rule that would allow', async () => {
    const c = await UidClient.start(d.socketPath, { ...NOBODY, groups: [GID] });
    try {
      expectDenied(await c.call('encrypt', { key_id: 'grp-1', plaintext: Buffer.from('x') }), 'rule 1 does not allow encrypt');
      expectDenied(await c.call('health'), 'rule 1 does not allow health');
      expectServed(await c.call('generate_data_key', { key_id: 'app-1' }));
    } finally {
      await c.close();
    }
  });
});

// ---- SIGHUP -------------------------------------------------------------------------------------

describe.skipIf(OTHERS !== undefined)(`SIGHUP reloads the policy under live connections${skipped}`, () => {
  const ALLOW_NOBODY = [
    'policy:',
    '  - { match: { uid: 0 }, allow: ["*"] }',
    '  - { match: { uid: 65534 }, allow: [generate_data_key], keys: ["app-*"] }',
  ];

  function writeConfig(path: string, socket: string, extra: string[] = []): void {
    writeFileSync(path, [`socket: { path: ${socket}, mode: "0666" }`, ...extra, ''].join('\n'), { mode: 0o600 });
  }

  const reloads = (d: DaemonHandle) => auditLines(d).filter((l) => l.op === 'daemon_reload').length;
  const refusals = (d: DaemonHandle) => d.stderr().split('reload refused').length - 1;

  it('the same connection goes from denied to served after SIGHUP, and back to denied after another', async () => {
    const dir = reachableDir();
    const socket = join(dir, 'kms.sock');
    const configPath = join(dir, 'kms.yaml');
    writeConfig(configPath, socket); // default policy: uid 65534 is nobody here
    const d = await startDaemon({ dir, args: ['--config', configPath] });
    const root = await rootClient(d);
    await root.createKey('app-1');
    const c = await UidClient.start(d.socketPath, NOBODY);
    try {
      expectDenied(await c.call('generate_data_key', { key_id: 'app-1' }));

      writeConfig(configPath, socket, ALLOW_NOBODY);
      d.proc.kill('SIGHUP');
      const served = await until(() => c.call('generate_data_key', { key_id: 'app-1' }), (a) => a.ok, 100, 50);
      expectServed(served);
      expect(served.connected).toBe(true);
      expect(reloads(d)).toBe(1);

      // Revocation reaches live connections as well.
      writeConfig(configPath, socket);
      d.proc.kill('SIGHUP');
      const deniedAgain = await until(() => c.call('generate_data_key', { key_id: 'app-1' }), (a) => !a.ok, 100, 50);
      expectDenied(deniedAgain, 'no policy rule matches the caller');
      expect(reloads(d)).toBe(2);
      // The root connection opened before both reloads still works too.
      expect((await root.health()).healthy).toBe(true);
    } finally {
      await c.close();
      await root.close();
    }
    const mine = auditLines(d).filter((l) => l.caller?.pid === c.pid);
    expect(mine[0]?.outcome).toBe('denied');
    expect(mine.some((l) => l.outcome === 'success')).toBe(true);
    expect(mine[mine.length - 1]?.outcome).toBe('denied');
    await d.stop();
  });

  it('a config that does not load is refused at SIGHUP and the running policy stays in force', async () => {
    const dir = reachableDir();
    const socket = join(dir, 'kms.sock');
    const configPath = join(dir, 'kms.yaml');
    writeConfig(configPath, socket, ALLOW_NOBODY);
    const d = await startDaemon({ dir, args: ['--config', configPath] });
    const root = await rootClient(d);
    await root.createKey('app-1');
    const c = await UidClient.start(d.socketPath, NOBODY);
    try {
      expectServed(await c.call('generate_data_key', { key_id: 'app-1' }));
      writeConfig(configPath, socket, ['policy:', '  - { match: { uid: 65534 }, allow: [no_such_operation] }']);
      d.proc.kill('SIGHUP');
      await until(async () => refusals(d), (n) => n >= 1, 100, 50);
      expect(refusals(d)).toBe(1);
      expect(d.stderr()).toContain('policy[0].allow[0]');
      expectServed(await c.call('generate_data_key', { key_id: 'app-1' }));
      expectDenied(await c.call('encrypt', { key_id: 'app-1', plaintext: Buffer.from('x') }));
      expect(reloads(d)).toBe(0);
    } finally {
      await c.close();
      await root.close();
    }
    await d.stop();
  });

  // Regression (fixed bug): src/roots/local.ts:64 deletes the passphrase variable from process.env after stretching it
  // (as intended), but SIGHUP re-runs loadConfig({ env: process.env }) (src/daemon/main.ts: `load`
  // at line 60, called by the SIGHUP handler at line 168) and finalize() (src/config/
  // lines 1118-1121) insists that root.local.passphrase_env names a SET variable. Every reload fails
  // with "root.local.passphrase_env: expected the environment variable RUSTFS_KMS_LOCAL_MASTER_KEY
  // to hold the passphrase, but it is not set", so the policy cannot change without a restart (which
  // needs the passphrase again). Fix: on reload, skip the set-variable check for a passphrase the
  // running root has already consumed (e.g. a `reload: true` option to loadConfig), since reload only
  // applies policy and log level.
  it('SIGHUP reloads the policy when the root is a passphrase (root.local.passphrase_env)', async () => {
    const dir = reachableDir();
    const socket = join(dir, 'kms.sock');
    const configPath = join(dir, 'kms.yaml');
    const passphrase = ['root: { local: { passphrase_env: RUSTFS_KMS_LOCAL_MASTER_KEY } }'];
    writeConfig(configPath, socket, passphrase);
    const d = await startDaemon({ dir, args: ['--config', configPath], env: { RUSTFS_KMS_LOCAL_MASTER_KEY: 'reload-test-passphrase' } });
    const root = await rootClient(d);
    await root.createKey('app-1');
    const c = await UidClient.start(d.socketPath, NOBODY);
    try {
      expectDenied(await c.call('generate_data_key', { key_id: 'app-1' }));
      writeConfig(configPath, socket, [...passphrase, ...ALLOW_NOBODY]);
      d.proc.kill('SIGHUP');
      await until(async () => reloads(d) + refusals(d), (n) => n >= 1, 100, 50);
      expect(d.stderr()).not.toContain('reload refused');
      expectServed(await c.call('generate_data_key', { key_id: 'app-1' }));
    } finally {
      await c.close();
      await root.close();
      await d.stop();
    }
  });
});
