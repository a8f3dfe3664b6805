import { KERNEL_MAX_PAGES } from '../scan/kernel.js';
import { wasm, type WasmMemory } from '../scan/wasm.js';

const PAGE = 65536;

/** Where a chunk's embeddings live: a view of shared memory, and its offset in the arena if inside. */
export interface EmbeddingBlock {
  emb: Float32Array;
  /** Byte offset inside the arena's WebAssembly memory; undefined for a block outside it. */
  arenaOffset: number | undefined;
}

/**
 * The record table's embeddings, in one shared WebAssembly memory grown a table chunk at a time,
 * so that scan workers can run the SIMD kernel over them where they lie (a WebAssembly instance
 * reads only its own memory). The first pages hold one scratch lane per scan worker (the query
 * and the scores). One memory, not one per chunk: V8 reserves about 10 GiB of address space for
 * each WebAssembly memory.
 *
 * Used only when the dimension is a multiple of 8 (the kernel's step); a block that does not fit
 * (the memory tops out at 4 GiB) or cannot be allocated is a plain SharedArrayBuffer, scanned
 * without the kernel.
 */
export class EmbeddingArena {
  readonly memory: WasmMemory | undefined;
  readonly dim: number;
  readonly lanes: number;
  readonly laneBytes: number;
  #pages: number;

  constructor(dim: number, lanes: number, chunkSlots: number) {
    this.dim = dim;
    this.lanes = lanes;
    // A lane: the query, then one score per chunk slot; 16-byte aligned for the kernel.
    this.laneBytes = Math.ceil((dim * 4 + chunkSlots * 4) / 16) * 16;
    const lanePages = Math.ceil((lanes * this.laneBytes) / PAGE);
    let memory: WasmMemory | undefined;
    if (dim % 8 === 0) {
      try {
        memory = new wasm.Memory({ initial: lanePages, maximum: KERNEL_MAX_PAGES, shared: true });
      } catch {
        memory = undefined;
      }
    }
    this.memory = memory;
    this.#pages = lanePages;
  }

  /** A zeroed block of `bytes`, inside the memory when it still fits. */
  allocate(bytes: number): EmbeddingBlock {
    const pages = Math.ceil(bytes / PAGE);
    const memory = this.memory;
    if (memory && this.#pages + pages <= KERNEL_MAX_PAGES) {
      try {
        memory.grow(pages);
        const offset = this.#pages * PAGE;
        this.#pages += pages;
        return { emb: new Float32Array(memory.buffer, offset, bytes / 4), arenaOffset: offset };
      } catch {
        // fall through: the address space or the machine said no
      }
    }
    return { emb: new Float32Array(new SharedArrayBuffer(bytes)), arenaOffset: undefined };
  }
}
