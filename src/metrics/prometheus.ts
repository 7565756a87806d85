// Prometheus text exposition format 0.0.4: one writer that gets the details right once (HELP/TYPE
// before samples, label escaping, +Inf, one contiguous block per family).

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export type MetricType = 'counter' | 'gauge' | 'histogram';
export type Labels = Readonly<Record<string, string>>;

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function formatLabels(labels: Labels | undefined, extra?: [string, string]): string {
  const parts: string[] = [];
  if (labels !== undefined) {
    for (const [k, v] of Object.entries(labels)) {
      if (!LABEL_NAME.test(k) || k.startsWith('__')) throw new Error(`invalid label name ${JSON.stringify(k)}`);
      parts.push(`${k}="${escapeLabelValue(v)}"`);
    }
  }
  if (extra !== undefined) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

/** Accumulates metric families; `toString()` is the exposition. */
export class ExpositionWriter {
  private readonly lines: string[] = [];
  private readonly seen = new Set<string>();

  private header(name: string, type: MetricType, help: string): void {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    if (this.seen.has(name)) throw new Error(`metric family ${name} written twice`);
    this.seen.add(name);
    this.lines.push(`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`);
  }

  /** A counter or gauge family with one sample per label set. */
  family(name: string, type: 'counter' | 'gauge', help: string, samples: ReadonlyArray<{ labels?: Labels; value: number }>): void {
    this.header(name, type, help);
    for (const s of samples) this.lines.push(`${name}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  }

  /**
   * A histogram family. `buckets` are the upper bounds (ascending, without +Inf); `counts[i]` is the
   * number of observations that fell in bucket i (not cumulative), `counts[buckets.length]` those
   * above the last bound.
   */
  histogram(
    name: string,
    help: string,
    buckets: readonly number[],
    series: ReadonlyArray<{ labels: Labels; counts: ArrayLike<number>; sum: number }>,
  ): void {
    this.header(name, 'histogram', help);
    for (const s of series) {
      let cumulative = 0;
      for (let i = 0; i < buckets.length; i++) {
        cumulative += s.counts[i] ?? 0;
        this.lines.push(`${name}_bucket${formatLabels(s.labels, ['le', formatValue(buckets[i] as number)])} ${cumulative}`);
      }
      cumulative += s.counts[buckets.length] ?? 0;
      this.lines.push(`${name}_bucket${formatLabels(s.labels, ['le', '+Inf'])} ${cumulative}`);
      this.lines.push(`${name}_sum${formatLabels(s.labels)} ${formatValue(s.sum)}`);
      this.lines.push(`${name}_count${formatLabels(s.labels)} ${cumulative}`);
    }
  }

  toString(): string {
    return this.lines.join('\n') + '\n';
  }
}
