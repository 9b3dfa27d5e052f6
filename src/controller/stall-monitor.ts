// SPDX-License-Identifier: Apache-2.0
// StallMonitor: how long the agent's event loop was kept from running, measured with
// perf_hooks.monitorEventLoopDelay. Its histogram records the whole time between two ticks of
// a `resolutionMs` timer (an idle loop reads ~resolutionMs), so a stall is that less the
// resolution: how late a tick that was due ran. Keeps the longest stall since the start and, per reader (the
// local API's status, the metrics scrape), the longest since that reader's last read, so two
// readers never reset each other's window. Touches nothing but its own timers.
import { type IntervalHistogram, monitorEventLoopDelay } from 'node:perf_hooks';

export interface StallReading {
  /** The longest event-loop stall since the monitor started, in ms. */
  maxStallMs: number;
  /** The longest since this reader's previous read (since the start, on its first read), in ms. */
  maxStallSinceLastReadMs: number;
}

/** How often the histogram's maximum is folded into the readings (and the histogram reset). */
const FOLD_MS = 1000;

export class StallMonitor {
  private readonly histogram: IntervalHistogram;
  private readonly timer: NodeJS.Timeout;
  private maxNs = 0;
  private readonly sinceRead = new Map<string, number>();

  /** `resolutionMs`: the sampling period of the delay monitor (stalls shorter than it show as ~it). */
  private readonly resolutionNs: number;

  constructor(resolutionMs = 10) {
    this.resolutionNs = resolutionMs * 1e6;
    this.histogram = monitorEventLoopDelay({ resolution: resolutionMs });
    this.histogram.enable();
    this.timer = setInterval(() => this.fold(), FOLD_MS);
    this.timer.unref();
  }

  /** Move the histogram's maximum into the kept maxima and start it afresh. */
  private fold(): number {
    const max = this.histogram.count > 0 ? Math.max(0, this.histogram.max - this.resolutionNs) : 0;
    this.histogram.reset();
    if (max > this.maxNs) this.maxNs = max;
    for (const [reader, m] of this.sinceRead) if (max > m) this.sinceRead.set(reader, max);
    return max;
  }

  /** The longest stalls, for `reader` (its window restarts now). */
  read(reader: string): StallReading {
    this.fold();
    const since = this.sinceRead.get(reader) ?? this.maxNs;
    this.sinceRead.set(reader, 0);
    return { maxStallMs: this.maxNs / 1e6, maxStallSinceLastReadMs: since / 1e6 };
  }

  close(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}
