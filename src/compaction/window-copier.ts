import { ENTRY_HEADER_BYTES, entryBytes, verifyEntry, type Segment } from '../content/segment.js';
import { writeFully } from '../fs/io.js';
import { WarmStoreError } from '../errors.js';
import { crc32c } from '../format/crc.js';
import { CHUNK_SLOTS, type Chunk } from '../records/table.js';
import { ContentKind } from '../wal/entries.js';
import type { BufferSizes } from './budget.js';
import type { ChunkCommitter } from './committer.js';
import { throwIfAborted } from './failure.js';
import type { CompactorHost } from './host.js';
import type { OutputWriter } from './output.js';
import type { PauseMeter } from './pause-meter.js';
import type { ProgressReporter } from './progress.js';

/** What other work held the loop in a turn for window reads to go synchronous (see #readWindowSync). */
const BUSY_LOOP_MS = 4;
/** A synchronous window read this slow sends the rest of the run's reads through the pool. */
const SLOW_SYNC_READ_MS = 8;

/** Packs (offset - lo, index) into one float64: exact, since a window spans at most 8 MiB. */
const KEY_SHIFT = 1048576;

/** Whether the record in chunk `ch`'s index `li` still has its content at `seg`/`off`, as of `lsn`. */
function stillLive(ch: Chunk, li: number, seg: number, off: number, lsn: number): boolean {
  return (
    ch.kind[li] === ContentKind.Present && ch.seg[li] === seg && ch.off[li] === off && ch.clsn[li] === lsn
  );
}

/** A live entry too big for the buffers. */
interface BigEntry {
  slot: number;
  off: number;
  expectedLsn: number;
  id: string;
  idBytes: Buffer;
  clen: number;
  size: number;
}

/**
 * Copies the live entries of a victim to the output, one window of the victim's offsets at a
 * time: collect the records pointing into the window, read it, verify each entry (CRC and owner),
 * append it to the output and stage its remap. Every record is re-checked after each await, since
 * writes go on meanwhile; a record that changed is skipped (its old entry is dead anyway).
 */
export class WindowCopier {
  /** Entry bytes copied to the output so far in this run. */
  bytesCopied = 0;
  readonly #host: Pick<CompactorHost, 'table' | 'slotLimit'>;
  readonly #meter: PauseMeter;
  readonly #writer: OutputWriter;
  readonly #committer: ChunkCommitter;
  readonly #progress: ProgressReporter;
  readonly #signal: AbortSignal;
  readonly #window: number;
  readonly #maxRemaps: number;
  readonly #maxCand: number;
  readonly #readBuf: Buffer;
  readonly #candOff: Float64Array;
  readonly #candLsn: Float64Array;
  readonly #candSlot: Uint32Array;
  readonly #sortKeys: Float64Array;
  /** Window reads may be synchronous (see #readWindowSync) until one is slow. */
  #readSync = true;

  constructor(
    deps: {
      host: Pick<CompactorHost, 'table' | 'slotLimit'>;
      meter: PauseMeter;
      writer: OutputWriter;
      committer: ChunkCommitter;
      progress: ProgressReporter;
      signal: AbortSignal;
    },
    sizes: BufferSizes,
  ) {
    this.#host = deps.host;
    this.#meter = deps.meter;
    this.#writer = deps.writer;
    this.#committer = deps.committer;
    this.#progress = deps.progress;
    this.#signal = deps.signal;
    this.#window = sizes.window;
    this.#maxRemaps = sizes.maxRemaps;
    this.#maxCand = sizes.maxCand;
    this.#readBuf = Buffer.allocUnsafe(sizes.window);
    this.#candOff = new Float64Array(sizes.maxCand);
    this.#candLsn = new Float64Array(sizes.maxCand);
    this.#candSlot = new Uint32Array(sizes.maxCand);
    this.#sortKeys = new Float64Array(sizes.maxCand);
  }

  /** Copies every live entry of `v`; the caller then commits the victim as done. */
  async copy(v: Segment): Promise<void> {
    // A victim with nothing live needs no copying, only its done marker.
    let lo = v.live === 0 ? v.end : 0;
    let span = Math.max(this.#window, 1);
    while (lo < v.end) {
      throwIfAborted(this.#signal);
      const hi = lo + span;
      const n = await this.#collect(v, lo, hi);
      if (n === undefined) {
        // More live entries than the candidate arrays hold: try again with half the range.
        span = Math.max(1, Math.floor(span / 2));
        continue;
      }
      await this.#copyCandidates(v, lo, n);
      lo = hi;
      span = Math.max(this.#window, span);
    }
  }

  /** Collects the live entries of `v` whose offset falls in [lo, hi); undefined on overflow. */
  async #collect(v: Segment, lo: number, hi: number): Promise<number | undefined> {
    let n = 0;
    let overflow = false;
    const limit = this.#host.slotLimit();
    const table = this.#host.table();
    for (let ci = 0; ci < table.chunks.length && !overflow; ci++) {
      const c = table.chunks[ci]!;
      const base = ci * CHUNK_SLOTS;
      const end = Math.min(CHUNK_SLOTS, limit - base);
      for (let i = 0; i < end; i++) {
        if (c.seg[i] !== v.id || c.kind[i] !== ContentKind.Present) continue;
        const off = c.off[i]!;
        if (off < lo || off >= hi) continue;
        if (n === this.#maxCand) {
          overflow = true;
          break;
        }
        this.#candOff[n] = off;
        this.#candLsn[n] = c.clsn[i]!;
        this.#candSlot[n] = base + i;
        n++;
      }
      await this.#meter.maybeYield();
    }
    return overflow ? undefined : n;
  }

  /** Copies the `n` collected candidates of the window starting at `lo`, in offset order. */
  async #copyCandidates(v: Segment, lo: number, n: number): Promise<void> {
    const window = this.#window;
    const readBuf = this.#readBuf;
    const writer = this.#writer;
    // Offset order without a comparator callback (a JS comparator over tens of thousands of
    // entries is a long synchronous step).
    for (let i = 0; i < n; i++) this.#sortKeys[i] = (this.#candOff[i]! - lo) * KEY_SHIFT + i;
    const ord = this.#sortKeys.subarray(0, n).sort();
    let bufStart = 0;
    let bufEnd = 0;
    for (let j = 0; j < n; j++) {
      const ci = ord[j]! % KEY_SHIFT;
      const off = this.#candOff[ci]!;
      const slot = this.#candSlot[ci]!;
      const expectedLsn = this.#candLsn[ci]!;
      const ch = this.#host.table().chunk(slot);
      const li = slot & (CHUNK_SLOTS - 1);
      // Checked again after every await (no closure per entry: see PauseMeter.due).
      if (!stillLive(ch, li, v.id, off, expectedLsn)) continue;
      const id = ch.ids[li]!;
      const idBytes = Buffer.from(id, 'utf8');
      const clen = ch.clen[li]!;
      const size = entryBytes(idBytes.length, clen);
      if (size > window) {
        await this.#stream(v, { slot, off, expectedLsn, id, idBytes, clen, size }, () =>
          stillLive(ch, li, v.id, off, expectedLsn),
        );
        bufEnd = 0;
        continue;
      }
      if (off < bufStart || off + size > bufEnd) {
        const len = Math.min(window, v.end - off);
        const got =
          this.#readWindowSync(v, off, len, readBuf) ?? (await this.#meter.io(v.read(off, len, readBuf)));
        bufStart = off;
        bufEnd = off + got.length;
        if (off + size > bufEnd) {
          throw new WarmStoreError(
            'CORRUPTION_DETECTED',
            `content entry at ${off} runs past the end of ${v.path}`,
            {
              id,
              file: v.path,
            },
          );
        }
        // The read yielded: the record may have changed meanwhile.
        if (!stillLive(ch, li, v.id, off, expectedLsn)) continue;
      }
      const entry = readBuf.subarray(off - bufStart, off - bufStart + size);
      verifyEntry(entry, idBytes, clen, v.path, id, off);
      if (!writer.fits(size)) {
        await writer.open();
        await writer.write();
        if (!stillLive(ch, li, v.id, off, expectedLsn)) continue;
      }
      if (!writer.segment) {
        await writer.open();
        if (!stillLive(ch, li, v.id, off, expectedLsn)) continue;
      }
      const newOff = writer.append(entry);
      this.#committer.stage({ slot, oldSeg: v.id, oldOff: off, expectedLsn, newOff });
      this.bytesCopied += size;
      this.#progress.state.bytesCopied = this.bytesCopied;
      if (this.#committer.staged >= this.#maxRemaps) await this.#committer.flush([]);
      else if (this.#meter.due) await this.#meter.maybeYield();
    }
  }

  /**
   * A window read on the event loop, when other work keeps the loop busy: then each await is a
   * whole turn of theirs (16-20 ms behind 100 readers), where a page-cached read of a window (at
   * most 8 MiB) takes 1-3 ms, and one from the disk about a turn. After one slow read the rest of
   * the run reads through the pool. Undefined: read through the pool.
   */
  #readWindowSync(v: Segment, off: number, len: number, buf: Buffer): Buffer | undefined {
    if (!this.#readSync || !this.#meter.loopBusy(BUSY_LOOP_MS)) return undefined;
    const t0 = performance.now();
    const got = v.readSync(off, len, buf);
    if (performance.now() - t0 >= SLOW_SYNC_READ_MS) this.#readSync = false;
    return got;
  }

  /** An entry too big for the buffers goes straight from victim to output, piece by piece. */
  async #stream(v: Segment, e: BigEntry, live: () => boolean): Promise<void> {
    const window = this.#window;
    const { id, off, size } = e;
    const out = await this.#writer.open();
    await this.#writer.write();
    const newOff = this.#writer.writtenEnd;
    let crc = 0;
    let stored = -1;
    for (let p = 0; p < size; p += window) {
      const len = Math.min(window, size - p);
      const piece = await this.#meter.io(v.read(off + p, len, this.#readBuf));
      if (piece.length < len)
        throw new WarmStoreError('CORRUPTION_DETECTED', 'content entry truncated', { id, file: v.path });
      let from = 0;
      if (p === 0) {
        stored = piece.readUInt32LE(0);
        if (
          piece.readUInt32LE(4) !== e.clen ||
          !piece.subarray(ENTRY_HEADER_BYTES, ENTRY_HEADER_BYTES + e.idBytes.length).equals(e.idBytes)
        ) {
          throw new WarmStoreError(
            'CORRUPTION_DETECTED',
            `content entry at ${off} does not match its record`,
            {
              id,
              file: v.path,
            },
          );
        }
        // The stored checksum covers everything after itself.
        from = 4;
      }
      crc = crc32c(piece.subarray(from), crc);
      await this.#meter.io(writeFully(out.file, piece, newOff + p));
    }
    if (crc !== stored) {
      throw new WarmStoreError('CORRUPTION_DETECTED', `content checksum mismatch at ${off}`, {
        id,
        file: v.path,
      });
    }
    this.#writer.advance(size);
    this.bytesCopied += size;
    if (live()) {
      this.#committer.stage({ slot: e.slot, oldSeg: v.id, oldOff: off, expectedLsn: e.expectedLsn, newOff });
    }
  }
}
