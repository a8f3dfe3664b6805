/**
 * The disk a run is held to: sequential write bandwidth, measured at the start and again at the
 * end, of which the higher figure is used (this VM's disk varies several-fold from one minute to
 * the next), and the latency of a small fdatasync.
 */
import { fmtBytes, fmtUs, measureFdatasync, measureWriteBandwidth } from './measure.ts';

export class DiskBaseline {
  /** Every bandwidth measurement, bytes/s. */
  readonly runs: number[] = [];
  /** Best bandwidth so far, bytes/s; NaN when not measured. */
  bytesPerSec = NaN;
  fdatasync = { p50us: NaN, p99us: NaN };

  /** `mib`: size of each bandwidth measurement; 0 measures nothing. */
  constructor(
    private readonly dir: string,
    readonly mib: number,
    private readonly log: (line: string) => void,
  ) {}

  measure(when: 'start' | 'end'): void {
    if (this.mib <= 0) return;
    measureWriteBandwidth(this.dir, 64 * 2 ** 20); // warm-up
    const m = measureWriteBandwidth(this.dir, this.mib * 2 ** 20);
    this.runs.push(m.bytesPerSec);
    this.bytesPerSec = Math.max(...this.runs);
    this.log(`sequential write (${when}): ${fmtBytes(m.bytesPerSec)}/s (${this.mib} MiB, fdatasync at end)`);
    if (when === 'start') {
      this.fdatasync = measureFdatasync(this.dir);
      this.log(
        `fdatasync of a 4 KiB overwrite: p50 ${fmtUs(this.fdatasync.p50us)} p99 ${fmtUs(this.fdatasync.p99us)}`,
      );
    }
  }
}
