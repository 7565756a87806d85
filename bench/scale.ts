// npm run bench:scale [-- --json] [-- --keys N]: memory and throughput against the number of keys
// (DESIGN section 9: RSS ≤ 100 MiB with 10,000 keys; throughput flat from 1 key to many). A real
// daemon gets N keys; generate_data_key then runs pipelined over 1 key and over all N (each request
// a random key, so every key's version is unwrapped and cached), and the two rates are compared in
// the same run. RSS is the daemon's VmRSS with every key unwrapped and in use, after the load
// phases (the steady state); the peak seen while creating and unwrapping is reported beside it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { KmsClient } from '../src/rpc/client.js';
import { spawnNode, stop, waitForListener } from './lib/children.js';
import { emitJson, report } from './lib/report.js';

const { values } = parseArgs({ options: { json: { type: 'boolean' }, keys: { type: 'string' }, seconds: { type: 'string' } } });
const KEYS = Number(values.keys ?? 10_000);
const SECONDS = Number(values.seconds ?? 3);
const CONNECTIONS = 4;
const WINDOW = 256;

const dist = join(dirname(fileURLToPath(import.meta.url)), '..');
const say = (s: string) => process.stderr.write(`bench:scale: ${s}\n`);

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? Number.NaN : Number(m[1]) / 1024;
}

/** Pipelined generate_data_key for `seconds`, each request on a key picked by `pick`. */
async function rate(clients: KmsClient[], pick: () => string, seconds: number): Promise<number> {
  let done = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(clients.map(async (client) => {
    const lane = async () => {
      while (performance.now() < until) {
        await client.generateDataKey(pick(), { context: { bucket: 'b' } });
        done += 1;
      }
    };
    await Promise.all(Array.from({ length: WINDOW / CONNECTIONS }, lane));
  }));
  return done / seconds;
}

const tmp = mkdtempSync(join(os.tmpdir(), 'rustfs-kms-scale-'));
const socket = join(tmp, 'kms.sock');
const nodeArgs = (process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const daemon = spawnNode('rustfs-kmsd', nodeArgs, join(dist, 'src/daemon/main.js'), ['--dev', '--state-dir', join(tmp, 'state'), '--socket', socket], { cwd: tmp, logPath: join(tmp, 'daemon.log') });
try {
  await waitForListener(daemon, socket);
  const pid = daemon.proc.pid as number;
  const rssEmpty = rssMiB(pid);
  const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => KmsClient.connect(socket, { timeoutMs: 120_000 })));
  say(`creating ${KEYS} keys`);
  const ids = Array.from({ length: KEYS }, (_, i) => `scale-${String(i).padStart(6, '0')}`);
  for (let i = 0; i < ids.length; i += 512) {
    await Promise.all(ids.slice(i, i + 512).map((id, j) => (clients[j % CONNECTIONS] as KmsClient).createKey(id)));
  }
  const rssCreated = rssMiB(pid);
  say('warming up: every key used once');
  for (let i = 0; i < ids.length; i += 1024) {
    await Promise.all(ids.slice(i, i + 1024).map((id, j) => (clients[j % CONNECTIONS] as KmsClient).generateDataKey(id)));
  }
  const rssUnwrapped = rssMiB(pid);
  say(`measuring: ${SECONDS} s over 1 key, ${SECONDS} s over ${KEYS} keys, alternating twice`);
  let one = 0;
  let many = 0;
  for (let round = 0; round < 2; round++) {
    one = Math.max(one, await rate(clients, () => ids[0] as string, SECONDS));
    many = Math.max(many, await rate(clients, () => ids[Math.floor(Math.random() * KEYS)] as string, SECONDS));
  }
  const rssFull = rssMiB(pid);
  const status = await (clients[0] as KmsClient).status();
  await Promise.all(clients.map((c) => c.close()));
  const flat = many / one;
  const rows: [string, string, string, string][] = [
    ['daemon RSS, no keys', `${rssEmpty.toFixed(1)} MiB`, '', ''],
    [`daemon RSS, ${KEYS} keys created`, `${rssCreated.toFixed(1)} MiB`, '', ''],
    [`daemon RSS, ${KEYS} keys just unwrapped`, `${rssUnwrapped.toFixed(1)} MiB`, '', ''],
    [`daemon RSS, ${KEYS} keys in use (after load)`, `${rssFull.toFixed(1)} MiB`, '≤ 100 MiB', rssFull <= 100 ? 'PASS' : 'MISS'],
    ['generate_data_key, 1 key', `${Math.round(one).toLocaleString('en-US')}/s`, '', ''],
    [`generate_data_key, random of ${KEYS} keys`, `${Math.round(many).toLocaleString('en-US')}/s`, '', ''],
    [`throughput ${KEYS} keys / 1 key`, `${flat.toFixed(2)}×`, 'flat (≥ 0.9×)', flat >= 0.9 ? 'PASS' : 'MISS'],
  ];
  report(`keys reported by status: ${status.keyCount}; client: KmsClient, ${CONNECTIONS} connections × ${WINDOW / CONNECTIONS} in flight`);
  for (const r of rows) report(`${r[0].padEnd(42)} ${r[1].padStart(14)}  ${r[2].padEnd(14)} ${r[3]}`);
  if (values.json === true) {
    emitJson({ keys: KEYS, rss_mib: Number(rssFull.toFixed(1)), rss_peak_mib: Number(Math.max(rssCreated, rssUnwrapped, rssFull).toFixed(1)), gdk_ops_1_key: Math.round(one), gdk_ops_all_keys: Math.round(many), flat_ratio: Number(flat.toFixed(3)) });
  }
} finally {
  await stop(daemon);
  rmSync(tmp, { recursive: true, force: true });
}
