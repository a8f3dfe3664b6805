/** The space a memory lives in when none is named. */
export const DEFAULT_SPACE = 'default';
/** The id of the space that exists in every store from its creation (and in every older store). */
export const DEFAULT_SPACE_ID = 0;

/**
 * Memory spaces by name and by number. A slot header and a WAL put carry the 4-byte number; the
 * names live here and in the MANIFEST. A space is defined by a WAL entry in the same batch as its
 * first put, and dropped by one WAL entry (the slots it held are swept afterwards). Numbers are
 * never reused, so a slot of a dropped space can never be mistaken for one of a later space of the
 * same name.
 */
export class SpaceRegistry {
  readonly #byName = new Map<string, number>();
  readonly #byId = new Map<number, string>();
  #next: number;

  constructor(persisted: Record<string, number> | undefined, next: number | undefined) {
    const spaces = persisted ?? { [DEFAULT_SPACE]: DEFAULT_SPACE_ID };
    let max = -1;
    for (const [name, id] of Object.entries(spaces)) {
      this.#byName.set(name, id);
      this.#byId.set(id, name);
      max = Math.max(max, id);
    }
    this.#next = Math.max(next ?? 0, max + 1);
  }

  idOf(name: string): number | undefined {
    return this.#byName.get(name);
  }

  nameOf(id: number): string | undefined {
    return this.#byId.get(id);
  }

  isLive(id: number): boolean {
    return this.#byId.has(id);
  }

  /** Hands out a number for a new space (a batch that fails wastes it: numbers are plenty). */
  allocate(): number {
    return this.#next++;
  }

  define(name: string, id: number): void {
    const prev = this.#byName.get(name);
    if (prev !== undefined && prev !== id) this.#byId.delete(prev);
    this.#byName.set(name, id);
    this.#byId.set(id, name);
    this.#next = Math.max(this.#next, id + 1);
  }

  drop(id: number): void {
    const name = this.#byId.get(id);
    if (name === undefined) return;
    this.#byId.delete(id);
    if (this.#byName.get(name) === id) this.#byName.delete(name);
  }

  /** Live spaces, by name. */
  entries(): [string, number][] {
    return [...this.#byName];
  }

  /** For the MANIFEST. */
  snapshot(): { spaces: Record<string, number>; nextSpaceId: number } {
    return { spaces: Object.fromEntries(this.#byName), nextSpaceId: this.#next };
  }
}
