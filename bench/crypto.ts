// Crypto micro-benchmarks for the native addon, one core, fixed time per measurement.
//
//   npm run bench:crypto                # readable table
//   npm run -s bench:crypto -- --json   # stdout: ONE JSON line only (the table goes to stderr)
//
// gcm_1mib  AES-256-GCM sealing 1 MiB: native gcmSeal (slot key, preallocated out) vs node:crypto
//           createCipheriv per message vs `openssl speed -evp aes-256-gcm -bytes 1048576`.
// gcm_4kib  the same with 4 KiB messages (ops/s).
// xaes_32b  sealing a 32-byte data key: native xaesSealEnvelope vs the same XAES-256-GCM envelope
//           written with node:crypto (bench/lib/xaes-node.ts, checked against the C2SP vectors first).
//
// Units: MB = 1,000,000 bytes everywhere (openssl's "k" = 1,000 bytes/s is converted accordingly).
import { execFileSync } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { native, type SlotHandle } from '../src/native/index.js';
import { measure } from './lib/measure.js';
import { NodeXaes } from './lib/xaes-node.js';
import { JSON_MODE, emitJson, meets, report, shownRatio } from './lib/report.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? '2');
const WARMUP = Number(process.env.BENCH_WARMUP_SECONDS ?? '0.5');
const OPENSSL_SECONDS = 3;
const MB = 1e6;
const MIB = 1 << 20;

const log = report;
const progress = (line: string): void => {
  process.stderr.write(line + '\n');
};

// ---- setup --------------------------------------------------------------------------------------

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'binding.gyp'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (binding.gyp)');
    dir = parent;
  }
  return dir;
}

function importKey(key: Uint8Array): SlotHandle {
  const buf = native.secureBuffer(32);
  buf.set(key);
  const slot = native.slotImport(buf);
  native.secureRelease(buf);
  return slot;
}

interface XaesVector {
  key: string;
  nonce_ascii: string;
  L: string;
  K1: string;
  derived_key: string;
  plaintext_ascii: string;
  aad_ascii: string;
  ciphertext_and_tag: string;
}

/** The node:crypto XAES must match the C2SP spec vectors (and the addon) before it is timed. */
function verifyNodeXaes(): string {
  const file = resolve(repoRoot(), '..', 'shared', 'vectors', 'xaes_256_gcm.json');
  const checks: string[] = [];
  if (existsSync(file)) {
    const vectors = (JSON.parse(readFileSync(file, 'utf8')) as { tests: XaesVector[] }).tests;
    for (const v of vectors) {
      const x = new NodeXaes(Buffer.from(v.key, 'hex'));
      const nonce = Buffer.from(v.nonce_ascii, 'ascii');
      const sealed = x.seal(nonce, Buffer.from(v.plaintext_ascii, 'ascii'), Buffer.from(v.aad_ascii, 'ascii'));
      if (x.L.toString('hex') !== v.L || x.K1.toString('hex') !== v.K1 ||
          x.deriveKey(nonce).toString('hex') !== v.derived_key || sealed.toString('hex') !== v.ciphertext_and_tag) {
        throw new Error('node:crypto XAES-256-GCM does not reproduce the C2SP vector; refusing to benchmark it');
      }
    }
    checks.push(`${vectors.length} C2SP vectors`);
  } else {
    checks.push('C2SP vectors not found (' + file + ')');
  }
  // Cross-check with the addon both ways on the envelope format being timed.
  const key = randomBytes(32);
  const slot = importKey(key);
  const x = new NodeXaes(key);
  const header = randomBytes(16);
  const aad = randomBytes(24);
  const dataKey = randomBytes(32);
  const fromNode = x.sealEnvelope(header, dataKey, aad);
  const out = Buffer.alloc(32);
  if (!native.xaesOpenEnvelope(slot, out, fromNode, 16, aad) || !out.equals(dataKey)) {
    throw new Error('the addon cannot open the node:crypto XAES envelope');
  }
  const fromNative = Buffer.alloc(16 + 24 + 32 + 16);
  fromNative.set(header);
  native.xaesSealEnvelope(slot, fromNative, 16, dataKey, aad);
  const nonce = fromNative.subarray(16, 40);
  const opened = x.open(nonce, fromNative.subarray(40), header, nonce, aad);
  if (!opened?.equals(dataKey)) throw new Error('node:crypto cannot open the addon\'s XAES envelope');
  native.slotDestroy(slot);
  checks.push('envelope interop with the addon');
  return checks.join(', ');
}

function opensslSpeed(): { mbps: number; note: string } {
  try {
    const text = execFileSync(
      'openssl',
      ['speed', '-evp', 'aes-256-gcm', '-bytes', String(MIB), '-seconds', String(OPENSSL_SECONDS)],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 },
    );
    // "AES-256-GCM    4282384.38k" (1000s of bytes per second)
    const m = /^aes-256-gcm\s+([\d.]+)k\s*$/im.exec(text);
    if (!m) return { mbps: 0, note: 'could not parse `openssl speed` output' };
    const version = execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
    return { mbps: (Number(m[1]) * 1000) / MB, note: version };
  } catch (e) {
    return { mbps: 0, note: 'openssl speed failed: ' + (e as Error).message.split('\n')[0] };
  }
}

// ---- benchmarks ---------------------------------------------------------------------------------

/** Results are stored here so no measured work is dead code. */
let sink: Buffer = Buffer.alloc(0);

function gcmNative(slot: SlotHandle, size: number): number {
  const pt = randomBytes(size);
  const out = Buffer.alloc(size + 16);
  const iv = randomBytes(12);
  const aad = Buffer.alloc(0);
  let counter = 0;
  return measure(() => {
    iv.writeUInt32BE(counter++ >>> 0, 8);
    native.gcmSeal(slot, out, iv, pt, aad);
  }, SECONDS, WARMUP).opsPerSecond;
}

function gcmNode(key: Buffer, size: number): number {
  const pt = randomBytes(size);
  const iv = randomBytes(12);
  let counter = 0;
  return measure(() => {
    iv.writeUInt32BE(counter++ >>> 0, 8);
    const c = createCipheriv('aes-256-gcm', key, iv);
    sink = c.update(pt);
    c.final();
    sink = c.getAuthTag();
  }, SECONDS, WARMUP).opsPerSecond;
}

function xaesNative(slot: SlotHandle): number {
  const header = randomBytes(16);
  const dataKey = randomBytes(32);
  const aad = Buffer.from('rustfs/bucket/object-key');
  const out = Buffer.alloc(16 + 24 + 32 + 16);
  out.set(header);
  return measure(() => {
    native.xaesSealEnvelope(slot, out, 16, dataKey, aad);
  }, SECONDS, WARMUP).opsPerSecond;
}

function xaesNode(key: Buffer): number {
  const x = new NodeXaes(key);
  const header = randomBytes(16);
  const dataKey = randomBytes(32);
  const aad = Buffer.from('rustfs/bucket/object-key');
  return measure(() => {
    sink = x.sealEnvelope(header, dataKey, aad);
  }, SECONDS, WARMUP).opsPerSecond;
}

// ---- report -------------------------------------------------------------------------------------

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function ratio(a: number, b: number): string {
  const r = shownRatio(a, b);
  return r === null ? 'n/a' : `${r.toFixed(2)}×`;
}
function status(ok: boolean | null): string {
  return ok === null ? 'n/a' : ok ? 'PASS' : 'MISS';
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
}

function main(): void {
  const started = Date.now();
  const key = randomBytes(32);
  const slot = importKey(key);

  progress('verifying the node:crypto XAES-256-GCM reference…');
  const verified = verifyNodeXaes();

  progress(`gcm 1 MiB: native, node (${SECONDS}s each after ${WARMUP}s warm-up)…`);
  const gcm1Native = (gcmNative(slot, MIB) * MIB) / MB;
  const gcm1Node = (gcmNode(key, MIB) * MIB) / MB;
  progress(`gcm 1 MiB: openssl speed (${OPENSSL_SECONDS}s)…`);
  const openssl = opensslSpeed();

  progress('gcm 4 KiB: native, node…');
  const gcm4Native = gcmNative(slot, 4096);
  const gcm4Node = gcmNode(key, 4096);

  progress('xaes 32 B envelope: native, node…');
  const xNative = xaesNative(slot);
  const xNode = xaesNode(key);
  native.slotDestroy(slot);
  if (sink.length === 0) throw new Error('benchmark produced no output');

  const cpus = os.cpus();
  log(`rustfs-kms crypto bench — node ${process.version} (OpenSSL ${process.versions.openssl}), ${openssl.note}`);
  log(`CPU: ${cpus[0]?.model ?? 'unknown'} (${cpus.length} logical); one core per measurement; ${SECONDS}s per run after ${WARMUP}s warm-up`);
  log(`node:crypto XAES reference verified against: ${verified}`);
  log('Units: MB/s with MB = 1,000,000 bytes; ops/s = messages sealed per second.');
  log();
  const rows: string[][] = [
    ['benchmark', 'native', 'node:crypto', 'openssl speed', 'native/node', 'native/openssl', 'target', 'result'],
    [
      'AES-256-GCM seal 1 MiB (MB/s)',
      fmt(gcm1Native, 1),
      fmt(gcm1Node, 1),
      openssl.mbps > 0 ? fmt(openssl.mbps, 1) : 'n/a',
      ratio(gcm1Native, gcm1Node),
      ratio(gcm1Native, openssl.mbps),
      '≥0.9× openssl, ≥4× node',
      status(openssl.mbps > 0 ? meets(gcm1Native, openssl.mbps, 0.9) && meets(gcm1Native, gcm1Node, 4) : null),
    ],
    ['  vs openssl only', '', '', '', '', '', '≥0.9× openssl', status(openssl.mbps > 0 ? meets(gcm1Native, openssl.mbps, 0.9) : null)],
    ['  vs node only', '', '', '', '', '', '≥4× node', status(meets(gcm1Native, gcm1Node, 4))],
    ['AES-256-GCM seal 4 KiB (ops/s)', fmt(gcm4Native), fmt(gcm4Node), '', ratio(gcm4Native, gcm4Node), '', '', ''],
    [
      'XAES-256-GCM envelope, 32 B key (ops/s)',
      fmt(xNative),
      fmt(xNode),
      '',
      ratio(xNative, xNode),
      '',
      '≥1,000,000/s, ≥10× node',
      status(Math.round(xNative) >= 1_000_000 && meets(xNative, xNode, 10)),
    ],
    ['  ≥1,000,000 ops/s only', '', '', '', '', '', '≥1,000,000/s', status(Math.round(xNative) >= 1_000_000)],
    ['  ≥10× node only', '', '', '', '', '', '≥10× node', status(meets(xNative, xNode, 10))],
  ];
  for (const l of table(rows)) log(l);
  log();
  log(`(4 KiB in MB/s: native ${fmt((gcm4Native * 4096) / MB, 1)}, node ${fmt((gcm4Node * 4096) / MB, 1)}; total ${((Date.now() - started) / 1000).toFixed(1)} s)`);

  if (JSON_MODE) {
    const round1 = (n: number) => Math.round(n * 10) / 10;
    const result = {
      gcm_1mib: { native_mbps: round1(gcm1Native), node_mbps: round1(gcm1Node), openssl_mbps: round1(openssl.mbps) },
      gcm_4kib: { native_ops: Math.round(gcm4Native), node_ops: Math.round(gcm4Node) },
      xaes_32b: { native_ops: Math.round(xNative), node_ops: Math.round(xNode) },
    };
    emitJson(result);
  }
}

main();
