// Never in a log: after real runs that hand out data keys and seal known plaintexts, no audit line,
// no operational (stderr) log line and no key record holds a data key, a plaintext, a ciphertext
// body, the root key file's bytes, or a passphrase given through the environment, in raw, hex,
// base64 (any alignment), base64url or JSON-Buffer form. Also: what /proc shows of the passphrase.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import {
  DAEMON_JS, canConnect, cleanEnv, cleanupTempDirs, killAllDaemons, makeTempDir, startDaemon,
} from '../helpers/daemon.js';
import { othersCannotReach, sharedTempDir } from '../helpers/other-user.js';
// uid 65534 must read the checkout (it runs its build): otherwise these skip and say why.
const OTHERS = othersCannotReach();
const skipped = OTHERS !== undefined ? ` (skipped: ${OTHERS})` : '';

const extraProcs = new Set<ChildProcess>();

afterAll(async () => {
  for (const p of extraProcs) p.kill('SIGKILL');
  await killAllDaemons();
  cleanupTempDirs();
});

// ---- searching for a secret in every form it could be written in --------------------------------

/** Base64 of `b` as it would appear inside a longer base64 text at each of the 3 alignments. */
function base64Forms(b: Buffer): string[] {
  const out: string[] = [];
  for (let off = 0; off < 3; off++) {
    const n = Math.floor((b.length - off) / 3) * 3;
    if (n < 12) continue;
    const s = b.subarray(off, off + n).toString('base64');
    out.push(s, s.replace(/\+/g, '-').replace(/\//g, '_'));
  }
  return out;
}

/** Every textual form a secret could take in a log line, plus the raw bytes. */
function forms(secret: Buffer): { text: string[]; raw: Buffer } {
  return {
    text: [
      secret.toString('hex'),
      secret.toString('hex').toUpperCase(),
      ...base64Forms(secret),
      // pino / JSON.stringify of a Buffer: {"type":"Buffer","data":[1,2,3,...]}
      `[${[...secret].join(',')}]`,
    ],
    raw: secret,
  };
}

interface Haystack {
  name: string;
  bytes: Buffer;
}

/** Names of (haystack, secret, form) where a secret was found; empty = clean. */
function findLeaks(haystacks: Haystack[], secrets: Map<string, Buffer>): string[] {
  const leaks: string[] = [];
  for (const h of haystacks) {
    const text = h.bytes.toString('latin1');
    for (const [name, secret] of secrets) {
      const f = forms(secret);
      if (h.bytes.includes(f.raw)) leaks.push(`${h.name}: ${name} (raw)`);
      for (const t of f.text) if (text.includes(t)) leaks.push(`${h.name}: ${name} (${t.slice(0, 24)}…)`);
    }
  }
  return leaks;
}

function stateFiles(stateDir: string): Haystack[] {
  const out: Haystack[] = [];
  for (const name of readdirSync(stateDir)) {
    if (name.startsWith('audit.log')) out.push({ name, bytes: readFileSync(join(stateDir, name)) });
  }
  for (const name of readdirSync(join(stateDir, 'keys'))) {
    out.push({ name: `keys/${name}`, bytes: readFileSync(join(stateDir, 'keys', name)) });
  }
  return out;
}

describe('the search itself', () => {
  it('finds a secret embedded in a log line in each form (so a clean result means something)', () => {
    const secret = randomBytes(32);
    const secrets = new Map([['s', secret]]);
    const pad = (s: string) => `{"msg":"x","v":"${s}"}\n`;
    const samples = [
      Buffer.concat([Buffer.from('{"raw":"'), secret, Buffer.from('"}')]),
      Buffer.from(pad(secret.toString('hex'))),
      Buffer.from(pad(secret.toString('hex').toUpperCase())),
      Buffer.from(pad(secret.toString('base64'))),
      Buffer.from(pad(secret.toString('base64url'))),
      ...[1, 2].map((k) => Buffer.from(pad(Buffer.concat([randomBytes(k), secret, randomBytes(5)]).toString('base64')))),
      Buffer.from(pad(JSON.stringify(secret))),
    ];
    for (const [i, bytes] of samples.entries()) expect(findLeaks([{ name: `sample${i}`, bytes }], secrets)).not.toEqual([]);
    expect(findLeaks([{ name: 'clean', bytes: Buffer.from(pad(randomBytes(32).toString('hex'))) }], secrets)).toEqual([]);
  });
});

// ---- what the kernel says about the daemon's key memory ------------------------------------------

describe('key memory, seen from /proc', () => {
  it('key slots sit in mappings that are mlocked, excluded from core dumps and wiped on fork (smaps VmFlags lo, dd, wf)', async () => {
    const d = await startDaemon();
    const client = await KmsClient.connect(d.socketPath);
    for (let i = 0; i < 20; i++) {
      await client.createKey(`mem-${i}`);
      await client.generateDataKey(`mem-${i}`);
    }
    await client.close();
    const smaps = readFileSync(`/proc/${d.pid}/smaps`, 'utf8');
    const status = readFileSync(`/proc/${d.pid}/status`, 'utf8');
    const limits = readFileSync(`/proc/${d.pid}/limits`, 'utf8');
    expect(await d.stop()).toBe(0);

    interface Mapping { range: string; lockedKiB: number; flags: string[] }
    const mappings: Mapping[] = [];
    let current: Mapping | undefined;
    for (const line of smaps.split('\n')) {
      if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) {
        current = { range: line.split(' ')[0] as string, lockedKiB: 0, flags: [] };
        mappings.push(current);
      } else if (current !== undefined && line.startsWith('Locked:')) {
        current.lockedKiB = Number(/(\d+)/.exec(line)?.[1]);
      } else if (current !== undefined && line.startsWith('VmFlags:')) {
        current.flags = line.slice('VmFlags:'.length).trim().split(/\s+/);
      }
    }
    const locked = mappings.filter((m) => m.flags.includes('lo'));
    expect(locked.length).toBeGreaterThan(0);
    // No mlockall: everything locked is key memory, and all of it is dd + wf.
    for (const m of locked) expect(m.flags, m.range).toEqual(expect.arrayContaining(['lo', 'dd', 'wf']));
    const vmLck = Number(/VmLck:\s+(\d+) kB/.exec(status)?.[1]);
    expect(vmLck).toBeGreaterThan(0);
    expect(locked.reduce((s, m) => s + m.lockedKiB, 0)).toBe(vmLck);
    expect(limits).toMatch(/^Max core file size\s+0\s+0\s/m);
  });
});

// ---- a run with the local root key file -------------------------------------------------------------

describe('never in a log', () => {
  it('data keys, plaintexts, ciphertext bodies and the root key file appear in no audit line, no stderr line, no key record', async () => {
    // trace: the most the operational log ever says.
    const d = await startDaemon({ config: 'log_level: trace\n' });
    const secrets = new Map<string, Buffer>();
    const envelopes: Buffer[] = [];
    const tag = randomBytes(6).toString('hex');
    const client = await KmsClient.connect(d.socketPath);
    await client.createKey('secret-key', { description: 'never-in-a-log test' });
    await client.createKey('other-key');

    for (let i = 0; i < 5; i++) {
      const context = { bucket: 'b', object: `o${i}` };
      const dk = await client.generateDataKey('secret-key', { context, bytes: 16 + i * 12 });
      secrets.set(`data key ${i}`, dk.plaintext as Buffer);
      envelopes.push(dk.ciphertext);
      const back = await client.decrypt(dk.ciphertext, { context });
      expect(back.plaintext.equals(dk.plaintext as Buffer)).toBe(true);
      await expect(client.decrypt(dk.ciphertext, { context: { bucket: 'wrong' } })).rejects.toMatchObject({ code: 'InvalidCiphertext' });
    }
    const batch = await client.generateDataKeyBatch('secret-key', 16);
    for (const [i, k] of batch.keys.entries()) {
      secrets.set(`batch key ${i}`, k.plaintext);
      envelopes.push(k.ciphertext);
    }
    const sealedOnly = await client.generateDataKey('secret-key', { withoutPlaintext: true });
    envelopes.push(sealedOnly.ciphertext);
    secrets.set('data key sealed without plaintext', (await client.decrypt(sealedOnly.ciphertext)).plaintext);

    const plaintexts = [
      `MARKER-PLAINTEXT-${tag}-short`,
      `MARKER-PLAINTEXT-${tag}-with "quotes" and \n newlines`,
      `MARKER-PLAINTEXT-${tag}-big-`.repeat(1900), // ~63 KiB, just under the plaintext limit
    ];
    for (const [i, p] of plaintexts.entries()) {
      const pt = Buffer.from(p);
      secrets.set(`plaintext ${i}`, pt.subarray(0, Math.min(pt.length, 4096)));
      const enc = await client.encrypt('secret-key', pt, { context: { i: String(i) } });
      envelopes.push(enc.ciphertext);
      expect((await client.decrypt(enc.ciphertext, { context: { i: String(i) } })).plaintext.equals(pt)).toBe(true);
      const moved = await client.reEncrypt(enc.ciphertext, { context: { i: String(i) }, destinationKeyId: 'other-key' });
      envelopes.push(moved.ciphertext);
      const flipped = Buffer.from(enc.ciphertext);
      flipped[flipped.length - 1] ^= 1;
      await expect(client.decrypt(flipped, { context: { i: String(i) } })).rejects.toMatchObject({ code: 'InvalidCiphertext' });
    }
    // Plaintexts in requests that fail must not surface either.
    const failing = Buffer.from(`MARKER-PLAINTEXT-${tag}-refused`);
    secrets.set('plaintext of a refused request', failing);
    await expect(client.encrypt('missing-key', failing)).rejects.toMatchObject({ code: 'KeyNotFound' });
    await client.disableKey('other-key');
    await expect(client.encrypt('other-key', failing)).rejects.toMatchObject({ code: 'KeyDisabled' });
    const oversized = Buffer.concat([failing, Buffer.alloc(65_536)]);
    await expect(client.encrypt('secret-key', oversized)).rejects.toMatchObject({ code: 'InvalidRequest' });
    await client.close();

    for (const [i, e] of envelopes.entries()) {
      const header = 3 + e[2]! + 4; // version, algorithm, id length, id, key version
      secrets.set(`envelope ${i}`, e);
      secrets.set(`envelope ${i} body (nonce, sealed bytes, tag)`, e.subarray(header));
    }
    const rootKey = readFileSync(join(d.stateDir, 'root.key'));
    expect(rootKey.length).toBe(32);
    secrets.set('root key file', rootKey);

    expect(await d.stop()).toBe(0);
    const haystacks = [
      ...stateFiles(d.stateDir),
      { name: 'daemon stderr', bytes: Buffer.from(d.stderr(), 'utf8') },
      { name: 'daemon stdout', bytes: Buffer.from(d.stdout(), 'utf8') },
    ];
    // We are looking at the right files: they do hold the run's non-secret facts.
    const audit = haystacks.find((h) => h.name === 'audit.log')!.bytes.toString('utf8');
    expect(audit).toContain('"op":"generate_data_key_batch"');
    expect(audit).toContain('"key_id":"secret-key"');
    expect(audit.split('\n').filter((l) => l.includes('"op":"encrypt"'))).toHaveLength(6);
    expect(d.stderr()).toContain('rustfs-kmsd serving');
    expect(haystacks.some((h) => h.name === 'keys/secret-key.json')).toBe(true);

    expect(secrets.size).toBeGreaterThan(60);
    expect(findLeaks(haystacks, secrets)).toEqual([]);
  });

  it.skipIf(OTHERS !== undefined)(`a passphrase from RUSTFS_KMS_LOCAL_MASTER_KEY is in no log; /proc/<pid>/environ keeps it, readable by root only (non-dumpable)${skipped}`, async () => {
    // The daemon runs as uid 65534 here (setpriv), so that "readable by root only" is a real
    // statement: another process of the daemon's OWN uid is refused too, because the daemon made
    // itself non-dumpable (prctl PR_SET_DUMPABLE 0), which hands /proc/<pid>/* to root.
    const dir = sharedTempDir('kms-sec-pass-'); // the daemon runs as uid 65534: it must reach this
    chownSync(dir, 65534, 65534);
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    chownSync(stateDir, 65534, 65534);
    const socket = join(dir, 'kms.sock');
    const passphrase = `MARKER-PASSPHRASE-${randomBytes(8).toString('hex')}`;
    const nobody = ['--reuid=65534', '--regid=65534', '--clear-groups'];
    const proc = spawn('setpriv', [...nobody, '--', process.execPath, DAEMON_JS, '--dev', '--state-dir', stateDir, '--socket', socket], {
      cwd: dir,
      env: cleanEnv({ RUSTFS_KMS_LOCAL_MASTER_KEY: passphrase, RUSTFS_KMS_LOG_LEVEL: 'trace' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    extraProcs.add(proc);
    let stderr = '';
    proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    for (let i = 0; i < 400 && !(stderr.includes('rustfs-kmsd serving') && (await canConnect(socket))); i++) {
      if (proc.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    expect(await canConnect(socket), stderr).toBe(true);
    const pid = proc.pid as number; // setpriv execs node: this is the daemon

    const client = await KmsClient.connect(socket);
    await client.createKey('pass-key');
    const dk = await client.generateDataKey('pass-key');
    await client.decrypt(dk.ciphertext);
    await client.close();
    proc.kill('SIGHUP'); // a reload re-reads the environment: it must not log the value either
    for (let i = 0; i < 200 && !/reload/.test(stderr); i++) await new Promise((r) => setTimeout(r, 25));
    expect(stderr).toMatch(/reload/);

    // The truth about /proc: the initial environment block is not rewritten by unsetenv, so root
    // still reads the passphrase there for the life of the process ...
    const environ = readFileSync(`/proc/${pid}/environ`);
    expect(environ.toString('latin1').split('\0')).toContain(`RUSTFS_KMS_LOCAL_MASTER_KEY=${passphrase}`);
    // ... but nobody else, not even the daemon's own uid.
    const peek = spawnSync('setpriv', [...nobody, '--', 'cat', `/proc/${pid}/environ`], { encoding: 'latin1' });
    expect(peek.status).not.toBe(0);
    expect(peek.stdout).not.toContain(passphrase);
    expect(peek.stderr).toContain('Permission denied');
    // It is not on the command line, and core dumps are off.
    expect(readFileSync(`/proc/${pid}/cmdline`, 'latin1')).not.toContain(passphrase);
    expect(readFileSync(`/proc/${pid}/limits`, 'utf8')).toMatch(/^Max core file size\s+0\s+0\s/m);
    expect(Number(/VmLck:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])).toBeGreaterThan(0);

    proc.kill('SIGTERM');
    expect(await exited).toBe(0);
    extraProcs.delete(proc);
    const secrets = new Map([['passphrase', Buffer.from(passphrase)]]);
    const haystacks = [...stateFiles(stateDir), { name: 'daemon stderr', bytes: Buffer.from(stderr, 'utf8') }];
    expect(haystacks.find((h) => h.name === 'audit.log')!.bytes.toString()).toContain('"op":"daemon_stop"');
    expect(stderr).toContain('"passphraseEnv":"RUSTFS_KMS_LOCAL_MASTER_KEY"'); // the name is logged, not the value
    expect(findLeaks(haystacks, secrets)).toEqual([]);
    // The salt is there (the passphrase root) and no root key file was made.
    expect(readdirSync(stateDir)).toContain('root.salt');
    expect(readdirSync(stateDir)).not.toContain('root.key');
  });
});
