// The daemon's metrics, exposed through prom-client's registry: what the one request pipeline sees
// (every operation over the socket, the admin HTTP API and the in-process library: counts per op,
// transport and outcome, error codes, latency histograms), what the admin HTTP API answers, gauges
// read at scrape time (keys, the key cache, locked memory, connections), and prom-client's own
// process metrics (CPU, RSS, heap, event-loop lag, GC, open file descriptors).
//
// The observer runs on the hot path of every request, so it counts into plain arrays (a Map lookup,
// a few increments, a short bucket scan, no allocation); prom-client's labelled updates cost ~0.3–2 µs
// a request here, a tenth of the daemon's whole budget. The prom-client metrics read those arrays
// when scraped.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isOpName } from '../ops/protocol.js';
import type { AuditEvent, PipelineObserver } from '../ops/pipeline.js';

/** Latency bucket bounds in seconds: 50 µs … 10 s. */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
const LATENCY_BUCKETS_US = LATENCY_BUCKETS_S.map((s) => Math.round(s * 1e6));

const TRANSPORTS = ['socket', 'http', 'library'] as const;
const OUTCOMES = ['success', 'denied', 'failure'] as const;
const HTTP_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH']);

class OpSeries {
  readonly outcomes = [0, 0, 0];
  /** Per-bucket (not cumulative) counts; the last slot is above the largest bound. */
  readonly counts = new Float64Array(LATENCY_BUCKETS_US.length + 1);
  sumUs = 0;
}

function transportIndex(t: string): number {
  return t === 'socket' ? 0 : t === 'http' ? 1 : 2;
}

type DurationLabels = 'op' | 'transport';
// prom-client types bucket samples with the metric's own labels only; 'le' is added per sample.
type BucketLabels = DurationLabels | 'le';
type HistogramValues = Awaited<ReturnType<Histogram<DurationLabels>['get']>>;

const DURATION_NAME = 'rustfs_kms_operation_duration_seconds';
const DURATION_HELP = 'Time from receiving a request to its answer inside the pipeline (parse, policy, handler, audit), by operation and transport.';

/**
 * A prom-client histogram whose samples come from counts kept elsewhere: `get()` (what the registry
 * renders) reads them; its own `observe` is never called.
 */
class CountedHistogram extends Histogram<DurationLabels> {
  constructor(
    private readonly source: () => Iterable<{ op: string; transport: string; series: OpSeries }>,
    registry: Registry,
  ) {
    super({
      name: DURATION_NAME, help: DURATION_HELP, labelNames: ['op', 'transport'], buckets: [...LATENCY_BUCKETS_S], registers: [registry],
    });
  }

  /** What the registry renders (it prefers this to get() when present). */
  async getForPromString(): Promise<HistogramValues> {
    return this.get();
  }

  override async get(): Promise<HistogramValues> {
    const bucketName = `${DURATION_NAME}_bucket`;
    const values: HistogramValues['values'] = [];
    for (const { op, transport, series } of this.source()) {
      const labels = { op, transport };
      let cumulative = 0;
      LATENCY_BUCKETS_S.forEach((le, i) => {
        cumulative += series.counts[i] ?? 0;
        values.push({ metricName: bucketName, labels: { ...labels, le } as Record<BucketLabels, string | number>, value: cumulative });
      });
      cumulative += series.counts[LATENCY_BUCKETS_S.length] ?? 0;
      values.push({ metricName: bucketName, labels: { ...labels, le: '+Inf' } as Record<BucketLabels, string | number>, value: cumulative });
      values.push({ metricName: `${DURATION_NAME}_sum`, labels, value: series.sumUs / 1e6 });
      values.push({ metricName: `${DURATION_NAME}_count`, labels, value: cumulative });
    }
    // prom-client's typings call `type` a numeric enum; at run time (and in the exposition) it is the string.
    const metric = { name: DURATION_NAME, help: DURATION_HELP, type: 'histogram', aggregator: 'sum', collect: () => undefined, values };
    return metric as unknown as HistogramValues;
  }
}

/** A gauge read when the metrics are rendered. */
export interface GaugeSource {
  name: string;
  help: string;
  /** The label names of its samples; none for a single number. */
  labelNames?: readonly string[];
  /** One number, or one sample per label set (with exactly `labelNames`). */
  read: () => number | ReadonlyArray<{ labels: Record<string, string>; value: number }>;
  /** A value that only grows (kept elsewhere, read at scrape time). Default gauge. */
  type?: 'gauge' | 'counter';
}

export interface MetricTotals {
  success: number;
  denied: number;
  failure: number;
  errorCodes: Map<string, number>;
  /** Per bucket of LATENCY_BUCKETS_S (not cumulative); the last is above the largest bound. */
  latencyCounts: number[];
}

export class Metrics {
  readonly registry = new Registry();
  private readonly ops = new Map<string, Array<OpSeries | undefined>>();
  private readonly errors = new Map<string, Map<string, number>>();
  /** Every gauge source, for `gauge(name)` (madmin's JSON metrics read single numbers). */
  private readonly sources: GaugeSource[] = [];
  private readonly http: Counter<'route' | 'method' | 'status'>;
  private readonly startedAt = Date.now();

  /** With `processMetrics` (the daemon), prom-client's default process metrics are collected too. */
  constructor(options: { processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    const ops = this.ops;
    const errors = this.errors;
    new Counter({
      name: 'rustfs_kms_operations_total', registers, labelNames: ['op', 'transport', 'outcome'],
      help: 'Requests finished by the pipeline, by operation, transport (socket, http, library) and outcome (success, denied, failure).',
      collect() {
        this.reset();
        for (const { op, transport, series } of allSeries(ops)) {
          OUTCOMES.forEach((outcome, o) => this.inc({ op, transport, outcome }, series.outcomes[o] ?? 0));
        }
      },
    });
    new Counter({
      name: 'rustfs_kms_operation_errors_total', registers, labelNames: ['op', 'code'],
      help: 'Requests that failed or were denied, by operation and protocol error code.',
      collect() {
        this.reset();
        for (const [op, codes] of errors) for (const [code, count] of codes) this.inc({ op, code }, count);
      },
    });
    new CountedHistogram(() => allSeries(ops), this.registry);
    this.http = new Counter({
      name: 'rustfs_kms_http_requests_total', registers, labelNames: ['route', 'method', 'status'],
      help: 'Admin HTTP API responses, by route, method and status code.',
    });
    const startedAt = this.startedAt;
    new Gauge({
      name: 'rustfs_kms_metrics_uptime_seconds', registers, help: 'Seconds since the metrics started counting.',
      collect() {
        this.set(Math.round((Date.now() - startedAt) / 1000));
      },
    });
    if (options.processMetrics === true) collectDefaultMetrics({ register: this.registry });
  }

  /** The pipeline observer (bound; pass it to `Pipeline.setObserver`). */
  readonly observe: PipelineObserver = (event: Readonly<AuditEvent>): void => {
    // Operation names come from callers: anything outside the op table is one label, not many.
    const op = isOpName(event.op) ? event.op : 'unknown';
    let perTransport = this.ops.get(op);
    if (perTransport === undefined) {
      perTransport = [undefined, undefined, undefined];
      this.ops.set(op, perTransport);
    }
    const t = transportIndex(event.transport);
    let series = perTransport[t];
    if (series === undefined) {
      series = new OpSeries();
      perTransport[t] = series;
    }
    series.outcomes[event.outcome === 'success' ? 0 : event.outcome === 'denied' ? 1 : 2]! += 1;
    const us = event.durationUs;
    let b = 0;
    while (b < LATENCY_BUCKETS_US.length && us > (LATENCY_BUCKETS_US[b] as number)) b++;
    series.counts[b]! += 1;
    series.sumUs += us;
    if (event.errorCode !== undefined) {
      let codes = this.errors.get(op);
      if (codes === undefined) {
        codes = new Map();
        this.errors.set(op, codes);
      }
      codes.set(event.errorCode, (codes.get(event.errorCode) ?? 0) + 1);
    }
  };

  /** One answered admin HTTP request; `route` is the route's path template, or "unmatched". */
  httpRequest(route: string, method: string, status: number): void {
    this.http.labels(route, HTTP_METHODS.has(method) ? method : 'OTHER', String(status)).inc();
  }

  addGauge(source: GaugeSource): void {
    this.sources.push(source);
    const labelNames = [...(source.labelNames ?? [])];
    const registers = [this.registry];
    if (source.type === 'counter') {
      // A count kept elsewhere: reset and set to it at each scrape (prom-client counters only grow).
      new Counter({
        name: source.name, help: source.help, labelNames, registers,
        collect() {
          const v = source.read();
          this.reset();
          if (typeof v === 'number') this.inc(v);
          else for (const sample of v) this.inc(sample.labels, sample.value);
        },
      });
      return;
    }
    new Gauge({
      name: source.name, help: source.help, labelNames, registers,
      collect() {
        const v = source.read();
        if (typeof v === 'number') {
          this.set(v);
          return;
        }
        this.reset();
        for (const sample of v) this.set(sample.labels, sample.value);
      },
    });
  }

  /** The Content-Type of `render()`'s text (Prometheus text format 0.0.4). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Totals over every operation and transport (madmin's KMSMetrics is one summary, not families). */
  totals(): MetricTotals {
    const t: MetricTotals = { success: 0, denied: 0, failure: 0, errorCodes: new Map(), latencyCounts: new Array<number>(LATENCY_BUCKETS_US.length + 1).fill(0) };
    for (const perTransport of this.ops.values()) {
      for (const s of perTransport) {
        if (s === undefined) continue;
        t.success += s.outcomes[0] as number;
        t.denied += s.outcomes[1] as number;
        t.failure += s.outcomes[2] as number;
        s.counts.forEach((c, i) => (t.latencyCounts[i]! += c));
      }
    }
    for (const codes of this.errors.values()) for (const [code, n] of codes) t.errorCodes.set(code, (t.errorCodes.get(code) ?? 0) + n);
    return t;
  }

  /** A single-number gauge by name, read now; undefined when not registered. */
  gauge(name: string): number | undefined {
    const v = this.sources.find((g) => g.name === name)?.read();
    return typeof v === 'number' ? v : undefined;
  }


  /** The Prometheus text exposition. */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}

function* allSeries(ops: ReadonlyMap<string, Array<OpSeries | undefined>>): Generator<{ op: string; transport: string; series: OpSeries }> {
  for (const op of [...ops.keys()].sort()) {
    const perTransport = ops.get(op) ?? [];
    for (let t = 0; t < TRANSPORTS.length; t++) {
      const series = perTransport[t];
      if (series !== undefined) yield { op, transport: TRANSPORTS[t] as string, series };
    }
  }
}
