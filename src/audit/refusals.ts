// Refusals of callers nobody has identified (unsigned HTTP requests, and any other door's
// unauthenticated refusals) would let anyone who can connect fill the audit disk. Per key (the door
// chooses it, e.g. source address and error code) the first refusal is written as usual; the rest
// of each interval are counted and written as one summary line with `count` at the interval's end.
// Keys are bounded: past `maxKeys` open windows, new keys share one overflow window.
import type { AuditEvent } from './event.js';

/** Writes one line (a summary when `count` is given); false when the log cannot take it now. */
export type RefusalLineWriter = (event: AuditEvent, summary?: { count: number; since: number }) => boolean;

interface Window {
  /** Refusals counted and not yet written. */
  count: number;
  /** Time of the first of them. */
  since: number;
  last: AuditEvent;
  /** Intervals that ended with nothing counted; the window closes after one. */
  quietTicks: number;
}

export const OVERFLOW_KEY = '*';

export class RefusalAggregator {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly writeLine: RefusalLineWriter, private readonly maxKeys: number) {}

  /** Records one refusal under `key`: written now if it opens a window, else counted. */
  refuse(key: string, event: AuditEvent, now: number): void {
    let k = key;
    let w = this.windows.get(k);
    if (w === undefined && this.windows.size >= this.maxKeys) {
      k = OVERFLOW_KEY;
      w = this.windows.get(k);
    }
    if (w === undefined) {
      const written = this.writeLine(event);
      this.windows.set(k, { count: written ? 0 : 1, since: now, last: event, quietTicks: 0 });
      return;
    }
    if (w.count === 0) w.since = now;
    w.count += 1;
    w.last = event;
  }

  /** The end of an interval: one summary line per window with refusals counted; quiet windows close. */
  tick(): void {
    for (const [key, w] of this.windows) {
      if (w.count === 0) {
        if (++w.quietTicks > 1) this.windows.delete(key);
        continue;
      }
      if (!this.writeLine(w.last, { count: w.count, since: w.since })) return; // kept, and tried at the next tick
      w.count = 0;
      w.quietTicks = 0;
    }
  }

  /** Writes every pending summary (shutdown). */
  drain(): void {
    this.tick();
  }

  get openWindows(): number {
    return this.windows.size;
  }
}
