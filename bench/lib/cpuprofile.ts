// Summarises a V8 .cpuprofile (node --cpu-prof): self and inclusive time per function, and self time
// per source file. For reading a daemon profile taken under bench:rpc load:
//
//   BENCH_PHASES=pipelined BENCH_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof --cpu-prof-interval=100" \
//     node dist/bench/rpc.js
//   node dist/bench/lib/cpuprofile.js /tmp/prof/*.cpuprofile [--top 40] [--from-ms 2000 --to-ms 7000]
//
// --from-ms/--to-ms keep only samples in that window (ms since the profile started), e.g. the
// measured interval, leaving start-up and shutdown out.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const u = url.replace(/^file:\/\//, '');
  const i = u.indexOf('/dist/');
  if (i >= 0) return u.slice(i + 1);
  const j = u.indexOf('/node_modules/');
  if (j >= 0) return u.slice(j + 1);
  return u;
}

function label(f: CallFrame): string {
  const name = f.functionName === '' ? '(anonymous)' : f.functionName;
  const url = shortUrl(f.url);
  return url === '' ? name : `${name} ${url}:${f.lineNumber + 1}`;
}

function category(f: CallFrame): string {
  if (f.url === '') return f.functionName.startsWith('(') ? f.functionName : '(native/builtin)';
  if (f.url.startsWith('node:')) return 'node: ' + f.url.slice(5);
  return shortUrl(f.url);
}

export function summarise(profile: Profile, fromMs = 0, toMs = Infinity, top = 40): string {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let t = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const ms = t / 1000;
    if (ms < fromMs || ms > toMs) continue;
    const node = byId.get(profile.samples[i] as number);
    if (node === undefined) continue;
    if (node.callFrame.functionName === '(idle)') {
      idle++;
      continue;
    }
    total++;
    const l = label(node.callFrame);
    self.set(l, (self.get(l) ?? 0) + 1);
    const cat = category(node.callFrame);
    files.set(cat, (files.get(cat) ?? 0) + 1);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id) as ProfileNode;
      const nl = label(n.callFrame);
      if (seen.has(nl)) continue;
      seen.add(nl);
      incl.set(nl, (incl.get(nl) ?? 0) + 1);
    }
  }
  const pct = (n: number): string => ((100 * n) / Math.max(total, 1)).toFixed(1).padStart(5) + '%';
  const lines: string[] = [];
  lines.push(`samples: ${total} busy, ${idle} idle (busy ${((100 * total) / Math.max(total + idle, 1)).toFixed(1)}% of the window)`);
  lines.push('');
  lines.push(`self time, top ${top}:`);
  for (const [l, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(n)}  ${l}`);
  lines.push('');
  lines.push('self time by file / category:');
  for (const [l, n] of [...files].sort((a, b) => b[1] - a[1]).slice(0, 25)) lines.push(`  ${pct(n)}  ${l}`);
  lines.push('');
  lines.push(`inclusive time, top ${top}:`);
  for (const [l, n] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(n)}  ${l}`);
  return lines.join('\n');
}

if (process.argv[1] !== undefined && /cpuprofile\.js$/.test(process.argv[1])) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: 'string' }, 'from-ms': { type: 'string' }, 'to-ms': { type: 'string' } },
  });
  for (const file of positionals) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    process.stdout.write(`== ${file}\n`);
    process.stdout.write(
      summarise(profile, Number(values['from-ms'] ?? 0), values['to-ms'] !== undefined ? Number(values['to-ms']) : Infinity, Number(values.top ?? 40)) + '\n',
    );
  }
}
