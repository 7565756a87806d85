// pkcs11 root benchmark on a SoftHSM2 token made for this run (temporary directory, SOFTHSM2_CONF).
//
//   npm run bench:pkcs11                # readable table
//   npm run bench:pkcs11 -- --json      # table, then ONE JSON object as the last stdout line
//
// What is measured: data keys per second from KeyService.generateDataKey IN PROCESS (no socket),
// 32-byte keys, empty context, one key, cached (warm) — the same call for every row:
//   local_gdk_ops           local root: key material in a locked slot, XAES-256-GCM in the addon
//   wrap_gdk_ops            pkcs11 wrap mode: the master key was unwrapped by the token once and then
//                           lives in a slot exactly like the local root's (target >= 0.9 x local)
//   ontoken_gdk_ops         pkcs11 on-token mode: every seal is C_EncryptInit + C_EncryptAsync
//                           (CKM_AES_GCM) on the token over the session pool, CONCURRENCY requests
//                           in flight (target >= 0.8 x raw)
//   raw_pkcs11_encrypt_ops  bare pkcs11js loop on the same token and the same key object:
//                           C_EncryptInit (random 12-byte IV, AAD of the envelope's length) +
//                           C_EncryptAsync of a 32-byte payload, CONCURRENCY sessions each with
//                           one call in flight
// local and wrap (sync calls) run alternately ROUNDS times; on-token and raw (async) likewise;
// each row reports its best round. Targets print PASS or MISS; the benchmark never fails on them.
import { spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pkcs11js from 'pkcs11js';
import type { GcmParams } from 'pkcs11js';

import { native } from '../src/native/index.js';
import { KeyService } from '../src/keys/service.js';
import { FileKeystore } from '../src/keystore/file.js';
import { LocalRoot } from '../src/roots/local.js';
import { Pkcs11Root, initPkcs11Root, tokenObjectLabel, type Pkcs11RootOptions } from '../src/roots/pkcs11.js';
import { padField } from '../src/roots/pkcs11-token.js';
import type { RootOfTrust } from '../src/roots/types.js';
import { measure } from './lib/measure.js';
import { JSON_MODE, emitJson, report } from './lib/report.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? '1.5');
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? '0.5');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? '5');
const CONCURRENCY = Number(process.env.BENCH_PKCS11_CONCURRENCY ?? '4');
const MODULE = process.env.BENCH_PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';
const LABEL = 'kms-bench';
const PIN = '246813';
const KEY_ID = 'bench';

const log = report;
const progress = (line: string): void => {
  process.stderr.write(line + '\n');
};

// ---- setup --------------------------------------------------------------------------------------

function makeToken(dir: string): string {
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { mode: 0o700 });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  process.env.SOFTHSM2_CONF = conf; // read by SoftHSM in C_Initialize, here and in softhsm2-util
  const r = spawnSync('softhsm2-util', ['--init-token', '--free', '--label', LABEL, '--pin', PIN, '--so-pin', '97531864'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`softhsm2-util --init-token failed: ${r.error?.message ?? r.stderr}`);
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, PIN, { mode: 0o600 });
  return pinFile;
}

async function service(root: RootOfTrust, stateDir: string): Promise<KeyService> {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const s = new KeyService({ keystore: new FileKeystore(stateDir), root, idleTtlMs: 3_600_000, offlineTtlMs: 3_600_000 });
  await s.start();
  await s.createKey(KEY_ID);
  return s;
}

/** Synchronous data keys (cached slot): ops/s. */
function syncRate(s: KeyService): number {
  const first = s.generateDataKey(KEY_ID);
  if (first instanceof Promise) throw new Error('expected a cached key');
  return measure(() => {
    s.generateDataKey(KEY_ID);
  }, SECONDS, WARMUP).opsPerSecond;
}

/** `workers` loops each awaiting one op at a time, for SECONDS after WARMUP: ops/s. */
async function asyncRate(workers: number, op: (worker: number) => Promise<unknown>): Promise<number> {
  const runFor = async (seconds: number): Promise<{ ops: number; elapsed: number }> => {
    const start = performance.now();
    const end = start + seconds * 1000;
    let ops = 0;
    await Promise.all(Array.from({ length: workers }, async (_, w) => {
      while (performance.now() < end) {
        await op(w);
        ops++;
      }
    }));
    return { ops, elapsed: (performance.now() - start) / 1000 };
  };
  await runFor(WARMUP);
  const { ops, elapsed } = await runFor(SECONDS);
  return ops / elapsed;
}

/** The bare pkcs11js baseline: same module, token and key object, one session per worker. */
async function rawRate(keyLabel: string, aadLength: number): Promise<number> {
  const p = new pkcs11js.PKCS11();
  p.load(MODULE);
  p.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  try {
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label === padField(LABEL, 32));
    if (slot === undefined) throw new Error(`token ${LABEL} not found`);
    const sessions = Array.from({ length: CONCURRENCY }, () => p.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION));
    p.C_Login(sessions[0] as Buffer, pkcs11js.CKU_USER, PIN);
    p.C_FindObjectsInit(sessions[0] as Buffer, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_LABEL, value: keyLabel }]);
    const key = p.C_FindObjects(sessions[0] as Buffer);
    p.C_FindObjectsFinal(sessions[0] as Buffer);
    if (key === null) throw new Error(`key ${keyLabel} not found`);
    const buffers = sessions.map(() => ({ iv: Buffer.alloc(12), aad: Buffer.alloc(aadLength, 7), input: Buffer.alloc(32, 1), out: Buffer.alloc(48) }));
    const rate = await asyncRate(CONCURRENCY, async (w) => {
      const b = buffers[w] as (typeof buffers)[number];
      const session = sessions[w] as Buffer;
      randomFillSync(b.iv);
      const parameter: GcmParams = { type: pkcs11js.CK_PARAMS_GCM, iv: b.iv, ivBits: 96, aad: b.aad, tagBits: 128 };
      p.C_EncryptInit(session, { mechanism: pkcs11js.CKM_AES_GCM, parameter }, key);
      await p.C_EncryptAsync(session, b.input, b.out);
    });
    for (const s of sessions) p.C_CloseSession(s);
    return rate;
  } finally {
    p.C_Finalize();
  }
}

// ---- main ---------------------------------------------------------------------------------------

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

async function main(): Promise<void> {
  if (!existsSync(MODULE)) throw new Error(`${MODULE} not found: install softhsm2 (scripts/install-test-deps.sh)`);
  native.setAllowUnlockedMemory(true); // a benchmark, not a deployment: run even with a low RLIMIT_MEMLOCK
  const dir = mkdtempSync(join(os.tmpdir(), 'kms-bench-p11-'));
  try {
    const pinFile = makeToken(dir);
    const rootOptions = (mode: 'wrap' | 'on-token'): Pkcs11RootOptions => ({
      module: MODULE, tokenLabel: LABEL, pinFile, env: process.env, keyLabel: 'bench-root', mode,
      sessions: CONCURRENCY, stateDir: join(dir, `state-${mode}`), monitorIntervalMs: 0,
    });
    await initPkcs11Root({ ...rootOptions('wrap') });

    // local vs wrap: both serve from slots; alternate rounds.
    progress(`local root vs pkcs11 wrap mode: ${ROUNDS} rounds of ${SECONDS} s each ...`);
    const localRoot = LocalRoot.open({ keyFile: join(dir, 'root.key'), saltFile: join(dir, 'root.salt'), create: true, env: {} });
    const local = await service(localRoot, join(dir, 'state-local'));
    const wrap = await service(Pkcs11Root.open(rootOptions('wrap')), join(dir, 'state-wrap'));
    let localBest = 0;
    let wrapBest = 0;
    for (let r = 0; r < ROUNDS; r++) {
      localBest = Math.max(localBest, syncRate(local));
      wrapBest = Math.max(wrapBest, syncRate(wrap));
    }
    await local.close();
    await wrap.close();

    // on-token vs raw pkcs11js: same token, same key object, same concurrency; alternate rounds.
    progress(`pkcs11 on-token mode vs raw pkcs11js, concurrency ${CONCURRENCY}: ${ROUNDS} rounds ...`);
    mkdirSync(join(dir, 'state-on-token'), { mode: 0o700 });
    const aadLength = 7 + Buffer.byteLength(KEY_ID) + 12; // header ‖ nonce; empty context
    let onTokenBest = 0;
    let rawBest = 0;
    for (let r = 0; r < ROUNDS; r++) {
      const onToken = new KeyService({
        keystore: new FileKeystore(join(dir, 'state-on-token')), root: Pkcs11Root.open(rootOptions('on-token')),
        idleTtlMs: 3_600_000, offlineTtlMs: 3_600_000,
      });
      await onToken.start();
      if (r === 0) await onToken.createKey(KEY_ID);
      onTokenBest = Math.max(onTokenBest, await asyncRate(CONCURRENCY, () => Promise.resolve(onToken.generateDataKey(KEY_ID))));
      await onToken.close();
      rawBest = Math.max(rawBest, await rawRate(tokenObjectLabel(KEY_ID, 1), aadLength));
    }

    const wrapRatio = wrapBest / localBest;
    const tokenRatio = onTokenBest / rawBest;
    const verdict = (ok: boolean): string => (ok ? 'PASS' : 'MISS');
    const rows: string[][] = [
      ['local root (slot, XAES-256-GCM)', fmt(localBest), '', '', ''],
      ['pkcs11 wrap mode (slot, XAES-256-GCM)', fmt(wrapBest), `${wrapRatio.toFixed(2)} x local`, '>= 0.90', verdict(wrapRatio >= 0.9)],
      [`raw pkcs11js C_Encrypt, AES-GCM, ${CONCURRENCY} sessions`, fmt(rawBest), '', '', ''],
      [`pkcs11 on-token mode, ${CONCURRENCY} in flight`, fmt(onTokenBest), `${tokenRatio.toFixed(2)} x raw`, '>= 0.80', verdict(tokenRatio >= 0.8)],
    ];
    const header = ['generate_data_key (in process, 32 bytes)', 'ops/s', 'ratio', 'target', 'verdict'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
    const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
    log(`pkcs11 root benchmark: SoftHSM2 token in ${dir}, node ${process.version}, ${os.cpus().length} CPUs, best of ${ROUNDS} x ${SECONDS} s`);
    log(line(header));
    for (const r of rows) log(line(r));
    if (JSON_MODE) {
      emitJson({
        wrap_gdk_ops: Math.round(wrapBest), local_gdk_ops: Math.round(localBest),
        ontoken_gdk_ops: Math.round(onTokenBest), raw_pkcs11_encrypt_ops: Math.round(rawBest),
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:pkcs11: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
