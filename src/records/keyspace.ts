import { entryBytes } from '../content/segment.js';
import { corruption, WarmStoreError } from '../errors.js';
import type { MemoryMetadata } from '../types.js';
import { ContentKind } from '../wal/entries.js';
import { IdIndex, idHashOfBytes, idHashOfString } from './id-index.js';
import { idHash } from './slot-codec.js';
import { DEFAULT_SPACE_ID, SpaceRegistry } from './spaces.js';
import { CHUNK_MASK, RecordTable } from './table.js';

/**
 * A slot that failed its checks at open, whose content reference points nowhere, or whose
 * embedding or content a scrub found damaged.
 */
export interface CorruptSlot {
  reason: string;
  file: string;
  /** The slot's own bytes are bad (kept as found); otherwise only its content reference is. */
  raw: boolean;
  /**
   * Found damaged after open, by a scrub: the slot's values in memory are sound and its content
   * is still counted in its segment's live bytes, so a put, delete or space sweep that replaces
   * the slot settles the ledger as for any other slot.
   */
  counted?: boolean;
  /** The id checksum under which the slot is also found, when its id bytes cannot be trusted. */
  lostHash?: number;
}

/** Moves whose target slot is remembered for readers that spanned them (see `movedSince`). */
const MOVE_LOG = 1 << 16;

/** A memory compaction plans to move from `from` down to the free slot `to`. */
export interface MovePlan {
  space: number;
  id: string;
  from: number;
  to: number;
  /** The memory's content generation when planned: a move of any other version is skipped. */
  expectedLsn: number;
}

/**
 * An iteration's position in slot order (`next`: the first slot it has not passed yet), the
 * memories that moved from ahead of it to behind it (relocation, or an update written to a lower
 * slot), by space and id, which the iteration yields too, and the slots ahead of it that took a
 * memory it has already yielded (an update written to a higher slot), which it skips: so neither
 * kind of move makes it skip or repeat a memory.
 */
export class SlotCursor {
  next = 0;
  readonly movedBehind = new Map<string, { space: number; id: string }>();
  /** Slot ahead of the cursor -> the id it took after the cursor had yielded that memory. */
  readonly yieldedAhead = new Map<number, string>();
}

/** What a put stores in a slot: the record's values and where its content lies. */
export interface SlotWrite extends MemoryMetadata {
  id: string;
  space: number;
  idBytes: Uint8Array;
  kind: ContentKind;
  seg: number;
  off: number;
  clen: number;
  /** CRC32C of the embedding's bytes in vectors.dat. */
  embCrc: number;
  /** The embedding's L2 norm. */
  norm: number;
}

/**
 * The keyspace: which id lives in which slot, and each slot's values. Owns the record table
 * (dense typed arrays, one chunk of 8192 slots at a time), the id index, the free-slot list, the
 * high-water mark of slots ever used, and the slots known to be corrupt.
 *
 * A corrupt slot stays occupied: a lookup of its id raises CORRUPTION_DETECTED rather than
 * answering "absent", and only a put or delete of that id repairs it.
 */
export class Keyspace {
  readonly table: RecordTable;
  readonly spaces: SpaceRegistry;
  /** (space number, id) -> slot. */
  readonly #index: IdIndex;
  #free: number[] = [];
  /**
   * Slots freed whose vectors must not be overwritten yet (see `#freed`); they join the free list
   * at `releaseFrees`.
   */
  #freeing: number[] = [];
  /** Frees wait for `releaseFrees` (relaxed durability: until the WAL holding them is synced). */
  #deferFrees = false;
  /** Backups in progress, during which no freed slot is reused (see `holdFrees`). */
  #holds = 0;
  /** Slots an asynchronous read is reading the vector of, with how many such reads. */
  readonly #slotPins = new Map<number, number>();
  /** Where the relocation in progress goes on scanning down for memories to move; -1: none. */
  #planHi = -1;
  /** Holes a relocation run took off the free list as no target (see planMoves). */
  #parked: number[] = [];
  #limit = 0;
  readonly #corrupt = new Map<number, CorruptSlot>();
  /**
   * Corrupt slots whose id bytes may be damaged, by the id checksum their header kept: a lookup of
   * the id they were written for finds them and fails loudly instead of finding nothing.
   */
  readonly #lostIds = new Map<number, number>();
  /** Free slots handed to planned moves and not yet settled (off the free list meanwhile). */
  readonly #reserved = new Set<number>();
  /** Iterations in progress (see SlotCursor). */
  readonly #cursors = new Set<SlotCursor>();
  #moves = 0;
  /** The target slots of the last MOVE_LOG moves, by move count modulo MOVE_LOG. */
  readonly #moveLog = new Uint32Array(MOVE_LOG);

  constructor(dim: number, spaces: SpaceRegistry = new SpaceRegistry(undefined, undefined)) {
    this.table = new RecordTable(dim);
    this.spaces = spaces;
    this.#index = new IdIndex(this.table);
  }

  /** Sizes the id index for `n` memories at once (open, before loading them). */
  reserveIndex(n: number): void {
    this.#index.reserve(n);
  }

  /** Memories in every live space. */
  get size(): number {
    return this.#index.size;
  }

  /** Memories in one space. */
  sizeOf(space: number): number {
    return this.#index.sizeOf(space);
  }

  #indexSet(space: number, id: string, slot: number): void {
    this.#index.set(space, id, slot);
  }

  #indexDelete(space: number, id: string): void {
    this.#index.delete(space, id);
  }

  /** Forgets the index of every space the registry no longer has (at open, before the sweep). */
  dropDeadSpaceIndexes(): void {
    for (const space of this.#index.spaces()) if (!this.spaces.isLive(space)) this.dropSpaceIndex(space);
  }

  /** Forgets a dropped space's index at once; its slots are swept afterwards. Returns its size. */
  dropSpaceIndex(space: number): number {
    return this.#index.dropSpace(space);
  }

  /** One past the highest slot ever used. */
  get slotLimit(): number {
    return this.#limit;
  }

  /** Ids of one space, or of every space. */
  *ids(space?: number): IterableIterator<string> {
    yield* this.#index.ids(space);
  }

  isUsed(slot: number): boolean {
    return slot < this.#limit && this.table.isUsed(slot);
  }

  /** The slot the index holds for `id` in `space` (no fallback to damaged ids). */
  indexed(space: number, id: string): number | undefined {
    return this.#index.get(space, id);
  }

  /**
   * Where the slot's live content lies, or undefined when it has none to count (free, corrupt,
   * empty or absent content).
   */
  liveContent(slot: number): { seg: number; bytes: number } | undefined {
    const bad = this.#corrupt.get(slot);
    if (!this.isUsed(slot) || (bad !== undefined && bad.counted !== true)) return undefined;
    const c = this.table.chunk(slot);
    const i = slot & CHUNK_MASK;
    if (c.kind[i] !== ContentKind.Present) return undefined;
    return { seg: c.seg[i]!, bytes: entryBytes(c.idLen[i]!, c.clen[i]!) };
  }

  /** Whether `slot` still holds `id` of `space` (a scan that yielded re-checks with this). */
  holds(space: number, id: string, slot: number): boolean {
    return this.#index.get(space, id) === slot;
  }

  /**
   * The slot holding `id` in `space`: the index, else a corrupt slot whose header kept this id's
   * checksum (its space cannot be trusted either, so that fallback ignores spaces).
   */
  lookup(space: number, id: string): number | undefined {
    const slot = this.#index.get(space, id);
    if (slot !== undefined || this.#lostIds.size === 0) return slot;
    return this.#lostIds.get(idHash(id));
  }

  /** Raises CORRUPTION_DETECTED if `slot` is corrupt. */
  checkReadable(slot: number, requested?: string): void {
    if (this.#corrupt.has(slot)) throw this.#corruptError(slot, requested);
  }

  isCorrupt(slot: number): boolean {
    return this.#corrupt.has(slot);
  }

  /** Whether the slot's own bytes are bad and must be left on disk as found (evidence). */
  isRawCorrupt(slot: number): boolean {
    return this.#corrupt.get(slot)?.raw === true;
  }

  get corruptCount(): number {
    return this.#corrupt.size;
  }

  corruptSlots(): { slot: number; id: string | undefined; reason: string; file: string }[] {
    return [...this.#corrupt].map(([slot, c]) => ({
      slot,
      id: this.table.id(slot),
      reason: c.reason,
      file: c.file,
    }));
  }

  #corruptError(slot: number, requested?: string): WarmStoreError {
    const c = this.#corrupt.get(slot)!;
    const id = requested ?? this.table.id(slot) ?? `<slot ${slot}>`;
    return corruption(
      c.lostHash !== undefined && requested !== undefined
        ? `${c.reason} (found by the id's checksum; its id bytes are damaged)`
        : c.reason,
      { id, file: c.file, slot },
    );
  }

  // ------------------------------------------------------------------ slot allocation

  /** A free slot, reusing holes first. May throw if the table cannot grow (allocation failure). */
  allocate(): number {
    // A hole a relocation run parked still beats growing the files past what the run will cut.
    const s = this.#free.pop() ?? this.#parked.pop();
    if (s !== undefined) return s;
    const slot = this.#limit;
    this.table.ensure(slot);
    this.#limit = slot + 1;
    return slot;
  }

  /**
   * Undoes the allocations of a batch that did not commit: slots below the old high-water mark go
   * back to the free list, the mark goes back.
   */
  release(allocated: readonly number[], limitBefore: number): void {
    for (const s of allocated) if (s < limitBefore) this.#free.push(s);
    this.#limit = limitBefore;
  }

  /**
   * A put writes its vector into a free slot before the WAL entry that makes it reachable, so a
   * freed slot is reused only once nothing durable can still name its old memory: at once when the
   * free is durable when applied (synchronous durability), else after the WAL sync that makes it
   * so (`releaseFrees`). A backup copying vectors.dat also holds every free from its cut on.
   */
  #freed(slot: number): void {
    if (this.#deferFrees || this.#holds > 0 || this.#slotPins.has(slot)) this.#freeing.push(slot);
    else this.#free.push(slot);
  }

  /** Keeps `slot` from being reused, if it is freed, until `unpinSlot` (an asynchronous read). */
  pinSlot(slot: number): void {
    this.#slotPins.set(slot, (this.#slotPins.get(slot) ?? 0) + 1);
  }

  unpinSlot(slot: number): void {
    const n = (this.#slotPins.get(slot) ?? 1) - 1;
    if (n > 0) this.#slotPins.set(slot, n);
    else this.#slotPins.delete(slot);
  }

  /** Frees wait for `releaseFrees` (set under relaxed durability). */
  deferFrees(on: boolean): void {
    this.#deferFrees = on;
  }

  /** The slots freed so far may be reused (their frees are durable); a no-op while a backup holds them. */
  releaseFrees(): void {
    if (this.#holds > 0 || this.#freeing.length === 0) return;
    // A slot the limit dropped below meanwhile (relocation's shrink) is gone, not free; one freed
    // twice while waiting (cut off, reallocated at the limit, freed again) is handed out once.
    const seen = new Set<number>();
    const still: number[] = [];
    for (const s of this.#freeing) {
      if (this.#slotPins.has(s)) still.push(s);
      else if (s < this.#limit && !this.table.isUsed(s) && !seen.has(s)) {
        seen.add(s);
        this.#free.push(s);
      }
    }
    this.#freeing = still;
  }

  /**
   * Keeps every slot freed from now on out of reuse until the returned function is called (an
   * online backup copies vectors.dat, whose live slots as of its cut must stay as they were).
   */
  holdFrees(): () => void {
    this.#holds++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#holds--;
      // Under relaxed durability the held frees may not be durable yet: the next sync releases them.
      if (!this.#deferFrees) this.releaseFrees();
    };
  }

  /** Rebuilds the free list from the table (after open: every unused slot below the mark). */
  rebuildFreeList(): void {
    this.#freeing = [];
    const free: number[] = [];
    // Highest first, so that pop() hands out the lowest holes first and the files stay dense.
    for (let s = this.#limit - 1; s >= 0; s--) if (!this.table.isUsed(s)) free.push(s);
    this.#free = free;
    this.#parked = [];
  }

  /** Raises the high-water mark to cover `slot` (loading and replay write slots directly). */
  cover(slot: number): void {
    this.table.ensure(slot);
    if (slot >= this.#limit) this.#limit = slot + 1;
  }

  // ------------------------------------------------------------------ state transitions

  /**
   * Stores a put in `slot` under `lsn` (the content generation compaction compares). Whatever
   * other id the slot was known under, and any other slot still claiming this id (a stale
   * duplicate from checkpoints taken at different instants), are dropped. Returns the slot it
   * evicted, if any, so the caller can settle its accounting.
   */
  put(slot: number, v: SlotWrite, lsn: number): number | undefined {
    this.cover(slot);
    this.#forgetOccupant(slot, v.space, v.id);
    const hash = idHashOfBytes(v.idBytes);
    const other = this.#index.get(v.space, v.id, hash);
    const present = v.kind === ContentKind.Present;
    // Field by field (no spread of the metadata): this runs once per put.
    this.table.set(slot, {
      id: v.id,
      space: v.space,
      idLen: v.idBytes.length,
      kind: v.kind,
      seg: present ? v.seg : 0,
      off: present ? v.off : 0,
      clen: present ? v.clen : 0,
      clsn: lsn,
      confidence: v.confidence,
      activation: v.activation,
      decayRate: v.decayRate,
      createdAt: v.createdAt,
      lastAccess: v.lastAccess,
      accessCount: v.accessCount,
      norm: v.norm,
      embCrc: v.embCrc,
    });
    // Re-pointed before `other` is cleared: the index compares ids where the table keeps them.
    this.#index.set(v.space, v.id, slot, hash);
    this.#clearCorrupt(slot);
    this.table.markFull(slot);
    if (other === undefined || other === slot) return undefined;
    // The memory changed slots (an update, or relocation): readers that span an await follow it.
    this.#moveLog[this.#moves % MOVE_LOG] = slot;
    this.#moves++;
    for (const c of this.#cursors) {
      // Yielded already: passed, or ahead in a slot it was updated into after being passed; not
      // if it moved behind and waits to be yielded from there.
      const key = `${v.space}\u0000${v.id}`;
      const waiting = c.movedBehind.has(key);
      const yielded = !waiting && (other < c.next || c.yieldedAhead.get(other) === v.id);
      c.yieldedAhead.delete(other);
      if (slot >= c.next) {
        if (yielded) c.yieldedAhead.set(slot, v.id);
        // Ahead again: the scan reaches it.
        else if (waiting) c.movedBehind.delete(key);
      } else if (!yielded) {
        c.movedBehind.set(key, { space: v.space, id: v.id });
      }
    }
    this.table.clear(other);
    this.#clearCorrupt(other);
    this.table.markFull(other);
    this.#freed(other);
    return other;
  }

  /**
   * Frees `slot` if it still holds `id` (or is the corrupt slot found under `id`'s checksum).
   * Returns whether it did.
   */
  delete(slot: number, id: string): boolean {
    const holds =
      this.isUsed(slot) && (this.table.id(slot) === id || this.#corrupt.get(slot)?.lostHash === idHash(id));
    if (!holds) return false;
    const space = this.table.chunk(slot).space[slot & CHUNK_MASK]!;
    if (this.#index.get(space, id) === slot) this.#indexDelete(space, id);
    this.#forgetOccupant(slot, space, id);
    this.table.clear(slot);
    this.#clearCorrupt(slot);
    this.table.markFull(slot);
    this.#freed(slot);
    return true;
  }

  /** Sets the access metadata of a used slot; returns whether the slot was used. */
  touch(slot: number, lastAccess: number, accessCount: number): boolean {
    if (!this.isUsed(slot)) return false;
    const c = this.table.chunk(slot);
    c.lastAccess[slot & CHUNK_MASK] = lastAccess;
    c.accessCount[slot & CHUNK_MASK] = accessCount;
    this.table.markHeader(slot);
    return true;
  }

  // ------------------------------------------------------------------ loading

  /**
   * Registers a slot loaded from records.dat under `id`. Two slots claiming one id at open were
   * checkpointed at different instants: the newer (higher content LSN) is kept and the other
   * cleared and marked for the next checkpoint. Returns whether `slot` is the one kept. `idHash`
   * is the id checksum the header stored (0 or absent: computed here).
   */
  load(id: string, slot: number, clsn: number, idHash?: number): boolean {
    this.cover(slot);
    const space = this.table.chunk(slot).space[slot & CHUNK_MASK]!;
    const hash = idHash || idHashOfString(id);
    const prev = this.#index.getOrSet(space, id, slot, hash);
    if (prev === undefined || prev === slot) return true;
    if (this.table.chunk(prev).clsn[prev & CHUNK_MASK]! > clsn) {
      this.table.clear(slot);
      this.table.markFull(slot);
      return false;
    }
    // Re-pointed before `prev` is cleared (see put).
    this.#index.set(space, id, slot, hash);
    this.table.clear(prev);
    this.table.markFull(prev);
    return true;
  }

  /**
   * Frees a slot whose space was dropped (the sweep after `dropSpaceIndex`). Returns whether it
   * did: a slot of a live space, or a corrupt one, is left alone (except one a scrub found
   * damaged: its values are sound, so it goes like the others).
   */
  sweep(slot: number): boolean {
    const bad = this.#corrupt.get(slot);
    if (!this.isUsed(slot) || (bad !== undefined && bad.counted !== true)) return false;
    if (this.spaces.isLive(this.table.chunk(slot).space[slot & CHUNK_MASK]!)) return false;
    this.table.clear(slot);
    this.#clearCorrupt(slot);
    this.table.markFull(slot);
    this.#freed(slot);
    return true;
  }

  /**
   * Holds a slot whose bytes failed their checks, possibly torn by a checkpoint that crashed (WAL
   * replay may still rewrite it). `guessId` is the id as read, trusted only if it matches the
   * stored id checksum.
   */
  markCorrupt(
    slot: number,
    guessId: string | undefined,
    reason: string,
    file: string,
    storedIdHash = 0,
  ): void {
    this.cover(slot);
    // The header's space cannot be trusted: a corrupt slot is held in the default space.
    const id =
      guessId !== undefined && this.indexed(DEFAULT_SPACE_ID, guessId) === undefined
        ? guessId
        : `<slot ${slot}>`;
    this.table.set(slot, {
      id,
      space: DEFAULT_SPACE_ID,
      idLen: Buffer.byteLength(id),
      kind: ContentKind.Absent,
      seg: 0,
      off: 0,
      clen: 0,
      clsn: 0,
      confidence: 0,
      activation: 0,
      decayRate: 0,
      createdAt: 0,
      lastAccess: 0,
      accessCount: 0,
      norm: 0,
      embCrc: 0,
    });
    if (guessId !== undefined && id === guessId) this.#indexSet(DEFAULT_SPACE_ID, id, slot);
    const c: CorruptSlot = { reason, file, raw: true };
    // The id bytes read may be the damaged part: unless they match the stored id checksum, the slot
    // is also registered under that checksum (a flip in the checksum instead leaves the id right,
    // and the index entry above finds it).
    if (
      storedIdHash !== 0 &&
      (guessId === undefined || idHash(guessId) !== storedIdHash) &&
      !this.#lostIds.has(storedIdHash)
    ) {
      this.#lostIds.set(storedIdHash, slot);
      c.lostHash = storedIdHash;
    }
    this.#corrupt.set(slot, c);
  }

  /** A slot whose bytes are fine but whose content reference points nowhere. */
  markBadReference(slot: number, reason: string, file: string): void {
    this.#corrupt.set(slot, { reason, file, raw: false });
  }

  /**
   * A live slot whose embedding in vectors.dat or content entry a scrub found damaged. Its values
   * stay as they are (nothing on disk changes): reads of its id raise CORRUPTION_DETECTED, it is
   * listed with the other corrupt slots, and a put of its id (written into this slot) or a delete
   * clears it. Returns false, marking nothing, if the slot is free or already held as corrupt.
   */
  markDamaged(slot: number, reason: string, file: string): boolean {
    if (!this.isUsed(slot) || this.#corrupt.has(slot)) return false;
    this.#corrupt.set(slot, { reason, file, raw: false, counted: true });
    return true;
  }

  // ------------------------------------------------------------------ relocation

  /**
   * Memories moved so far, by relocation or by an update written to another slot (a counter: a
   * reader that spans an await compares it before and after, because a move can carry a memory
   * from a slot it has not reached to one it has passed).
   */
  get moveCount(): number {
    return this.#moves;
  }

  /**
   * The slots memories moved to since `moveCount` was `since` (a scan that yielded rescores them:
   * one may have left a slot the scan had not reached for one it had passed), or undefined when
   * more moves happened than are remembered.
   */
  movedSince(since: number): number[] | undefined {
    const n = this.#moves - since;
    if (n > MOVE_LOG) return undefined;
    const out: number[] = [];
    for (let m = since; m < this.#moves; m++) out.push(this.#moveLog[m % MOVE_LOG]!);
    return out;
  }

  /** Registers an iteration in slot order; moves behind it are noted on the cursor. */
  openCursor(): SlotCursor {
    const c = new SlotCursor();
    this.#cursors.add(c);
    return c;
  }

  closeCursor(c: SlotCursor): void {
    this.#cursors.delete(c);
  }

  /**
   * Plans up to `max` moves of the memories in the highest used slots into the lowest free ones,
   * and reserves those free slots (allocate() will not hand them out) until `settleMoves`. Corrupt
   * slots are never moved: their bytes are evidence, and they keep the files at their length.
   */
  planMoves(max: number, first: boolean): MovePlan[] {
    if (first || this.#planHi < 0) {
      // Once per run, not per batch, so each batch goes on where the last one stopped; and by
      // counting, not comparing: a sort of 500,000 free slots in random order held the event
      // loop ~50 ms.
      // Highest first, so pop() yields the lowest hole; the same order allocate() wants.
      for (const h of this.#parked) this.#free.push(h);
      this.#parked = [];
      this.#free = descending(this.#free);
      this.#planHi = this.#limit - 1;
    }
    const plans: MovePlan[] = [];
    let hi = Math.min(this.#planHi, this.#limit - 1);
    // Packed, the memories fill the slots below their count: a hole at or above it is no target.
    // Holes freed since the sort (the slots moves left, deletes) sit at the pop end whatever their
    // place, so such a one is parked off the free list until the run ends (`shrink` hands back
    // those below the new limit; the next run's sort takes any a failed run left).
    const bound = this.size;
    while (plans.length < max && this.#free.length > 0) {
      const to = this.#free[this.#free.length - 1]!;
      if (to >= bound) {
        this.#parked.push(this.#free.pop()!);
        continue;
      }
      while (hi > to && (!this.table.isUsed(hi) || this.#corrupt.has(hi) || this.#reserved.has(hi))) hi--;
      if (hi <= to) break;
      const c = this.table.chunk(hi);
      const i = hi & CHUNK_MASK;
      const space = c.space[i]!;
      const id = c.ids[i];
      // Only a memory its space's index holds there (a dropped space's slot waits for its sweep).
      if (id !== undefined && this.#index.get(space, id) === hi) {
        this.#free.pop();
        this.#reserved.add(to);
        plans.push({ space, id, from: hi, to, expectedLsn: c.clsn[i]! });
      }
      hi--;
    }
    this.#planHi = hi;
    return plans;
  }

  /** Whether `m` can still be applied: the same version of the memory in `from`, `to` free. */
  movable(m: MovePlan): boolean {
    if (m.to >= m.from || this.isUsed(m.to) || this.#corrupt.has(m.from)) return false;
    if (this.#index.get(m.space, m.id) !== m.from) return false;
    return this.table.chunk(m.from).clsn[m.from & CHUNK_MASK] === m.expectedLsn;
  }

  /** Ends the reservation of planned targets: those no move filled go back to the free list. */
  settleMoves(plans: readonly MovePlan[]): void {
    for (const m of plans) {
      if (!this.#reserved.delete(m.to)) continue;
      if (m.to < this.#limit && !this.table.isUsed(m.to)) this.#free.push(m.to);
    }
  }

  /**
   * Stores the moved memory `v` in `to` under its unchanged content generation; the slot that held
   * it is freed (put's eviction of another slot claiming the id), which logs the move.
   */
  move(to: number, v: SlotWrite, clsn: number): void {
    // put() evicts `from` (the id's slot, checked by movable()), logs the move and tells cursors.
    this.put(to, v, clsn);
  }

  /** Frees a slot whose bytes were found damaged, once a later state of it is known (free). */
  vacateCorrupt(slot: number): void {
    if (!this.isRawCorrupt(slot)) return;
    const c = this.table.chunk(slot);
    const space = c.space[slot & CHUNK_MASK]!;
    const id = this.table.id(slot);
    if (id !== undefined && this.#index.get(space, id) === slot) this.#indexDelete(space, id);
    this.table.clear(slot);
    this.#clearCorrupt(slot);
    this.table.markFull(slot);
    this.#freed(slot);
  }

  /**
   * Lowers the slot limit to one past the highest slot in use (corrupt and reserved slots count as
   * used) and drops the free slots above it, so the record files can be cut there. Returns the
   * limits before and after.
   */
  shrink(): { before: number; after: number } {
    this.#planHi = -1;
    const before = this.#limit;
    let top = before;
    while (top > 0 && !this.table.isUsed(top - 1) && !this.#reserved.has(top - 1)) top--;
    for (const h of this.#parked) if (h < top && !this.table.isUsed(h)) this.#free.push(h);
    this.#parked = [];
    if (top < before) {
      this.#limit = top;
      this.#free = this.#free.filter((s) => s < top);
    }
    return { before, after: top };
  }

  /**
   * Drops the index entry of whatever other id `slot` was known under: a corrupt slot found by its
   * id checksum is indexed under the damaged id it was read with, until a put or delete of its
   * real id repairs it.
   */
  #forgetOccupant(slot: number, space: number, id: string): void {
    if (!this.table.isUsed(slot)) return;
    const occupant = this.table.id(slot);
    const occSpace = this.table.chunk(slot).space[slot & CHUNK_MASK]!;
    if (occupant === undefined || (occupant === id && occSpace === space)) return;
    if (this.#index.get(occSpace, occupant) === slot) this.#indexDelete(occSpace, occupant);
  }

  #clearCorrupt(slot: number): void {
    const c = this.#corrupt.get(slot);
    if (c?.lostHash !== undefined && this.#lostIds.get(c.lostHash) === slot) this.#lostIds.delete(c.lostHash);
    this.#corrupt.delete(slot);
  }
}

/**
 * Slot numbers sorted highest first, by counting them over their range: O(range + n) plain array
 * work with no comparisons. A slot may appear up to 255 times (the free list holds each once).
 */
export function descending(slots: readonly number[]): number[] {
  let max = -1;
  for (const s of slots) if (s > max) max = s;
  const counts = new Uint8Array(max + 1);
  for (const s of slots) counts[s]!++;
  const out = new Array<number>(slots.length);
  let j = 0;
  for (let s = max; s >= 0; s--) for (let c = counts[s]!; c > 0; c--) out[j++] = s;
  return out;
}
