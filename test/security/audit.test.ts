// What is recorded: the hash-chained audit log of real daemon runs, checked with the real CLI
// (`rustfs-kms audit verify FILE... [--head SEQ:HASH]`). Deleting, editing, swapping or repeating
// any line is found and the line is named; the last line needs the daemon's head (`status`); the
// chain survives rotation and restarts (clean and SIGKILL); a hostile claimed ctx cannot forge lines.
//
// What the verifier reports (src/audit/verify.ts), which the assertions below pin down exactly:
//   - a line that is not JSON                      → that line: "is not valid JSON (edited or damaged)"
//   - seq jumps forward (lines removed)            → the first line after the gap: "has seq X; expected Y (X-Y line(s) before it were removed)"
//   - seq goes back (reordered, repeated)          → that line: "has seq X; expected Y (lines were reordered or repeated)"
//   - prev ≠ SHA-256 of the line before (edited)   → the line AFTER the edited one: "does not chain: ..."
//   - the last line edited / lines cut off the end → only with --head: line 0 (no line number printed)
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KmsClient } from '../../src/rpc/client.js';
import {
  cleanupTempDirs, killAllDaemons, makeTempDir, runCli, runDaemonExpectingExit, startDaemon, type DaemonHandle,
} from '../helpers/daemon.js';

afterAll(async () => {
  await killAllDaemons();
  cleanupTempDirs();
});

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function fileLines(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  return text.slice(0, -1).split('\n');
}

function writeLines(path: string, lines: string[]): string {
  writeFileSync(path, lines.map((l) => l + '\n').join(''));
  return path;
}

async function verify(files: string[], head?: { seq: number; hash: string }): Promise<{ code: number | null; out: string }> {
  const r = await runCli(['audit', 'verify', ...files, ...(head !== undefined ? ['--head', `${head.seq}:${head.hash}`] : [])]);
  return { code: r.code, out: r.stdout.toString('utf8').trim() };
}

async function statusHead(d: DaemonHandle): Promise<{ seq: number; hash: string }> {
  const r = await runCli(['status', '--json'], { socket: d.socketPath });
  expect(r.code, r.stderr).toBe(0);
  const head = JSON.parse(r.stdout.toString('utf8')).auditHead as { seq: number; hash: string };
  expect(Number.isInteger(head.seq)).toBe(true);
  expect(head.hash).toMatch(/^[0-9a-f]{64}$/);
  return head;
}

/** Some of everything: successes, failures of several codes, lifecycle operations. */
async function traffic(client: KmsClient, tag: string): Promise<void> {
  await client.createKey(`audit-${tag}`, { description: 'audit test', tags: { t: tag } });
  for (let i = 0; i < 6; i++) {
    const context = { n: String(i) };
    const dk = await client.generateDataKey(`audit-${tag}`, { context });
    await client.decrypt(dk.ciphertext, { context });
    await expect(client.decrypt(dk.ciphertext, { context: { n: 'wrong' } })).rejects.toMatchObject({ code: 'InvalidCiphertext' });
  }
  await client.encrypt(`audit-${tag}`, Buffer.from('hello'));
  await client.rotateKey(`audit-${tag}`);
  await expect(client.describeKey('missing-key')).rejects.toMatchObject({ code: 'KeyNotFound' });
  await expect(client.describeKey('-bad id-')).rejects.toMatchObject({ code: 'InvalidKeyId' });
  await client.listKeys();
  await client.health();
}

// ---- tampering with the log of one run ------------------------------------------------------------

describe('audit verify finds tampering and names the line', () => {
  let work: string;
  let d: DaemonHandle;
  /** The log as the daemon's head vouches for it: lines 1..S. */
  let lines: string[];
  let head: { seq: number; hash: string };
  let S = 0;

  beforeAll(async () => {
    d = await startDaemon();
    const client = await KmsClient.connect(d.socketPath);
    await traffic(client, 'a');
    await traffic(client, 'b');
    await client.close();
    head = await statusHead(d);
    S = head.seq;
    // The status call itself is audited after it answered, so the live file holds one line more
    // than the head vouches for: take exactly the lines the head covers.
    const all = fileLines(join(d.stateDir, 'audit.log'));
    expect(all.length).toBe(S + 1);
    lines = all.slice(0, S);
    expect(sha256(lines[S - 1] as string)).toBe(head.hash);
    work = makeTempDir('kms-sec-audit-');
    expect(S).toBeGreaterThan(40);
  });

  afterAll(async () => {
    await d?.stop();
  });

  const tampered = (name: string, ls: string[]) => writeLines(join(work, name), ls);
  const without = (...positions: number[]) => lines.filter((_, i) => !positions.includes(i + 1));
  const replaced = (k: number, f: (l: string) => string) => lines.map((l, i) => (i + 1 === k ? f(l) : l));
  /** A plausible edit that keeps the line valid JSON with the same seq: shift its time by 1 ms. */
  const editTime = (l: string) => l.replace(/"time":(\d+)/, (_m, t: string) => `"time":${Number(t) + 1}`);

  it('the untouched log of a run verifies (exit 0, "OK: N records"), also against the daemon head', async () => {
    const live = join(d.stateDir, 'audit.log');
    const n = fileLines(live).length;
    const r = await verify([live]);
    expect(r).toEqual({ code: 0, out: `OK: ${n} records (seq 1..${n}) in 1 file(s)` });
    const copy = tampered('untouched.log', lines);
    expect(await verify([copy], head)).toEqual({ code: 0, out: `OK: ${S} records (seq 1..${S}) in 1 file(s)` });
    // Every operation of the run is a line: the ops of traffic() twice, plus daemon_start.
    const ops = lines.map((l) => JSON.parse(l).op as string);
    expect(ops[0]).toBe('daemon_start');
    expect(ops.filter((o) => o === 'decrypt')).toHaveLength(24);
  });

  it('deleting one line (or a run of lines) is reported at the line that follows the gap', async () => {
    const mid = Math.floor(S / 2);
    for (const k of [2, 3, mid, S - 1]) {
      const f = tampered(`deleted-${k}.log`, without(k));
      expect(await verify([f])).toEqual({ code: 1, out: `FAILED: ${f} line ${k} has seq ${k + 1}; expected ${k} (1 line(s) before it were removed)` });
    }
    const f = tampered('deleted-block.log', without(mid, mid + 1, mid + 2));
    expect(await verify([f])).toEqual({ code: 1, out: `FAILED: ${f} line ${mid} has seq ${mid + 3}; expected ${mid} (3 line(s) before it were removed)` });
  });

  // Regression (fixed): the chain must start at seq 1 with the genesis prev unless --from says
  // where a later segment starts, so lines removed from the very start are caught too.
  it('deleting the FIRST line of the first file is reported at line 1', async () => {
    const f = tampered('deleted-1.log', without(1));
    expect(await verify([f])).toEqual({ code: 1, out: `FAILED: ${f} line 1 has seq 2; the chain should start at seq 1; lines were removed from the start (or pass --from SEQ to verify a later segment)` });
  });

  it('editing one line is reported at the line after it (its prev no longer matches)', async () => {
    const mid = Math.floor(S / 2);
    for (const k of [1, 2, mid, S - 1]) {
      const f = tampered(`edited-${k}.log`, replaced(k, editTime));
      expect(await verify([f])).toEqual({
        code: 1,
        out: `FAILED: ${f} line ${k + 1} does not chain: its prev is not the SHA-256 of ${f} line ${k}, so that line (or this one's prev) was edited`,
      });
    }
    // Hiding a failure: turn an InvalidCiphertext failure into a success.
    const k = lines.findIndex((l) => l.includes('"error_code":"InvalidCiphertext"')) + 1;
    expect(k).toBeGreaterThan(1);
    const hidden = replaced(k, (l) => l.replace('"outcome":"failure"', '"outcome":"success"').replace(',"error_code":"InvalidCiphertext"', ''));
    expect(hidden[k - 1]).not.toBe(lines[k - 1]);
    const f = tampered('hidden-failure.log', hidden);
    expect(await verify([f])).toEqual({
      code: 1,
      out: `FAILED: ${f} line ${k + 1} does not chain: its prev is not the SHA-256 of ${f} line ${k}, so that line (or this one's prev) was edited`,
    });
  });

  it('an edit that breaks the JSON is reported at that line', async () => {
    const k = Math.floor(S / 3);
    const f = tampered('broken-json.log', replaced(k, (l) => l.slice(0, -5)));
    expect(await verify([f])).toEqual({ code: 1, out: `FAILED: ${f} line ${k} is not valid JSON (edited or damaged)` });
  });

  it('swapping two adjacent lines is reported at the first of them', async () => {
    const swap = (k: number) => lines.map((l, i) => (i + 1 === k ? lines[k] : i + 1 === k + 1 ? lines[k - 1] : l) as string);
    for (const k of [2, Math.floor(S / 2), S - 1]) {
      const f = tampered(`swapped-${k}.log`, swap(k));
      expect(await verify([f])).toEqual({ code: 1, out: `FAILED: ${f} line ${k} has seq ${k + 1}; expected ${k} (1 line(s) before it were removed)` });
    }
    // Lines 1 and 2 swapped: the chain no longer starts at seq 1.
    const f = tampered('swapped-1.log', swap(1));
    expect(await verify([f])).toEqual({ code: 1, out: `FAILED: ${f} line 1 has seq 2; the chain should start at seq 1; lines were removed from the start (or pass --from SEQ to verify a later segment)` });
  });

  it('a repeated (replayed) line is reported at the copy', async () => {
    const k = Math.floor(S / 2);
    const replayed = [...lines.slice(0, k), lines[k - 1] as string, ...lines.slice(k)];
    const f = tampered('replayed.log', replayed);
    expect(await verify([f])).toEqual({ code: 1, out: `FAILED: ${f} line ${k + 1} has seq ${k}; expected ${k + 1} (lines were reordered or repeated)` });
  });

  it('the last line: an edit or a removal leaves nothing in the file to notice; --head from status finds both', async () => {
    const edited = tampered('edited-last.log', replaced(S, editTime));
    expect(await verify([edited])).toEqual({ code: 0, out: `OK: ${S} records (seq 1..${S}) in 1 file(s)` });
    expect(await verify([edited], head)).toEqual({
      code: 1,
      out: `FAILED: ${edited} the last line (seq ${S}) does not hash to the daemon's head: it was edited`,
    });
    const cut = tampered('deleted-last.log', without(S));
    expect(await verify([cut])).toEqual({ code: 0, out: `OK: ${S - 1} records (seq 1..${S - 1}) in 1 file(s)` });
    expect(await verify([cut], head)).toEqual({
      code: 1,
      out: `FAILED: ${cut} ends at seq ${S - 1} but the daemon's head is seq ${S}: lines were removed from the end`,
    });
    const cut5 = tampered('deleted-last5.log', lines.slice(0, S - 5));
    expect(await verify([cut5], head)).toEqual({
      code: 1,
      out: `FAILED: ${cut5} ends at seq ${S - 5} but the daemon's head is seq ${S}: lines were removed from the end`,
    });
  });

  it('the chain is not keyed: an edit with every later prev recomputed passes alone, and only --head catches it', async () => {
    const k = Math.floor(S / 2);
    const forged = [...lines];
    forged[k - 1] = editTime(forged[k - 1] as string);
    for (let i = k; i < forged.length; i++) {
      const prev = sha256(forged[i - 1] as string);
      forged[i] = (forged[i] as string).replace(/"prev":"[0-9a-f]{64}"\}$/, `"prev":"${prev}"}`);
    }
    const f = tampered('forged-chain.log', forged);
    expect(await verify([f])).toEqual({ code: 0, out: `OK: ${S} records (seq 1..${S}) in 1 file(s)` });
    expect(await verify([f], head)).toEqual({
      code: 1,
      out: `FAILED: ${f} the last line (seq ${S}) does not hash to the daemon's head: it was edited`,
    });
  });
});

// ---- rotation and restarts ----------------------------------------------------------------------

function auditFiles(stateDir: string): string[] {
  const rotated = readdirSync(stateDir).filter((n) => /^audit\.log\.\d{6}$/.test(n)).sort();
  return [...rotated.map((n) => join(stateDir, n)), join(stateDir, 'audit.log')];
}

describe('the chain across rotation and restarts', () => {
  it('audit.max_bytes below 1 MiB is refused at start-up, naming the field and the minimum', async () => {
    const r = await runDaemonExpectingExit({ config: 'audit: { max_bytes: 4096 }\n' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('audit.max_bytes');
    expect(r.stderr).toContain('1048576');
  });

  it('rotation keeps the chain: audit.log.000001 … audit.log verify in order, records == the last seq', async () => {
    const d = await startDaemon({ config: 'audit: { max_bytes: 1048576 }\n' });
    const client = await KmsClient.connect(d.socketPath);
    await client.createKey('rot');
    // Fat claimed ctx (cut to about 1 KiB per line in the log) so that 5,000 operations rotate several times.
    const pad = (c: string) => c.repeat(1000);
    let n = 0;
    for (let batch = 0; batch < 50; batch++) {
      await Promise.all(Array.from({ length: 100 }, () => {
        n += 1;
        return client.generateDataKey('rot', {}, { ctx: { principal: pad('p'), request_id: `r-${n}`, extra: { a: pad('a'), b: pad('b'), c: pad('c') } } });
      }));
    }
    await client.close();
    expect(await d.stop()).toBe(0);

    const files = auditFiles(d.stateDir);
    expect(files.length).toBeGreaterThanOrEqual(4); // at least three rotations
    expect(files.slice(0, -1).map((f) => f.slice(-6))).toEqual(files.slice(0, -1).map((_, i) => String(i + 1).padStart(6, '0')));
    for (const f of files.slice(0, -1)) expect(statSync(f).size).toBeGreaterThanOrEqual(1048576);
    const last = fileLines(files[files.length - 1] as string);
    const total = JSON.parse(last[last.length - 1] as string).seq as number;
    expect(JSON.parse(last[last.length - 1] as string).op).toBe('daemon_stop');
    const all = files.flatMap(fileLines);
    expect(all).toHaveLength(total);
    expect(all.filter((l) => l.includes('"op":"generate_data_key"'))).toHaveLength(5000);

    expect(await verify(files)).toEqual({ code: 0, out: `OK: ${total} records (seq 1..${total}) in ${files.length} file(s)` });
    // Order matters: the files swapped break the chain at the start of the misplaced file.
    const swapped = [files[1] as string, files[0] as string, ...files.slice(2)];
    const r = await verify(swapped);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(new RegExp(`^FAILED: ${files[1]} line 1 has seq \\d+; the chain should start at seq 1; lines were removed from the start`));
    // A later segment verifies on its own only when the operator says where it starts.
    const secondFirst = JSON.parse(fileLines(files[1] as string)[0] as string) as { seq: number; prev: string };
    const segment = await runCli(['audit', 'verify', '--from', `${secondFirst.seq}:${secondFirst.prev}`, ...files.slice(1)]);
    expect(segment.code).toBe(0);
    // A rotated file with one line removed fails with that file and line named.
    const work = makeTempDir('kms-sec-rot-');
    const second = fileLines(files[1] as string);
    const copy = writeLines(join(work, 'audit.log.000002'), second.filter((_, i) => i !== 10));
    const seq11 = JSON.parse(second[10] as string).seq as number;
    expect(await verify([files[0] as string, copy, ...files.slice(2)])).toEqual({
      code: 1,
      out: `FAILED: ${copy} line 11 has seq ${seq11 + 1}; expected ${seq11} (1 line(s) before it were removed)`,
    });
  });

  it('a restart continues the chain (after SIGTERM and after SIGKILL), and every answered operation is in the log', async () => {
    const dir = makeTempDir('kms-sec-restart-');
    const d1 = await startDaemon({ dir });
    const c1 = await KmsClient.connect(d1.socketPath);
    await traffic(c1, 'one');
    await c1.close();
    expect(await d1.stop()).toBe(0);
    const log = join(d1.stateDir, 'audit.log');
    const before = fileLines(log);
    const lastBefore = JSON.parse(before[before.length - 1] as string);
    expect(lastBefore.op).toBe('daemon_stop');

    const d2 = await startDaemon({ dir });
    const c2 = await KmsClient.connect(d2.socketPath);
    await c2.createKey('after-restart');
    for (let i = 0; i < 25; i++) await c2.generateDataKey('after-restart');
    await c2.close();
    await d2.kill(); // SIGKILL: no daemon_stop line, nothing flushed at exit
    const afterKill = fileLines(log);
    const start2 = JSON.parse(afterKill[before.length] as string);
    expect(start2.op).toBe('daemon_start');
    expect(start2.seq).toBe(lastBefore.seq + 1);
    expect(start2.prev).toBe(sha256(before[before.length - 1] as string));
    // Lines are written before the answers leave: all 25 answered data keys were recorded.
    expect(afterKill.slice(before.length).filter((l) => l.includes('"op":"generate_data_key"') && l.includes('"outcome":"success"'))).toHaveLength(25);

    const d3 = await startDaemon({ dir });
    const head = await statusHead(d3);
    const final = fileLines(log);
    const start3 = JSON.parse(final[afterKill.length] as string);
    expect(start3.op).toBe('daemon_start');
    expect(start3.seq).toBe(JSON.parse(afterKill[afterKill.length - 1] as string).seq + 1);
    expect(start3.prev).toBe(sha256(afterKill[afterKill.length - 1] as string));
    expect(await d3.stop()).toBe(0);
    const total = fileLines(log).length;
    expect(await verify([log], head)).toEqual({ code: 0, out: `OK: ${total} records (seq 1..${total}) in 1 file(s)` });
    expect(auditFiles(d3.stateDir)).toEqual([log]);
  });
});

// ---- hostile claimed ctx ------------------------------------------------------------------------

describe('a claimed ctx cannot forge audit lines', () => {
  it('quotes, newlines, U+2028 and a fake record inside ctx stay inside the "claimed" field of one line', async () => {
    const d = await startDaemon();
    const fake = `{"seq":999,"time":0,"op":"create_key","outcome":"success","prev":"${'0'.repeat(64)}"}`;
    const ctx = {
      principal: `evil"},"outcome":"success","x":{"\n${fake}\n`,
      request_id: 'line\rbreak\u2028sep\u2029end\u0000nul',
      user_agent: '\\"}\n',
      extra: { [`k"\n${fake}`]: `v\n${fake}`, 'prev': '0'.repeat(64) },
    };
    const client = await KmsClient.connect(d.socketPath);
    await client.createKey('ctx-key');
    await client.generateDataKey('ctx-key', {}, { ctx });
    await expect(client.describeKey('nope', { ctx })).rejects.toMatchObject({ code: 'KeyNotFound' });
    await client.close();
    expect(await d.stop()).toBe(0);

    const log = join(d.stateDir, 'audit.log');
    const lines = fileLines(log);
    const records = lines.map((l) => JSON.parse(l));
    expect(records.map((r) => r.seq)).toEqual(records.map((_, i) => i + 1));
    const claimed = records.filter((r) => r.claimed !== undefined);
    expect(claimed.map((r) => [r.op, r.outcome])).toEqual([['generate_data_key', 'success'], ['describe_key', 'failure']]);
    for (const r of claimed) {
      // Fields past their caps (principal 128 bytes, extra keys 64) are cut, and "cut" says so (issue 11).
      expect(r.claimed).toMatchObject({ request_id: ctx.request_id, user_agent: ctx.user_agent, cut: { principal: Buffer.byteLength(ctx.principal), extra: 2 } });
      expect(ctx.principal.startsWith(r.claimed.principal)).toBe(true);
      expect(r.claimed.extra.prev).toBe('0'.repeat(64));
      expect(Object.values(r.claimed.extra)).toContain(`v\n${fake}`);
    }
    expect(records.some((r) => r.seq === 999)).toBe(false);
    expect(await verify([log])).toEqual({ code: 0, out: `OK: ${lines.length} records (seq 1..${lines.length}) in 1 file(s)` });
  });
});
