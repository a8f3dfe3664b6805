import type { RecordTable, VectorSource } from '../../src/records/table.js';

/**
 * vectors.dat kept in memory, for unit tests of the record table and what reads through it
 * (no file): slots never written read as zero bytes, as past the end of the real file.
 */
export class MemoryVectors implements VectorSource {
  readonly path = '<memory vectors.dat>';
  readonly #rows = new Map<number, Uint8Array>();
  readonly #bytes: number;

  constructor(dim: number) {
    this.#bytes = dim * 4;
  }

  /** A source attached to `table`. */
  static attach(table: RecordTable): MemoryVectors {
    const v = new MemoryVectors(table.dim);
    table.attachVectors(v);
    return v;
  }

  write(slot: number, embedding: Float32Array): void {
    this.#rows.set(
      slot,
      new Uint8Array(embedding.buffer.slice(embedding.byteOffset, embedding.byteOffset + this.#bytes)),
    );
  }

  copy(from: number, to: number): void {
    const r = this.#rows.get(from);
    if (r) this.#rows.set(to, r.slice());
    else this.#rows.delete(to);
  }

  readVectorsSync(first: number, count: number, into: Uint8Array): number {
    into.fill(0, 0, count * this.#bytes);
    let got = 0;
    for (let i = 0; i < count; i++) {
      const r = this.#rows.get(first + i);
      if (r) into.set(r, i * this.#bytes);
      got += this.#bytes;
    }
    return got;
  }

  readVectors(first: number, count: number, into: Uint8Array): Promise<number> {
    return Promise.resolve(this.readVectorsSync(first, count, into));
  }
}
