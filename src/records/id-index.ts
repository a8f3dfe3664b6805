import { crc32c } from '../format/crc.js';
import { CHUNK_MASK, CHUNK_SHIFT, type RecordTable } from './table.js';

const EMPTY = -1;
/** The index grows (doubles) past this share of its capacity in use. */
const MAX_LOAD = 0.7;
const MIN_CAPACITY = 1024;

/** Scratch for the UTF-8 bytes of an id (at most 255 bytes, at most 3 per UTF-16 unit). */
const scratch = Buffer.allocUnsafe(1024);

/**
 * The checksum an id is known by: CRC32C of its UTF-8 bytes, 0 mapped to 1 (the slot header stores
 * the same value, so open indexes a million ids without hashing one string).
 */
export function idHashOfBytes(idBytes: Uint8Array): number {
  return crc32c(idBytes) || 1;
}

/** CRC32C (Castagnoli, reflected) one byte at a time: for short ASCII ids, cheaper than a native call. */
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/**
 * The id checksum of a string. An ASCII id (its UTF-16 units are its UTF-8 bytes) is hashed here
 * in JavaScript: every lookup by id pays this, and the native call with its buffer view cost
 * several times more than the hash itself for ids of a few dozen characters.
 */
export function idHashOfString(id: string): number {
  let c = 0xffffffff;
  for (let i = 0; i < id.length; i++) {
    const u = id.charCodeAt(i);
    if (u >= 0x80) return idHashOfUtf8(id);
    c = CRC_TABLE[(c ^ u) & 0xff]! ^ (c >>> 8);
  }
  return (c ^ 0xffffffff) >>> 0 || 1;
}

function idHashOfUtf8(id: string): number {
  if (id.length > 341) return idHashOfBytes(Buffer.from(id, 'utf8'));
  const n = scratch.write(id, 0, 'utf8');
  return idHashOfBytes(scratch.subarray(0, n));
}

/** The id checksum and the space mixed into one well-spread 32-bit key (murmur3's finalizer). */
function keyOf(space: number, idHash: number): number {
  let h = (idHash ^ Math.imul(space, 0x9e3779b1)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Which slot holds each (space, id): an open-addressing hash table (linear probing, deletion by
 * backward shift, so no tombstones) of slot numbers and their keys in two typed arrays: 8 bytes an
 * entry and no object per memory. The ids themselves are compared where the record table keeps
 * them, so the table and this index must agree: an entry names a slot whose id and space are the
 * entry's (the keyspace updates the index before it clears a slot the index names).
 *
 * Why not a `Map<string, number>` per space: at a million memories its inserts took most of open
 * (about 0.5-1 s, string hashing and rehashing as it grew), and it costs several times the memory.
 * This one is sized once at open from the slot count and takes the id checksums the slot headers
 * already hold.
 */
export class IdIndex {
  readonly #table: RecordTable;
  #slots: Int32Array;
  #keys: Uint32Array;
  #mask: number;
  #count = 0;
  readonly #sizes = new Map<number, number>();

  constructor(table: RecordTable, expected = 0) {
    this.#table = table;
    const cap = capacityFor(expected);
    this.#slots = new Int32Array(cap).fill(EMPTY);
    this.#keys = new Uint32Array(cap);
    this.#mask = cap - 1;
  }

  /** Entries in every space. */
  get size(): number {
    return this.#count;
  }

  sizeOf(space: number): number {
    return this.#sizes.get(space) ?? 0;
  }

  /** Spaces with at least one entry. */
  spaces(): number[] {
    return [...this.#sizes.keys()];
  }

  /** Makes room for `n` entries at once (open knows how many slots it loads). */
  reserve(n: number): void {
    if (capacityFor(n) > this.#slots.length) this.#rehash(capacityFor(n));
  }

  get(space: number, id: string, idHash = idHashOfString(id)): number | undefined {
    const p = this.#find(space, id, keyOf(space, idHash));
    return p < 0 ? undefined : this.#slots[p];
  }

  /** Points (space, id) at `slot`; returns whether the entry is new. */
  set(space: number, id: string, slot: number, idHash = idHashOfString(id)): boolean {
    const key = keyOf(space, idHash);
    const p = this.#find(space, id, key);
    if (p >= 0) {
      this.#slots[p] = slot;
      return false;
    }
    if ((this.#count + 1) / this.#slots.length > MAX_LOAD) this.#rehash(this.#slots.length * 2);
    let q = key & this.#mask;
    while (this.#slots[q] !== EMPTY) q = (q + 1) & this.#mask;
    this.#slots[q] = slot;
    this.#keys[q] = key;
    this.#count++;
    this.#sizes.set(space, (this.#sizes.get(space) ?? 0) + 1);
    return true;
  }

  /**
   * The slot (space, id) names, else undefined after pointing it at `slot`: one probe where a
   * lookup and an insert would take two (open does this a million times).
   */
  getOrSet(space: number, id: string, slot: number, idHash: number): number | undefined {
    const key = keyOf(space, idHash);
    if ((this.#count + 1) / this.#slots.length > MAX_LOAD) this.#rehash(this.#slots.length * 2);
    const slots = this.#slots;
    const keys = this.#keys;
    const mask = this.#mask;
    let p = key & mask;
    for (; ; p = (p + 1) & mask) {
      const s = slots[p]!;
      if (s === EMPTY) break;
      if (keys[p] === key && this.#idOf(s) === id && this.#spaceOf(s) === space) return s;
    }
    slots[p] = slot;
    keys[p] = key;
    this.#count++;
    this.#sizes.set(space, (this.#sizes.get(space) ?? 0) + 1);
    return undefined;
  }

  /** Removes (space, id); returns whether it was there. */
  delete(space: number, id: string, idHash = idHashOfString(id)): boolean {
    const p = this.#find(space, id, keyOf(space, idHash));
    if (p < 0) return false;
    this.#removeAt(p);
    const n = (this.#sizes.get(space) ?? 1) - 1;
    if (n > 0) this.#sizes.set(space, n);
    else this.#sizes.delete(space);
    return true;
  }

  /** Removes every entry of `space` (a dropped space: its slots still hold its number); returns how many. */
  dropSpace(space: number): number {
    const n = this.#sizes.get(space) ?? 0;
    if (n === 0) return 0;
    const slots = this.#slots;
    const keys = this.#keys;
    this.#slots = new Int32Array(slots.length).fill(EMPTY);
    this.#keys = new Uint32Array(slots.length);
    this.#count = 0;
    for (let p = 0; p < slots.length; p++) {
      const s = slots[p]!;
      if (s !== EMPTY && this.#spaceOf(s) !== space) this.#place(s, keys[p]!);
    }
    this.#sizes.delete(space);
    return n;
  }

  /** The ids of one space, or of every space (in no particular order). */
  *ids(space?: number): IterableIterator<string> {
    const slots = this.#slots;
    for (let p = 0; p < slots.length; p++) {
      const s = slots[p]!;
      if (s === EMPTY || (space !== undefined && this.#spaceOf(s) !== space)) continue;
      const id = this.#idOf(s);
      if (id !== undefined) yield id;
    }
  }

  #find(space: number, id: string, key: number): number {
    const slots = this.#slots;
    const keys = this.#keys;
    const mask = this.#mask;
    for (let p = key & mask; ; p = (p + 1) & mask) {
      const s = slots[p]!;
      if (s === EMPTY) return -1;
      if (keys[p] === key && this.#idOf(s) === id && this.#spaceOf(s) === space) return p;
    }
  }

  #idOf(slot: number): string | undefined {
    return this.#table.chunks[slot >>> CHUNK_SHIFT]?.ids[slot & CHUNK_MASK];
  }

  #spaceOf(slot: number): number | undefined {
    return this.#table.chunks[slot >>> CHUNK_SHIFT]?.space[slot & CHUNK_MASK];
  }

  /** Inserts an entry known to be absent. */
  #place(slot: number, key: number): void {
    let q = key & this.#mask;
    while (this.#slots[q] !== EMPTY) q = (q + 1) & this.#mask;
    this.#slots[q] = slot;
    this.#keys[q] = key;
    this.#count++;
  }

  /** Linear probing's deletion: later entries of the cluster move back so no probe stops short. */
  #removeAt(p: number): void {
    const slots = this.#slots;
    const keys = this.#keys;
    const mask = this.#mask;
    let hole = p;
    for (let j = (p + 1) & mask; slots[j] !== EMPTY; j = (j + 1) & mask) {
      const home = keys[j]! & mask;
      // Entry j may fill the hole when its home does not lie cyclically in (hole, j].
      const between = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!between) {
        slots[hole] = slots[j]!;
        keys[hole] = keys[j]!;
        hole = j;
      }
    }
    slots[hole] = EMPTY;
    this.#count--;
  }

  #rehash(cap: number): void {
    const slots = this.#slots;
    const keys = this.#keys;
    this.#slots = new Int32Array(cap).fill(EMPTY);
    this.#keys = new Uint32Array(cap);
    this.#mask = cap - 1;
    this.#count = 0;
    for (let p = 0; p < slots.length; p++) if (slots[p] !== EMPTY) this.#place(slots[p]!, keys[p]!);
  }
}

/** Room for `n` entries at most half full (short probes, and growth far off). */
function capacityFor(n: number): number {
  let cap = MIN_CAPACITY;
  while (n > cap / 2) cap *= 2;
  return cap;
}
