// A small, strict parser of the Prometheus text exposition format (0.0.4), written for the tests
// from the format's rules, independent of the daemon's writer. It throws on anything a scraper could
// misread: unknown comment forms, HELP/TYPE after samples or twice, a family split in two, bad names,
// bad label syntax or escapes, duplicate series, values that are not floats, negative counters,
// histograms whose buckets are not cumulative or disagree with _count, or lack _sum/_count/+Inf.

export type PromType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: PromType;
  help?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)$/;

function parseValue(text: string, line: number): number {
  // As Prometheus reads them (Go's ParseFloat): NaN and Inf in any case (prom-client writes "Nan").
  const lower = text.toLowerCase();
  if (lower === '+inf' || lower === 'inf') return Infinity;
  if (lower === '-inf') return -Infinity;
  if (lower === 'nan') return NaN;
  if (!FLOAT.test(text)) throw new Error(`line ${line}: ${JSON.stringify(text)} is not a float`);
  return Number(text);
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`line ${line}: label without "="`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`);
    if (name in labels) throw new Error(`line ${line}: label ${name} twice`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value must be quoted`);
    let j = eq + 2;
    let value = '';
    for (;;) {
      if (j >= text.length) throw new Error(`line ${line}: unterminated label value`);
      const c = text[j] as string;
      if (c === '\\') {
        const n = text[j + 1];
        if (n === '\\') value += '\\';
        else if (n === '"') value += '"';
        else if (n === 'n') value += '\n';
        else throw new Error(`line ${line}: bad escape \\${n ?? ''}`);
        j += 2;
      } else if (c === '"') {
        j += 1;
        break;
      } else if (c === '\n') {
        throw new Error(`line ${line}: newline in label value`);
      } else {
        value += c;
        j += 1;
      }
    }
    labels[name] = value;
    if (j === text.length) break;
    if (text[j] !== ',') throw new Error(`line ${line}: expected "," between labels`);
    i = j + 1;
    if (i === text.length) break; // a trailing comma is allowed
  }
  return labels;
}

/** The family a sample belongs to: histogram/summary samples carry a suffix. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct !== undefined && direct.type !== 'histogram' && direct.type !== 'summary') return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (name.endsWith(suffix)) {
      const f = families.get(name.slice(0, -suffix.length));
      if (f !== undefined && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
    }
  }
  return direct?.type === 'summary' ? direct : undefined;
}

export function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, Family>();
  const closed = new Set<string>();
  const series = new Set<string>();
  let current: Family | undefined;
  const lines = text.slice(0, -1).split('\n');
  const open = (name: string, line: number): Family => {
    if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${JSON.stringify(name)}`);
    let f = families.get(name);
    if (f === undefined) {
      if (closed.has(name)) throw new Error(`line ${line}: family ${name} appears twice`);
      f = { name, type: 'untyped', samples: [] };
      families.set(name, f);
    } else if (f !== current) {
      throw new Error(`line ${line}: family ${name} is split (not contiguous)`);
    }
    if (current !== undefined && current !== f) closed.add(current.name);
    current = f;
    return f;
  };
  lines.forEach((raw, idx) => {
    const line = idx + 1;
    if (raw.trim() === '') return; // the format: "empty lines are ignored"
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (m === null) throw new Error(`line ${line}: unexpected comment ${JSON.stringify(raw.slice(0, 40))}`);
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      const f = open(name, line);
      if (f.samples.length > 0) throw new Error(`line ${line}: ${kind} for ${name} after its samples`);
      if (kind === 'HELP') {
        if (f.help !== undefined) throw new Error(`line ${line}: HELP for ${name} twice`);
        f.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      } else {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new Error(`line ${line}: bad type ${rest}`);
        if (f.type !== 'untyped' || (f as { typed?: boolean }).typed === true) throw new Error(`line ${line}: TYPE for ${name} twice`);
        f.type = rest as PromType;
        (f as { typed?: boolean }).typed = true;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(raw);
    if (m === null) throw new Error(`line ${line}: malformed sample ${JSON.stringify(raw.slice(0, 80))}`);
    const [, name, labelText, valueText] = m as unknown as [string, string, string | undefined, string];
    const labels = labelText === undefined || labelText === '' ? {} : parseLabels(labelText, line);
    const value = parseValue(valueText, line);
    let f = familyOf(name, families);
    if (f === undefined) f = open(name, line);
    else if (f !== current) throw new Error(`line ${line}: family ${f.name} is split (not contiguous)`);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (series.has(key)) throw new Error(`line ${line}: duplicate series ${name}${labelText === undefined ? '' : `{${labelText}}`}`);
    series.add(key);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`line ${line}: counter ${name} is ${valueText}`);
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new Error(`${f.name}_bucket without le`);
      g.buckets.push([parseValue(le, 0), s.value]);
    } else if (s.name === `${f.name}_sum`) g.sum = s.value;
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else throw new Error(`unexpected sample ${s.name} in histogram ${f.name}`);
  }
  for (const [key, g] of groups) {
    if (g.sum === undefined || g.count === undefined) throw new Error(`histogram ${f.name} ${key} lacks _sum or _count`);
    const last = g.buckets[g.buckets.length - 1];
    if (last === undefined || last[0] !== Infinity) throw new Error(`histogram ${f.name} ${key} lacks the +Inf bucket`);
    for (let i = 1; i < g.buckets.length; i++) {
      const [prevLe, prevCount] = g.buckets[i - 1] as [number, number];
      const [le, count] = g.buckets[i] as [number, number];
      if (!(le > prevLe)) throw new Error(`histogram ${f.name} ${key}: le not increasing`);
      if (count < prevCount) throw new Error(`histogram ${f.name} ${key}: buckets not cumulative`);
    }
    if (last[1] !== g.count) throw new Error(`histogram ${f.name} ${key}: +Inf bucket ${last[1]} != _count ${g.count}`);
  }
}

/** The value of the one sample `name` with exactly these labels (0 when absent). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      const keys = Object.keys(s.labels);
      if (keys.length === Object.keys(labels).length && keys.every((k) => s.labels[k] === labels[k])) return s.value;
    }
  }
  return 0;
}
