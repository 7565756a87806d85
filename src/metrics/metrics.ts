// The daemon's metrics: what the one request pipeline sees (every operation over the socket, the
// admin HTTP API and the in-process library: counts per op, transport and outcome, error codes,
// latency histograms), what the admin HTTP API answers, and gauges read at scrape time (keys, the
// key cache, locked memory, connections). Rendered as Prometheus text (GET .../kms/metrics).
//
// The observer runs on the hot path of every request: it does a Map lookup, a few increments and a
// short bucket scan, and allocates nothing.
import { isOpName } from '../rpc/protocol.js';
import type { AuditEvent, PipelineObserver } from '../rpc/pipeline.js';
import { ExpositionWriter } from './prometheus.js';

/** Latency bucket bounds in seconds: 50 µs … 10 s. */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
const LATENCY_BUCKETS_US = LATENCY_BUCKETS_S.map((s) => Math.round(s * 1e6));

const TRANSPORTS = ['socket', 'http', 'library'] as const;
type Transport = (typeof TRANSPORTS)[number];
const OUTCOMES = ['success', 'denied', 'failure'] as const;

class OpSeries {
  readonly outcomes = [0, 0, 0];
  /** Per-bucket (not cumulative) counts; the last slot is above the largest bound. */
  readonly counts = new Float64Array(LATENCY_BUCKETS_US.length + 1);
  sumUs = 0;
}

function transportIndex(t: string): number {
  return t === 'socket' ? 0 : t === 'http' ? 1 : 2;
}

const HTTP_METHODS = new Set(['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH']);

/** A gauge read when the metrics are rendered. */
export interface GaugeSource {
  name: string;
  help: string;
  /** One number, or one sample per label set. */
  read: () => number | ReadonlyArray<{ labels: Record<string, string>; value: number }>;
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
  private readonly ops = new Map<string, Array<OpSeries | undefined>>();
  private readonly errors = new Map<string, Map<string, number>>();
  private readonly http = new Map<string, { route: string; method: string; status: string; count: number }>();
  private readonly gauges: GaugeSource[] = [];
  private readonly startedAt = Date.now();

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
    const m = HTTP_METHODS.has(method) ? method : 'OTHER';
    const key = `${route} ${m} ${status}`;
    const entry = this.http.get(key);
    if (entry === undefined) this.http.set(key, { route, method: m, status: String(status), count: 1 });
    else entry.count += 1;
  }

  addGauge(source: GaugeSource): void {
    this.gauges.push(source);
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
    const v = this.gauges.find((g) => g.name === name)?.read();
    return typeof v === 'number' ? v : undefined;
  }

  /** The Prometheus text exposition (format 0.0.4). */
  render(): string {
    const w = new ExpositionWriter();
    const opNames = [...this.ops.keys()].sort();

    const outcomeSamples: Array<{ labels: Record<string, string>; value: number }> = [];
    const latency: Array<{ labels: Record<string, string>; counts: Float64Array; sum: number }> = [];
    for (const op of opNames) {
      const perTransport = this.ops.get(op) as Array<OpSeries | undefined>;
      for (let t = 0; t < TRANSPORTS.length; t++) {
        const s = perTransport[t];
        if (s === undefined) continue;
        const transport: Transport = TRANSPORTS[t] as Transport;
        for (let o = 0; o < OUTCOMES.length; o++) {
          outcomeSamples.push({ labels: { op, transport, outcome: OUTCOMES[o] as string }, value: s.outcomes[o] as number });
        }
        latency.push({ labels: { op, transport }, counts: s.counts, sum: s.sumUs / 1e6 });
      }
    }
    w.family('rustfs_kms_operations_total', 'counter',
      'Requests finished by the pipeline, by operation, transport (socket, http, library) and outcome (success, denied, failure).',
      outcomeSamples);

    const errorSamples: Array<{ labels: Record<string, string>; value: number }> = [];
    for (const op of [...this.errors.keys()].sort()) {
      const codes = this.errors.get(op) as Map<string, number>;
      for (const code of [...codes.keys()].sort()) errorSamples.push({ labels: { op, code }, value: codes.get(code) as number });
    }
    w.family('rustfs_kms_operation_errors_total', 'counter', 'Requests that failed or were denied, by operation and protocol error code.', errorSamples);

    w.histogram('rustfs_kms_operation_duration_seconds',
      'Time from receiving a request to its answer inside the pipeline (parse, policy, handler, audit), by operation and transport.',
      LATENCY_BUCKETS_S, latency);

    const httpSamples = [...this.http.values()]
      .sort((a, b) => (a.route + a.method + a.status).localeCompare(b.route + b.method + b.status))
      .map((e) => ({ labels: { route: e.route, method: e.method, status: e.status }, value: e.count }));
    w.family('rustfs_kms_http_requests_total', 'counter', 'Admin HTTP API responses, by route, method and status code.', httpSamples);

    for (const g of this.gauges) {
      const v = g.read();
      w.family(g.name, 'gauge', g.help, typeof v === 'number' ? [{ value: v }] : v);
    }
    w.family('rustfs_kms_metrics_uptime_seconds', 'gauge', 'Seconds since the metrics started counting.', [
      { value: Math.round((Date.now() - this.startedAt) / 1000) },
    ]);
    return w.toString();
  }
}
