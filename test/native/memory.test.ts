// Locked memory, slot lifetime, secure buffers and process hardening. Anything that changes
// process-wide state (hardening, wipeAll, limits) runs in a child process.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';

import { aeadAsync, native, type SlotHandle } from '../../src/native/index.js';
import { repoRoot } from '../helpers/vectors.js';
import { othersCannotReach } from '../helpers/other-user.js';
// uid 65534 must read the checkout (it runs its build): otherwise these skip and say why.
const OTHERS = othersCannotReach();
const skipped = OTHERS !== undefined ? ` (skipped: ${OTHERS})` : '';

function statusField(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (!m) throw new Error(`${field} not in /proc status`);
  return Number(m[1]) * 1024;
}
const vmLck = (pid: number | 'self' = 'self'): number => statusField(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmLck');

// CommonJS prelude for child scripts: the same addon the tests load (node-gyp-build, repo root).
const prelude = `
const native = require('node-gyp-build')(${JSON.stringify(repoRoot)});
const fs = require('node:fs');
const vmLck = () => Number(/^VmLck:\\s+(\\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
const report = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
`;

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  lines: any[];
}

/** Runs `prelude + body` in a fresh node; resolves with its JSON report lines. */
async function runChild(body: string, opts: { nodeArgs?: string[]; wrapper?: string[] } = {}): Promise<ChildResult> {
  const argv = [...(opts.wrapper ?? []), process.execPath, ...(opts.nodeArgs ?? []), '-e', prelude + body];
  const child = spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  return { code, signal, stdout, stderr, lines };
}

const slots: SlotHandle[] = [];
afterAll(() => {
  for (const s of slots) native.slotDestroy(s);
});

describe('locked slot memory', () => {
  it('creating 300 slots grows VmLck and stats().lockedBytes', () => {
    const lockedBefore = native.stats().lockedBytes;
    const inUseBefore = native.stats().slotsInUse;
    const vmBefore = vmLck();
    for (let i = 0; i < 300; i++) slots.push(native.slotGenerate());
    const after = native.stats();
    const grownLocked = after.lockedBytes - lockedBefore;
    const grownVm = vmLck() - vmBefore;
    expect(after.slotsInUse - inUseBefore).toBe(300);
    expect(after.allowUnlocked).toBe(false);
    expect(grownLocked).toBeGreaterThan(0);
    expect(grownLocked % 4096).toBe(0);
    // Every byte the arena counts as locked is locked in the kernel's view too.
    expect(grownVm).toBeGreaterThanOrEqual(grownLocked);
  });

  it('chunks of 128 slots are locked once and reused after destroy (fresh process)', async () => {
    const r = await runChild(`
      const s0 = native.stats();
      const v0 = vmLck();
      const first = native.slotGenerate();
      const one = native.stats();
      const hs = [first];
      for (let i = 1; i < 300; i++) hs.push(native.slotGenerate());
      const three = native.stats();
      const v3 = vmLck();
      const destroyed = hs.map((h) => native.slotDestroy(h)).filter(Boolean).length;
      const afterDestroy = native.stats();
      const again = [];
      for (let i = 0; i < 300; i++) again.push(native.slotGenerate());
      const reused = native.stats();
      report({ s0, v0, one, three, v3, destroyed, afterDestroy, reused,
               staleValid: hs.filter((h) => native.slotValid(h)).length,
               distinct: new Set(again.concat(hs)).size });
    `);
    expect(r.code, r.stderr).toBe(0);
    const o = r.lines[0];
    expect(o.s0).toEqual({ lockedBytes: 0, slotsInUse: 0, allowUnlocked: false });
    const chunk = o.one.lockedBytes;
    expect(chunk).toBeGreaterThanOrEqual(128 * 256); // 128 slots, each holds at least key + schedule
    expect(o.three.slotsInUse).toBe(300);
    expect(o.three.lockedBytes).toBe(Math.ceil(300 / 128) * chunk);
    expect(o.v3 - o.v0).toBeGreaterThanOrEqual(o.three.lockedBytes);
    expect(o.destroyed).toBe(300);
    expect(o.afterDestroy.slotsInUse).toBe(0);
    expect(o.reused.slotsInUse).toBe(300);
    expect(o.reused.lockedBytes).toBe(o.three.lockedBytes); // no new chunks
    expect(o.staleValid).toBe(0); // the old handles stay dead although their memory is reused
    expect(o.distinct).toBe(600); // and the new handles differ from them
  });

  it('setMaxSlots caps the number of slots with a clear error (fresh process)', async () => {
    const r = await runChild(`
      native.setMaxSlots(256);
      const hs = [];
      for (let i = 0; i < 256; i++) hs.push(native.slotGenerate());
      let err = null;
      try { native.slotGenerate(); } catch (e) { err = e.message; }
      native.slotDestroy(hs[7]);
      const replacement = native.slotGenerate();
      report({ err, inUse: native.stats().slotsInUse, replacementValid: native.slotValid(replacement) });
    `);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines[0].err).toMatch(/slot limit reached \(256 slots\)/);
    expect(r.lines[0].inUse).toBe(256);
    expect(r.lines[0].replacementValid).toBe(true);
  });

  it.skipIf(OTHERS !== undefined)(`without CAP_IPC_LOCK and a tiny RLIMIT_MEMLOCK, slots fail loudly unless unlocked memory is allowed${skipped}`, async () => {
    const r = await runChild(
      `
      let err = null;
      try { native.slotGenerate(); } catch (e) { err = e.message; }
      const before = native.stats();
      native.setAllowUnlockedMemory(true);
      const s = native.slotGenerate();
      const out = Buffer.alloc(16);
      native.gcmSeal(s, out, Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(0));
      report({ err, before, after: native.stats(), valid: native.slotValid(s) });
    `,
      { wrapper: ['prlimit', '--memlock=16384', 'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] },
    );
    expect(r.code, r.stderr).toBe(0);
    const o = r.lines[0];
    expect(o.err).toMatch(/mlock of \d+ bytes of key memory failed/);
    expect(o.err).toMatch(/RLIMIT_MEMLOCK/);
    expect(o.before.slotsInUse).toBe(0);
    expect(o.after.allowUnlocked).toBe(true);
    expect(o.after.slotsInUse).toBe(1);
    expect(o.valid).toBe(true);
  });
});

describe('slot lifetime', () => {
  it('a destroyed slot is refused everywhere', () => {
    const s = native.slotGenerate();
    expect(native.slotValid(s)).toBe(true);
    expect(native.slotDestroy(s)).toBe(true);
    expect(native.slotValid(s)).toBe(false);
    expect(native.slotDestroy(s)).toBe(false);
    const nonce = Buffer.alloc(24);
    expect(() => native.xaesSeal(s, Buffer.alloc(16), nonce, Buffer.alloc(0), Buffer.alloc(0))).toThrow(/not a live key slot/);
    expect(() => native.xaesOpen(s, Buffer.alloc(0), nonce, Buffer.alloc(16), Buffer.alloc(0))).toThrow(/not a live key slot/);
    expect(() => native.gcmSeal(s, Buffer.alloc(16), Buffer.alloc(12), Buffer.alloc(0), Buffer.alloc(0))).toThrow(/not a live key slot/);
    expect(() => native.xaesSealEnvelope(s, Buffer.alloc(40), 0, Buffer.alloc(0), Buffer.alloc(0))).toThrow(/not a live key slot/);
    expect(() => native.slotExport(s, Buffer.alloc(32))).toThrow(/not a live key slot/);
    expect(() => native.wrapSlot(s, s, Buffer.alloc(72), Buffer.alloc(0))).toThrow(/not a live key slot/);
    expect(() => native.xaesIntermediates(s, nonce)).toThrow(/not a live key slot/);
  });

  it('a stale handle stays dead when its memory is reused by a new slot', () => {
    const a = native.slotGenerate();
    native.slotDestroy(a);
    const b = native.slotGenerate(); // LIFO free list: very likely the same memory
    slots.push(b);
    expect(b).not.toBe(a);
    expect(native.slotValid(a)).toBe(false);
    expect(native.slotValid(b)).toBe(true);
    expect(native.slotDestroy(a)).toBe(false);
    expect(native.slotValid(b)).toBe(true);
  });

  it('slotExport copies exactly the imported material into a secure buffer', () => {
    const key = native.secureBuffer(32);
    for (let i = 0; i < 32; i++) key[i] = i * 7 + 1;
    const s = native.slotImport(key);
    slots.push(s);
    const out = native.secureBuffer(32);
    native.slotExport(s, out);
    expect(Buffer.from(out).equals(Buffer.from(key))).toBe(true);
    native.secureRelease(key);
    native.secureRelease(out);
  });

  it('wipeAll kills every handle and the arena keeps working (fresh process)', async () => {
    const r = await runChild(`
      const hs = [native.slotGenerate(), native.slotGenerate(), native.slotGenerate()];
      native.wipeAll();
      const valid = hs.filter((h) => native.slotValid(h)).length;
      const inUse = native.stats().slotsInUse;
      const n = native.slotGenerate();
      report({ valid, inUse, fresh: native.slotValid(n), notLive: (() => { try { native.slotExport(hs[0], Buffer.alloc(32)); return null; } catch (e) { return e.message; } })() });
    `);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines[0]).toMatchObject({ valid: 0, inUse: 0, fresh: true });
    expect(r.lines[0].notLive).toMatch(/not a live key slot/);
  });

  // Regression (fixed addon bug): arena::WipeAll() wipes slots that async jobs have pinned. The slot's
  // pin count is zeroed underneath the job, the job's Unpin() then underflows it to UINT32_MAX, and
  // the next slot allocated at that index can never be released: slotDestroy() returns true but the
  // slot is only "doomed", its key material is never wiped and slotsInUse never drops.
  // Regression tests for addon bugs fixed during development.
  it('wipeAll during an in-flight aeadAsync leaves a slot that can never be freed', async () => {
    const r = await runChild(`
      const s = native.slotGenerate();
      const big = Buffer.alloc(16 << 20);
      const out = Buffer.alloc(big.length + 16);
      native.aeadAsync(2, true, s, out, Buffer.alloc(12), big, Buffer.alloc(0), () => setImmediate(() => {
        // The job is finished and its worker (and pin) gone; allocate on the wiped index again.
        const t = native.slotGenerate();
        const destroyed = native.slotDestroy(t);
        report({ destroyed, inUse: native.stats().slotsInUse });
      }));
      native.wipeAll();
    `);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines[0]).toEqual({ destroyed: true, inUse: 0 });
  });

  it('destroying a slot pinned by an async job defers the wipe until the job ends', async () => {
    const s = native.slotGenerate();
    const before = native.stats().slotsInUse;
    const pt = Buffer.alloc(4 << 20);
    const job = aeadAsync('gcm', true, s, Buffer.alloc(pt.length + 16), Buffer.alloc(12), pt, Buffer.alloc(0));
    expect(native.slotDestroy(s)).toBe(true);
    expect(native.slotValid(s)).toBe(false);
    await expect(job).resolves.toBe(true);
    await new Promise((r) => setImmediate(r)); // the worker (and its pin) is deleted after the callback
    expect(native.stats().slotsInUse).toBe(before - 1);
  });
});

describe('secure buffers', () => {
  it('are zeroed, locked, and detached by secureRelease; a second release is harmless', () => {
    const lockedBefore = native.stats().lockedBytes;
    const b = native.secureBuffer(5000);
    expect(b).toBeInstanceOf(Uint8Array);
    expect(b.byteLength).toBe(5000);
    expect(b.every((x) => x === 0)).toBe(true);
    expect(native.stats().lockedBytes - lockedBefore).toBe(8192); // page granular
    b.fill(0xab);
    const ab = b.buffer;
    native.secureRelease(b);
    expect(b.byteLength).toBe(0);
    expect(b.length).toBe(0);
    expect(ab.byteLength).toBe(0);
    expect(() => native.secureRelease(b)).not.toThrow();
    expect(() => native.secureRelease(b)).not.toThrow();
    // A released buffer can no longer be used as key material.
    expect(() => native.slotImport(b)).toThrow(RangeError);
  });

  it('unlock their pages once collected after release (fresh process, --expose-gc)', async () => {
    const r = await runChild(
      `
      const base = native.stats().lockedBytes;
      const b = native.secureBuffer(100000);
      const held = native.stats().lockedBytes - base;
      const vmHeld = vmLck();
      native.secureRelease(b);
      let tries = 0;
      const poll = () => {
        global.gc();
        if (native.stats().lockedBytes === base || ++tries > 100) {
          report({ held, vmHeld, freed: native.stats().lockedBytes === base, vmAfter: vmLck() });
        } else setTimeout(poll, 10);
      };
      poll();
    `,
      { nodeArgs: ['--expose-gc'] },
    );
    expect(r.code, r.stderr).toBe(0);
    const o = r.lines[0];
    expect(o.held).toBe(102400);
    expect(o.freed).toBe(true);
    expect(o.vmHeld - o.vmAfter).toBeGreaterThanOrEqual(102400);
  });

  // Regression (fixed addon bug): secureRelease accepts any Uint8Array and detaches its whole
  // ArrayBuffer. A small Buffer lives in Node's shared 8 KiB allocation pool, so releasing one
  // detaches the pool: every other pooled Buffer drops to length 0 and Buffer.from() throws until
  // the pool is replaced. Expected: a non-secure buffer is refused (TypeError) and nothing else is hurt.
  it('secureRelease of an ordinary pooled Buffer must not detach Node\'s Buffer pool', async () => {
    const r = await runChild(`
      const x = Buffer.from('hello');
      const y = Buffer.from('world');
      let threw = null;
      try { native.secureRelease(x); } catch (e) { threw = e.constructor.name; }
      let fromOk = true;
      try { Buffer.from('again'); } catch { fromOk = false; }
      fs.writeSync(1, JSON.stringify({ samePool: x.buffer === y.buffer, threw, yLength: y.length, fromOk }) + '\\n');
    `);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines[0].samePool).toBe(true);
    expect(r.lines[0]).toMatchObject({ threw: 'TypeError', yLength: 5, fromOk: true });
  });
});

describe('known addon bugs around shared process state (each in a fresh process)', () => {
  // The arena is process-global, so the addon serves one JavaScript environment at a time: a
  // worker_thread that tries to load it while the main thread owns it is refused, and its exit
  // leaves the main thread's slots alone.
  it('a worker_thread is refused while the main thread owns the addon, and the main slots survive', async () => {
    const r = await runChild(`
      const { Worker } = require('node:worker_threads');
      const s = native.slotGenerate();
      const w = new Worker(${JSON.stringify(`require('node-gyp-build')(${JSON.stringify(repoRoot)}).stats();`)}, { eval: true });
      let refusal = '';
      w.on('error', (e) => { refusal = e.message; });
      w.on('exit', (code) => report({ code, refusal, validAfter: native.slotValid(s), inUse: native.stats().slotsInUse }));
    `);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines[0]).toMatchObject({ code: 1, validAfter: true, inUse: 1 });
    expect((r.lines[0] as { refusal: string }).refusal).toMatch(/one JavaScript thread at a time/);
  });

  // Regression (fixed addon bug): aeadAsync promises that "every buffer [is] referenced until the
  // callback runs", but a referenced typed array does not keep a *secure* buffer's pages: after
  // secureRelease() detaches it and GC runs the finalizer (munmap), the queued job reads and writes
  // unmapped memory and the process dies with SIGSEGV.
  it('secureRelease of buffers used by a queued aeadAsync job must not crash the process', async () => {
    const r = await runChild(
      `
      const crypto = require('node:crypto');
      const s = native.slotGenerate();
      // Occupy every libuv pool thread so the AEAD job waits in the queue.
      for (let i = 0; i < (Number(process.env.UV_THREADPOOL_SIZE) || 4); i++) crypto.pbkdf2('p', 's', 300000, 32, 'sha256', () => {});
      const input = native.secureBuffer(1 << 20);
      const out = native.secureBuffer(1 << 20);
      native.aeadAsync(2, true, s, out, Buffer.alloc(12), input.subarray(0, (1 << 20) - 16), Buffer.alloc(0),
        (err, ok) => report({ err: err && err.message, ok }));
      native.secureRelease(input);
      native.secureRelease(out);
      global.gc();
      setImmediate(() => global.gc());
    `,
      { nodeArgs: ['--expose-gc'] },
    );
    expect(r.signal).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines).toHaveLength(1);
  });

  // Regression (fixed addon bug): the limit is enforced per 128-slot chunk, so a maximum that
  // is not a multiple of 128 is silently rounded down (setMaxSlots(200) allows 128 slots while the
  // error claims a limit of 200).
  it('setMaxSlots(200) allows 200 slots', async () => {
    const r = await runChild(`
      native.setMaxSlots(200);
      let n = 0, err = null;
      try { for (; n < 300; n++) native.slotGenerate(); } catch (e) { err = e.message; }
      report({ n, err });
    `);
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines[0].n).toBe(200);
  });
});

describe('process hardening', () => {
  /** Starts a child that hardens itself, reports, and waits until stdin closes. */
  async function hardenedChild() {
    const child = spawn(
      process.execPath,
      [
        '-e',
        prelude +
          `
        const before = { dumpable: native.dumpable(), vmLck: vmLck() };
        native.hardenProcess();
        report({ pid: process.pid, before, after: { dumpable: native.dumpable(), vmLck: vmLck() } });
        process.stdin.resume();
        process.stdin.on('end', () => process.exit(0));
      `,
      ],
      { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.setEncoding('utf8');
    const line = await new Promise<string>((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d: string) => {
        buf += d;
        const nl = buf.indexOf('\n');
        if (nl >= 0) resolve(buf.slice(0, nl));
      });
      child.on('close', (code) => reject(new Error(`child exited ${code} before reporting: ${stderr}`)));
    });
    const report = JSON.parse(line);
    expect(report.pid).toBe(child.pid);
    // Seen from outside while the child is alive.
    const limits = readFileSync(`/proc/${child.pid}/limits`, 'utf8');
    const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
    child.stdin.end();
    const [code] = (await once(child, 'close')) as [number | null];
    return { report, limits, status, code, stderr };
  }

  it('hardenProcess(): not dumpable, core limit 0, nothing mlockall()ed', async () => {
    const r = await hardenedChild();
    expect(r.code, r.stderr).toBe(0);
    expect(r.report.before.dumpable).toBe(1);
    expect(r.report.after.dumpable).toBe(0);
    expect(r.limits).toMatch(/^Max core file size\s+0\s+0\s+bytes\s*$/m);
    expect(statusField(r.status, 'VmLck')).toBeLessThan(16 << 20);
  });

  it('this test process is still dumpable (hardening stayed in the children)', () => {
    expect(native.dumpable()).toBe(1);
  });
});
