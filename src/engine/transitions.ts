import type { SegmentSet } from '../content/segment-set.js';
import { entryBytes } from '../content/segment.js';
import type { Keyspace } from '../records/keyspace.js';
import { CHUNK_MASK } from '../records/table.js';
import {
  ContentKind,
  WalType,
  type CompactChunkEntry,
  type SlotMoveEntry,
  type WalEntry,
} from '../wal/entries.js';
import type { CompactionJournal } from './compaction-journal.js';

/** What a WAL entry did when applied, for the op that wrote it. */
export interface Applied {
  /** delete: whether the id was there; touch: whether the slot was used. */
  found: boolean;
  /**
   * compaction chunk: records whose content moved; space drop: memories dropped; slot move: 1 if
   * the memory moved.
   */
  count: number;
  /** put: the slot that held the memory's previous version, freed by this put. */
  evicted?: number;
}

/** The outcome of most entries, shared (read-only): applying an entry allocates nothing for it. */
const FOUND: Readonly<Applied> = Object.freeze({ found: true, count: 0 });
const NOT_FOUND: Readonly<Applied> = Object.freeze({ found: false, count: 0 });

/**
 * The one set of state transitions: live commits and WAL replay both apply entries here, so the
 * two can never disagree. Every transition is idempotent against slots a later checkpoint already
 * wrote (replay may meet state newer than the entry): puts carry their slot and evict a stale
 * duplicate of their id, deletes and touches set absolute values, chunk remaps are
 * compare-and-swaps.
 *
 * The live-byte ledger is kept on every transition; recovery recounts it afterwards anyway, because
 * replay starts from checkpointed slots whose ledger was never saved.
 *
 * Nothing here awaits or throws on valid entries: a batch is applied in one synchronous stretch,
 * so a reader sees each op whole.
 */
export class Transitions {
  readonly #keyspace: Keyspace;
  readonly #segments: SegmentSet;
  readonly #journal: CompactionJournal;

  constructor(keyspace: Keyspace, segments: SegmentSet, journal: CompactionJournal) {
    this.#keyspace = keyspace;
    this.#segments = segments;
    this.#journal = journal;
  }

  apply(e: WalEntry): Readonly<Applied> {
    const ks = this.#keyspace;
    switch (e.type) {
      case WalType.Put: {
        this.#dropLive(e.slot);
        const other = ks.indexed(e.space, e.id);
        if (other !== undefined && other !== e.slot) this.#dropLive(other);
        const evicted = ks.put(e.slot, e, e.lsn);
        if (e.kind === ContentKind.Present)
          this.#segments.addLive(e.seg, entryBytes(e.idBytes.length, e.clen));
        return evicted === undefined ? FOUND : { found: true, count: 0, evicted };
      }
      case WalType.Delete:
        this.#dropLive(e.slot);
        return ks.delete(e.slot, e.id) ? FOUND : NOT_FOUND;
      case WalType.Touch:
        return ks.touch(e.slot, e.lastAccess, e.accessCount) ? FOUND : NOT_FOUND;
      case WalType.CompactBegin:
        this.#journal.begin(e.runId, e.victims);
        return FOUND;
      case WalType.CompactChunk:
        return { found: true, count: this.#applyChunk(e) };
      case WalType.CompactEnd:
        this.#journal.end();
        return FOUND;
      case WalType.SpaceDefine:
        ks.spaces.define(e.name, e.space);
        return FOUND;
      case WalType.SpaceDrop: {
        const live = ks.spaces.isLive(e.space);
        ks.spaces.drop(e.space);
        return { found: live, count: ks.dropSpaceIndex(e.space) };
      }
      case WalType.SlotMove:
        return { found: true, count: this.#applyMove(e) ? 1 : 0 };
    }
  }

  /**
   * Frees the slots of dropped spaces among `count` slots from `from` (their index is already
   * gone, so no reader can reach them); returns how many it freed. The sweep after a space drop
   * runs in such bounded steps; recovery sweeps everything at once.
   */
  sweep(from: number, count: number): number {
    const ks = this.#keyspace;
    const end = Math.min(ks.slotLimit, from + count);
    let freed = 0;
    for (let slot = from; slot < end; slot++) {
      const live = ks.liveContent(slot);
      if (ks.sweep(slot)) {
        if (live) this.#segments.dropLive(live.seg, live.bytes);
        freed++;
      }
    }
    return freed;
  }

  #dropLive(slot: number): void {
    const live = this.#keyspace.liveContent(slot);
    if (live) this.#segments.dropLive(live.seg, live.bytes);
  }

  /**
   * A slot move. The moved memory takes the move's LSN as its content generation, so a stale copy
   * left in `from` by a torn checkpoint loses to it at open, and the recall index's catch-up after
   * a crash re-sends it. Live, the writer commits only moves that hold (this version of the memory
   * in `from`, `to` free), so this places the memory. At replay the slots may hold a later state
   * (a checkpoint after this entry wrote them) or a torn one; the entry carries the whole record:
   * - the memory already carries this move's LSN, or another version of it is indexed: that state
   *   is this move's result or later; nothing to place;
   * - `to` holds another memory: a later state, in which this one left `to` again (later entries
   *   say where to): only its copy in an older slot goes;
   * - otherwise the memory is placed in `to` from the entry (also when no readable copy is left,
   *   as after a torn checkpoint; a later delete in the WAL removes it again).
   * A damaged `from` is freed either way: its state as of this entry is free.
   */
  #applyMove(e: SlotMoveEntry): boolean {
    const ks = this.#keyspace;
    let src = ks.indexed(e.space, e.id);
    if (src !== undefined && ks.isRawCorrupt(src)) src = undefined;
    const generation = src === undefined ? undefined : ks.table.chunk(src).clsn[src & CHUNK_MASK];
    if (generation !== undefined && (generation === e.lsn || generation !== e.expectedLsn || src === e.to)) {
      if (src !== e.from) ks.vacateCorrupt(e.from);
      return false;
    }
    if (ks.isUsed(e.to) && !ks.isRawCorrupt(e.to)) {
      if (src !== undefined) {
        this.#dropLive(src);
        ks.delete(src, e.id);
      }
      ks.vacateCorrupt(e.from);
      return false;
    }
    if (src !== undefined) this.#dropLive(src);
    ks.move(e.to, e, e.lsn);
    if (e.kind === ContentKind.Present) this.#segments.addLive(e.seg, entryBytes(e.idBytes.length, e.clen));
    ks.vacateCorrupt(e.from);
    return true;
  }

  #applyChunk(e: CompactChunkEntry): number {
    const ks = this.#keyspace;
    let moved = 0;
    for (const r of e.remaps) {
      if (!ks.isUsed(r.slot)) continue;
      const c = ks.table.chunk(r.slot);
      const i = r.slot & CHUNK_MASK;
      // Compare-and-swap: only a record still holding exactly the copied bytes switches; one
      // updated or deleted meanwhile keeps its newer value and the copy counts as garbage.
      if (
        c.kind[i] !== ContentKind.Present ||
        c.seg[i] !== r.oldSeg ||
        c.off[i] !== r.oldOff ||
        c.clsn[i] !== r.expectedLsn
      ) {
        continue;
      }
      const size = entryBytes(c.idLen[i]!, c.clen[i]!);
      c.seg[i] = e.outSeg;
      c.off[i] = r.newOff;
      ks.table.markHeader(r.slot);
      this.#segments.dropLive(r.oldSeg, size);
      this.#segments.addLive(e.outSeg, size);
      moved++;
    }
    this.#journal.chunk(e.runId, e.outSeg, e.outEnd, e.victimsDone);
    return moved;
  }
}
