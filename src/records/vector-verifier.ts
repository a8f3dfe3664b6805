import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { crc32c } from '../format/crc.js';

/**
 * Checks vectors against their CRC32C on a worker thread while the opening thread decodes headers:
 * at 768 dimensions the vector checksums are a quarter of an open's CPU. The table's embedding
 * chunks live in SharedArrayBuffers, so the worker reads them in place; only row numbers and
 * expected checksums cross the thread boundary.
 *
 * The worker runs plain CommonJS from a string (no file to resolve, whether warmstore runs from
 * dist/ or from its TypeScript sources) and loads the same CRC32C module as the engine.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { crc32c } = require(workerData.crcModule);
parentPort.on('message', (m) => {
  const bad = [];
  for (let j = 0; j < m.rows.length; j++) {
    const b = Buffer.from(m.buffer, m.byteOffset + m.rows[j] * m.vecBytes, m.vecBytes);
    if ((crc32c(b) >>> 0) !== m.expected[j]) bad.push(m.rows[j]);
  }
  parentPort.postMessage({ id: m.id, bad });
});
`;

interface Pending {
  resolve: (bad: number[]) => void;
  reject: (err: unknown) => void;
}

export class VectorVerifier {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #failed: unknown;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on('message', (m: { id: number; bad: number[] }) => {
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      p?.resolve(m.bad);
    });
    const fail = (err: unknown): void => {
      this.#failed ??= err;
      for (const p of this.#pending.values()) p.reject(err);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`vector verifier exited with code ${code}`)));
  }

  /** A verifier, or undefined where worker threads are unavailable (callers check inline). */
  static create(): VectorVerifier | undefined {
    try {
      const crcModule = createRequire(import.meta.url).resolve('@node-rs/crc32');
      return new VectorVerifier(new Worker(WORKER_SOURCE, { eval: true, workerData: { crcModule } }));
    } catch {
      return undefined;
    }
  }

  /**
   * Rows of `emb` (each `vecBytes` long) whose checksum differs from `expected`. `emb` must be
   * backed by a SharedArrayBuffer and left unwritten until the promise settles.
   */
  verify(emb: Float32Array, vecBytes: number, rows: Uint32Array, expected: Uint32Array): Promise<number[]> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise<number[]>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({
        id,
        buffer: emb.buffer,
        byteOffset: emb.byteOffset,
        vecBytes,
        rows,
        expected,
      });
    });
  }

  async close(): Promise<void> {
    this.#worker.removeAllListeners('exit');
    await this.#worker.terminate();
  }
}

/** The same check on the calling thread: the fallback, and the path for small stores. */
export function verifyVectorsInline(
  emb: Float32Array,
  vecBytes: number,
  rows: Uint32Array,
  expected: Uint32Array,
): number[] {
  const bad: number[] = [];
  for (let j = 0; j < rows.length; j++) {
    const b = Buffer.from(emb.buffer, emb.byteOffset + rows[j]! * vecBytes, vecBytes);
    if (crc32c(b) !== expected[j]) bad.push(rows[j]!);
  }
  return bad;
}
