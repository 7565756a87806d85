// generate_data_key over the daemon's Unix socket, against the same operation over HTTP/JSON.
//
//   npm run bench:rpc                # readable table
//   npm run -s bench:rpc -- --json   # stdout: ONE JSON line only (the table goes to stderr):
//   {"gdk_pipelined_ops": N, "gdk_rtt_p50_us": N, "gdk_rtt_p99_us": N, "echo_rtt_p50_us": N, "echo_rtt_p99_us": N,
//    "daemon_cpu_us_per_answer": N, "gdk_batch_deks_per_s": N, "http_json_ops": N, "connections": N}
//   (all from the same run; a phase left out with BENCH_PHASES gives null)
//
// Set-up: the REAL daemon (dist/src/daemon/main.js --dev, state and socket in a fresh temp dir, its
// audit log left at its default) runs as a separate process; this process is the only client. The
// machine's cores are shared by both (DESIGN §9 states the targets for 2 cores shared with the client).
//
// gdk_pipelined_ops  `connections` connections, each keeping `window` generate_data_key requests
//                    (32 bytes, context {bucket, object}) outstanding; refills go out as one write per
//                    read. Measured for BENCH_SECONDS after BENCH_WARMUP_SECONDS of warm-up.
// gdk_batch_deks_per_s  data keys per second through generate_data_key_batch (count 100), pipelined:
//                    `connections` connections × BENCH_BATCH_WINDOW (8) batches outstanding.
// echo_rtt_*         the gdk_rtt measurement against a bare Node echo server: this machine's floor.
// daemon_cpu_us_per_answer  the daemon's CPU time per pipelined answer.
// gdk_rtt_*          one connection, one request at a time, 20,000 timed round trips (hrtime, from the
//                    write to the answer decoded and checked) after 2,000 warm-up ones.
// http_json_ops      the same operation through the same KeyService + Pipeline, served as POST
//                    /generate_data_key with JSON (base64 keys) by node:http in its own process on
//                    127.0.0.1; keep-alive sockets, one request in flight per socket (node's HTTP/1.1
//                    client does not pipeline). Run with `connections` sockets and with
//                    `connections` × 16 sockets; the better of the two is reported.
//
// Every answer, socket or HTTP, is decoded and checked (ok, id in flight, key lengths, key id); one bad
// answer or a daemon that dies ends the run with exit code 1. A missed target is reported, not fatal.
//
// Environment: BENCH_CONNECTIONS (4), BENCH_WINDOW (128), BENCH_SECONDS (5), BENCH_WARMUP_SECONDS (1),
// BENCH_RTT_COUNT (20000), BENCH_BATCH_WINDOW (8), BENCH_PHASES (pipelined,batch,rtt,http), BENCH_DAEMON_NODE_ARGS (extra node flags
// for the daemon, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"), BENCH_DAEMON_CONFIG (a config file for
// the daemon, e.g. one with admin_http so the metrics observer is on the hot path), BENCH_KEEP=1
// keeps the temp dir.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { connect } from 'node:net';

import { KmsClient } from '../src/rpc/client.js';
import { assertAlive, onExit, spawnNode, stop, waitForListener, waitForLogLine, type Child } from './lib/children.js';
import { FrameTemplate, RawConnection } from './lib/raw-client.js';
import { HttpLoad } from './lib/http-load.js';
import { mean, percentiles, processCpuSeconds, selfCpuSeconds, sleepChecked } from './lib/stats.js';
import { JSON_MODE, emitJson, report } from './lib/report.js';

const envNum = (name: string, dflt: number): number => {
  const v = process.env[name];
  const n = v === undefined || v === '' ? dflt : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number, not ${v}`);
  return n;
};
const CONNECTIONS = Math.floor(envNum('BENCH_CONNECTIONS', 4));
const WINDOW = Math.floor(envNum('BENCH_WINDOW', 128));
const SECONDS = envNum('BENCH_SECONDS', 5);
const WARMUP = envNum('BENCH_WARMUP_SECONDS', 1);
const RTT_COUNT = Math.floor(envNum('BENCH_RTT_COUNT', 20_000));
const RTT_WARMUP = 2_000;
const HTTP_SOCKET_FACTORS = [1, 16];
const BATCH_COUNT = 100;
const BATCH_WINDOW = Math.floor(envNum('BENCH_BATCH_WINDOW', 8));
const PHASES = new Set((process.env.BENCH_PHASES ?? 'pipelined,batch,rtt,http').split(',').map((s) => s.trim()));
const DAEMON_NODE_ARGS = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(/\s+/).filter((s) => s !== '');
const DAEMON_CONFIG_ARGS = process.env.BENCH_DAEMON_CONFIG ? ['--config', process.env.BENCH_DAEMON_CONFIG] : [];

const KEY_ID = 'bench-key';
const CONTEXT = { bucket: 'b', object: 'o' };
const DATA_KEY_BYTES = 32;
/** Envelope v1, XAES-256-GCM: 7 + key id + 24-byte nonce + data key + 16-byte tag. */
const ENVELOPE_BYTES = 7 + KEY_ID.length + 24 + DATA_KEY_BYTES + 16;

const TARGETS = { pipelinedOps: 100_000, p50Us: 50, p99Us: 250, httpRatio: 3 };

const out = report;
const progress = (line: string): void => {
  process.stderr.write(`bench:rpc: ${line}\n`);
};

function distRoot(): string {
  // dist/bench/rpc.js → dist/
  return join(dirname(fileURLToPath(import.meta.url)), '..');
}

// ---- checks on every answer ---------------------------------------------------------------------

function checkSocketResult(result: unknown): void {
  const r = result as { plaintext?: unknown; ciphertext?: unknown; key_id?: unknown; key_version?: unknown } | null;
  if (r === null || typeof r !== 'object') throw new Error('generate_data_key result is not a map');
  if (!Buffer.isBuffer(r.plaintext) || r.plaintext.length !== DATA_KEY_BYTES) throw new Error('bad plaintext in the answer');
  if (!Buffer.isBuffer(r.ciphertext) || r.ciphertext.length !== ENVELOPE_BYTES) throw new Error('bad ciphertext in the answer');
  if (r.key_id !== KEY_ID || r.key_version !== 1) throw new Error('bad key_id/key_version in the answer');
}

function checkBatchResult(result: unknown): void {
  const r = result as { keys?: unknown; key_id?: unknown } | null;
  if (r === null || typeof r !== 'object' || !Array.isArray(r.keys) || r.keys.length !== BATCH_COUNT) throw new Error('generate_data_key_batch: not 100 keys');
  if (r.key_id !== KEY_ID) throw new Error('bad key_id in the batch answer');
  for (const k of r.keys as Array<{ plaintext?: unknown; ciphertext?: unknown }>) {
    if (!Buffer.isBuffer(k.plaintext) || k.plaintext.length !== DATA_KEY_BYTES) throw new Error('bad plaintext in the batch answer');
    if (!Buffer.isBuffer(k.ciphertext) || k.ciphertext.length !== ENVELOPE_BYTES) throw new Error('bad ciphertext in the batch answer');
  }
}

function checkHttpResult(r: Record<string, unknown>): void {
  if (typeof r.plaintext !== 'string' || Buffer.from(r.plaintext, 'base64').length !== DATA_KEY_BYTES) {
    throw new Error('bad plaintext in the HTTP answer');
  }
  if (typeof r.ciphertext !== 'string' || Buffer.from(r.ciphertext, 'base64').length !== ENVELOPE_BYTES) {
    throw new Error('bad ciphertext in the HTTP answer');
  }
  if (r.key_id !== KEY_ID || r.key_version !== 1) throw new Error('bad key_id/key_version in the HTTP answer');
}

// ---- phases -------------------------------------------------------------------------------------

interface Throughput {
  ops: number;
  seconds: number;
  opsPerSecond: number;
  /** CPU cores busy during the measured interval: this client process, the server process. */
  clientCores: number;
  serverCores: number;
}

/** Runs `start(keepGoing)` loads, warms up, measures `counter()` over SECONDS, stops and drains. */
async function timed(
  server: Child, counter: () => number, start: (keepGoing: () => boolean) => Promise<unknown>,
): Promise<Throughput> {
  let running = true;
  const alive = (): void => assertAlive(server);
  const load = start(() => running);
  let loadError: unknown = null;
  load.catch((err: unknown) => {
    loadError = err;
  });
  const check = (): void => {
    alive();
    if (loadError !== null) throw loadError;
  };
  const pid = server.proc.pid as number;
  try {
    await sleepChecked(WARMUP * 1000, check);
    const c0 = counter();
    const t0 = performance.now();
    const cpuClient0 = selfCpuSeconds();
    const cpuServer0 = processCpuSeconds(pid);
    await sleepChecked(SECONDS * 1000, check);
    const c1 = counter();
    const t1 = performance.now();
    const cpuClient1 = selfCpuSeconds();
    const cpuServer1 = processCpuSeconds(pid);
    running = false;
    await load;
    const seconds = (t1 - t0) / 1000;
    return {
      ops: c1 - c0,
      seconds,
      opsPerSecond: (c1 - c0) / seconds,
      clientCores: (cpuClient1 - cpuClient0) / seconds,
      serverCores: (cpuServer1 - cpuServer0) / seconds,
    };
  } finally {
    running = false;
  }
}

async function pipelined(
  daemon: Child, socketPath: string, template: FrameTemplate, check = checkSocketResult, window = WINDOW,
): Promise<Throughput> {
  const conns = await Promise.all(Array.from({ length: CONNECTIONS }, () => RawConnection.connect(socketPath, template, check)));
  try {
    const counter = (): number => conns.reduce((s, c) => s + c.responses, 0);
    return await timed(daemon, counter, (keepGoing) => Promise.all(conns.map((c) => c.pipeline(window, keepGoing))));
  } finally {
    for (const c of conns) c.close();
  }
}

interface Latency {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

async function roundTrips(daemon: Child, socketPath: string, template: FrameTemplate): Promise<Latency> {
  const conn = await RawConnection.connect(socketPath, template, checkSocketResult);
  try {
    const watch = setInterval(() => {
      if (daemon.exited !== null) conn.close();
    }, 100);
    try {
      await conn.roundTrips(new Float64Array(RTT_WARMUP));
      const samples = new Float64Array(RTT_COUNT);
      await conn.roundTrips(samples);
      assertAlive(daemon);
      const us = samples.map((ns) => ns / 1000);
      const [p50, p90, p99, p999, max] = percentiles(us, [50, 90, 99, 99.9, 100]) as [number, number, number, number, number];
      return { count: RTT_COUNT, p50, p90, p99, p999, max, mean: mean(us) };
    } finally {
      clearInterval(watch);
    }
  } catch (err) {
    assertAlive(daemon); // a dead daemon is the better explanation
    throw err;
  } finally {
    conn.close();
  }
}

/** The same one-at-a-time round trip against a bare Node echo server: this machine's floor. */
async function echoRoundTrips(tmp: string): Promise<Latency> {
  const path = join(tmp, 'echo.sock');
  const server = spawnNode('echo', [], join(distRoot(), 'bench', 'lib', 'echo-server.js'), [path], { cwd: tmp, logPath: join(tmp, 'echo.log') });
  try {
    await waitForListener(server, path);
    const socket = connect(path);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const message = Buffer.alloc(72, 1); // about the size of a generate_data_key request frame
    const once = () => new Promise<void>((resolve) => socket.once('data', () => resolve()));
    for (let i = 0; i < RTT_WARMUP; i++) {
      const reply = once();
      socket.write(message);
      await reply;
    }
    const us = new Float64Array(RTT_COUNT);
    for (let i = 0; i < RTT_COUNT; i++) {
      const reply = once();
      const t = process.hrtime.bigint();
      socket.write(message);
      await reply;
      us[i] = Number(process.hrtime.bigint() - t) / 1000;
    }
    socket.destroy();
    const [p50, p90, p99, p999, max] = percentiles(us, [50, 90, 99, 99.9, 100]) as [number, number, number, number, number];
    return { count: RTT_COUNT, p50, p90, p99, p999, max, mean: mean(us) };
  } finally {
    await stop(server);
  }
}

interface HttpRun extends Throughput {
  sockets: number;
}

async function httpJson(tmp: string, audit: boolean): Promise<{ runs: HttpRun[]; best: HttpRun; audit: boolean }> {
  const server = spawnNode('http-json server', [], join(distRoot(), 'bench/lib/http-server.js'),
    ['--state-dir', join(tmp, 'http-state'), '--key', KEY_ID, ...(audit ? [] : ['--no-audit'])],
    { cwd: tmp, logPath: join(tmp, 'http-server.log') });
  try {
    const m = await waitForLogLine(server, /listening (\d+) audit=(on|off)/);
    const target = {
      host: '127.0.0.1', port: Number(m[1]), path: '/generate_data_key',
      body: Buffer.from(JSON.stringify({ key_id: KEY_ID, context: CONTEXT, bytes: DATA_KEY_BYTES })),
    };
    await waitForListener(server, { host: target.host, port: target.port });
    const runs: HttpRun[] = [];
    for (const factor of HTTP_SOCKET_FACTORS) {
      const sockets = CONNECTIONS * factor;
      progress(`HTTP/JSON, ${sockets} keep-alive sockets, ${WARMUP + SECONDS} s`);
      const load = new HttpLoad(target, sockets, checkHttpResult);
      try {
        const t = await timed(server, () => load.responses, (keepGoing) => load.run(keepGoing));
        runs.push({ ...t, sockets });
      } finally {
        load.close();
      }
    }
    const best = runs.reduce((a, b) => (b.opsPerSecond > a.opsPerSecond ? b : a));
    return { runs, best, audit: m[2] === 'on' };
  } finally {
    await stop(server);
  }
}

// ---- audit log ------------------------------------------------------------------------------------

function daemonMentionsAudit(mainJs: string): boolean {
  try {
    return /audit/i.test(execFileSync(process.execPath, [mainJs, '--help'], { encoding: 'utf8', env: {}, timeout: 10_000 }));
  } catch {
    return false;
  }
}

/** Bytes in the audit log and its rotated files (audit.log.NNNNNN); null when there is none. */
function auditBytes(path: string): number | null {
  let total: number | null = null;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return null;
  }
  const base = basename(path);
  for (const name of names) {
    if (name !== base && !/^\.\d+$/.test(name.slice(base.length))) continue;
    if (!name.startsWith(base)) continue;
    try {
      total = (total ?? 0) + statSync(join(dirname(path), name)).size;
    } catch {
      // rotated away between readdir and stat
    }
  }
  return total;
}

// ---- report -------------------------------------------------------------------------------------

const fmtInt = (n: number): string => Math.round(n).toLocaleString('en-US');
const fmtUs = (n: number): string => n.toFixed(1);
const verdict = (pass: boolean): string => (pass ? 'PASS' : 'MISS');
/** Server CPU time per answer: less sensitive than ops/s to other load on the machine. */
const perAnswerUs = (t: Throughput): string => ((t.serverCores * 1e6) / t.opsPerSecond).toFixed(1);

function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
}

async function runPhases(tmp: string) {
  const loadBefore = os.loadavg()[0] as number;
  const stateDir = join(tmp, 'state');
  const socketPath = join(tmp, 'kms.sock');
  const auditPath = join(stateDir, 'audit.log');
  const mainJs = join(distRoot(), 'src/daemon/main.js');
  if (!existsSync(mainJs)) throw new Error(`${mainJs} not found; build first (npx tsc -p .)`);
  const auditAdvertised = daemonMentionsAudit(mainJs);

  progress(`starting the daemon (${tmp})`);
  const daemon = spawnNode('rustfs-kmsd', DAEMON_NODE_ARGS, mainJs, ['--dev', ...DAEMON_CONFIG_ARGS, '--state-dir', stateDir, '--socket', socketPath],
    { cwd: tmp, logPath: join(tmp, 'daemon.log') });
  let pipe: Throughput | undefined;
  let batch: Throughput | undefined;
  let rtt: Latency | undefined;
  let echo: Latency | undefined;
  let http: { runs: HttpRun[]; best: HttpRun; audit: boolean } | undefined;
  let auditBefore: number | null = null;
  let auditAfter: number | null = null;
  try {
    await waitForListener(daemon, socketPath);
    const admin = await KmsClient.connect(socketPath, { reconnect: false, timeoutMs: 10_000 });
    try {
      await admin.createKey(KEY_ID);
      const dk = await admin.generateDataKey(KEY_ID, { context: CONTEXT, bytes: DATA_KEY_BYTES });
      const back = await admin.decrypt(dk.ciphertext, { context: CONTEXT });
      if (dk.plaintext === undefined || !back.plaintext.equals(dk.plaintext)) throw new Error('data key does not decrypt to itself');
    } finally {
      await admin.close();
    }
    auditBefore = auditBytes(auditPath);
    const template = new FrameTemplate('generate_data_key', { key_id: KEY_ID, context: CONTEXT, bytes: DATA_KEY_BYTES });

    if (PHASES.has('pipelined')) {
      progress(`pipelined: ${CONNECTIONS} connections × ${WINDOW} outstanding, ${WARMUP} s warm-up + ${SECONDS} s`);
      pipe = await pipelined(daemon, socketPath, template);
    }
    if (PHASES.has('batch')) {
      progress(`batch: generate_data_key_batch count ${BATCH_COUNT}, ${CONNECTIONS} connections × ${BATCH_WINDOW} outstanding, ${WARMUP} s warm-up + ${SECONDS} s`);
      const batchTemplate = new FrameTemplate('generate_data_key_batch', { key_id: KEY_ID, context: CONTEXT, bytes: DATA_KEY_BYTES, count: BATCH_COUNT });
      batch = await pipelined(daemon, socketPath, batchTemplate, checkBatchResult, BATCH_WINDOW);
    }
    if (PHASES.has('rtt')) {
      progress(`round trips: ${RTT_WARMUP} warm-up + ${RTT_COUNT} timed on one connection`);
      rtt = await roundTrips(daemon, socketPath, template);
      progress('round trips: the same against a bare Node echo server (baseline)');
      echo = await echoRoundTrips(tmp);
    }
    auditAfter = auditBytes(auditPath);
    assertAlive(daemon);
  } finally {
    await stop(daemon);
  }
  // The HTTP server audits exactly when the daemon did, so both pay the same per-operation record.
  if (PHASES.has('http')) http = await httpJson(tmp, auditAfter !== null);
  return { tmp, auditPath, auditAdvertised, auditBefore, auditAfter, pipe, batch, rtt, echo, http, loadBefore };
}

/** Runs every phase; the temp dir goes away afterwards, error or not (BENCH_KEEP=1 keeps it). */
async function runAll(): Promise<Awaited<ReturnType<typeof runPhases>>> {
  const tmp = mkdtempSync(join(os.tmpdir(), 'rustfs-kms-bench-'));
  const keep = process.env.BENCH_KEEP === '1';
  const remove = (): void => rmSync(tmp, { recursive: true, force: true });
  const unregister = keep ? () => undefined : onExit(remove); // also on SIGINT/SIGTERM
  try {
    return await runPhases(tmp);
  } finally {
    unregister();
    if (keep) progress(`kept ${tmp}`);
    else remove();
  }
}

async function main(): Promise<void> {
  const { tmp, auditPath, auditAdvertised, auditBefore, auditAfter, pipe, batch, rtt, echo, http, loadBefore } = await runAll();

  // ---- table ----
  const cpus = os.cpus();
  out(`generate_data_key: Unix socket (MessagePack RPC) vs HTTP/JSON — ${cpus.length} cores (${cpus[0]?.model.trim() ?? '?'}), node ${process.version}`);
  out(`client: one process; daemon and HTTP server: one process each; all share the machine's cores`);
  out(`machine load (1-min average) before the run: ${loadBefore.toFixed(2)}${loadBefore > 0.5 ? ' — other processes were busy; figures may be low and noisy' : ''}`);
  const auditText = auditAfter !== null
    ? `ON, ${auditPath.replace(tmp, '<tmp>')}(+rotated) written: ${fmtInt(auditBefore ?? 0)} → ${fmtInt(auditAfter)} bytes (${auditAfter > (auditBefore ?? 0) ? 'grew' : 'did NOT grow'})`
    : `no audit log written (${auditAdvertised ? 'the daemon mentions audit in --help, but ' : ''}no file at <state_dir>/audit.log: not implemented by this daemon build)`;
  out(`audit log: ${auditText}`);
  out();
  const w = [44, 14, 16, 8];
  out(row(['measure', 'value', 'target', 'result'], w));
  out(row(['-'.repeat(44), '-'.repeat(14), '-'.repeat(16), '-'.repeat(8)], w));
  if (pipe !== undefined) {
    out(row([`pipelined gdk (${CONNECTIONS} conn × ${WINDOW} window)`, `${fmtInt(pipe.opsPerSecond)}/s`, `≥ ${fmtInt(TARGETS.pipelinedOps)}/s`,
      `${verdict(pipe.opsPerSecond >= TARGETS.pipelinedOps)} ${(pipe.opsPerSecond / TARGETS.pipelinedOps).toFixed(2)}×`], w));
  }
  if (batch !== undefined) {
    out(row([`gdk_batch ×${BATCH_COUNT} (${CONNECTIONS} conn × ${BATCH_WINDOW} window)`, `${fmtInt(batch.opsPerSecond * BATCH_COUNT)} keys/s`, '', ''], w));
  }
  if (rtt !== undefined) {
    out(row(['round trip p50 (1 conn, 1 in flight)', `${fmtUs(rtt.p50)} µs`, `≤ ${TARGETS.p50Us} µs`,
      `${verdict(rtt.p50 <= TARGETS.p50Us)} ${(TARGETS.p50Us / rtt.p50).toFixed(2)}×`], w));
    out(row(['round trip p99', `${fmtUs(rtt.p99)} µs`, `≤ ${TARGETS.p99Us} µs`,
      `${verdict(rtt.p99 <= TARGETS.p99Us)} ${(TARGETS.p99Us / rtt.p99).toFixed(2)}×`], w));
    if (echo !== undefined) {
      out(row(['  baseline: bare Node echo p50 / p99', `${fmtUs(echo.p50)} / ${fmtUs(echo.p99)} µs`, '', `daemon ${(rtt.p50 / echo.p50).toFixed(2)}× echo at p50`], w));
    }
  }
  if (http !== undefined) {
    out(row([`HTTP/JSON gdk (best: ${http.best.sockets} keep-alive sockets)`, `${fmtInt(http.best.opsPerSecond)}/s`, '', ''], w));
  }
  if (pipe !== undefined && http !== undefined) {
    const ratio = pipe.opsPerSecond / http.best.opsPerSecond;
    out(row(['socket / HTTP/JSON', `${ratio.toFixed(2)}×`, `≥ ${TARGETS.httpRatio}×`,
      `${verdict(ratio >= TARGETS.httpRatio)} ${(ratio / TARGETS.httpRatio).toFixed(2)}×`], w));
  }
  out('(result column: PASS/MISS and measured/target, >1× is better than the target)');
  out();
  out('details');
  if (pipe !== undefined) {
    out(`  pipelined: ${fmtInt(pipe.ops)} answers in ${pipe.seconds.toFixed(2)} s; CPU: daemon ${pipe.serverCores.toFixed(2)} cores ` +
      `(${perAnswerUs(pipe)} µs per answer), client ${pipe.clientCores.toFixed(2)} cores`);
  }
  if (rtt !== undefined) {
    out(`  round trip over ${fmtInt(rtt.count)}: mean ${fmtUs(rtt.mean)}  p50 ${fmtUs(rtt.p50)}  p90 ${fmtUs(rtt.p90)}  p99 ${fmtUs(rtt.p99)}  p99.9 ${fmtUs(rtt.p999)}  max ${fmtUs(rtt.max)} µs`);
  }
  if (http !== undefined) {
    for (const r of http.runs) {
      out(`  HTTP/JSON ${String(r.sockets).padStart(3)} sockets × 1 in flight: ${fmtInt(r.opsPerSecond)}/s; CPU: server ${r.serverCores.toFixed(2)} cores ` +
        `(${perAnswerUs(r)} µs per answer), client ${r.clientCores.toFixed(2)} cores`);
    }
    out('  (node:http keep-alive Agent, maxSockets = sockets; HTTP/1.1 is not pipelined, so concurrency = sockets)');
    out(`  HTTP server: same KeyService + Pipeline in its own process, audit log ${http.audit ? 'ON (same AuditLog class)' : 'off (the daemon wrote none either)'}`);
  }
  if (pipe !== undefined && http !== undefined) {
    const sock = (pipe.serverCores * 1e6) / pipe.opsPerSecond;
    const cheapest = Math.min(...http.runs.map((r) => (r.serverCores * 1e6) / r.opsPerSecond));
    out(`  server CPU per answer, socket vs HTTP/JSON (cheapest run): ${sock.toFixed(1)} vs ${cheapest.toFixed(1)} µs = ${(cheapest / sock).toFixed(2)}× ` +
      '(less sensitive to other load than the ops/s ratio)');
  }

  if (JSON_MODE) {
    const n = (v: number | undefined, digits = 0): string => (v === undefined || !Number.isFinite(v) ? 'null' : digits === 0 ? String(Math.round(v)) : v.toFixed(digits));
    const cpuPerAnswer = pipe !== undefined ? (pipe.serverCores * 1e6) / pipe.opsPerSecond : undefined;
    emitJson(`{"gdk_pipelined_ops": ${n(pipe?.opsPerSecond)}, "gdk_rtt_p50_us": ${n(rtt?.p50, 1)}, "gdk_rtt_p99_us": ${n(rtt?.p99, 1)}, ` +
      `"echo_rtt_p50_us": ${n(echo?.p50, 1)}, "echo_rtt_p99_us": ${n(echo?.p99, 1)}, "daemon_cpu_us_per_answer": ${n(cpuPerAnswer, 1)}, ` +
      `"gdk_batch_deks_per_s": ${n(batch !== undefined ? batch.opsPerSecond * BATCH_COUNT : undefined)}, ` +
      `"http_json_ops": ${n(http?.best.opsPerSecond)}, "connections": ${CONNECTIONS}}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:rpc: FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
