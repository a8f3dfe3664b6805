import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { crc32c } from '../format/crc.js';

/**
 * Checks slot headers against their CRC32C on a worker thread while the opening thread decodes
 * the previous chunk: at a million memories the header checksums (and the buffer views each one
 * needs) were a third of an open's CPU. The header buffers are SharedArrayBuffers, so the worker
 * reads them in place; only the numbers of the headers that fail cross back.
 *
 * The worker runs plain CommonJS from a string (no file to resolve, whether warmstore runs from
 * dist/ or from its TypeScript sources) and loads the same CRC32C module as the engine.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { crc32c } = require(workerData.crcModule);
parentPort.on('message', (m) => {
  const bad = [];
  const b = Buffer.from(m.buffer, m.byteOffset, m.count * m.headerBytes);
  for (let i = 0; i < m.count; i++) {
    const pos = i * m.headerBytes;
    const stored = b.readUInt32LE(pos);
    // A free header (checksum and kind zero) is the decoder's to tell from a damaged one.
    if (stored === 0 && b[pos + 4] === 0) continue;
    if ((crc32c(b.subarray(pos + 4, pos + m.headerBytes)) >>> 0) !== stored) bad.push(i);
  }
  parentPort.postMessage({ id: m.id, bad });
});
`;

interface Pending {
  resolve: (bad: number[]) => void;
  reject: (err: unknown) => void;
}

export class HeaderVerifier {
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
    worker.on('exit', (code) => fail(new Error(`header verifier exited with code ${code}`)));
  }

  /** A verifier, or undefined where worker threads are unavailable (callers check inline). */
  static create(): HeaderVerifier | undefined {
    try {
      const crcModule = createRequire(import.meta.url).resolve('@node-rs/crc32');
      return new HeaderVerifier(new Worker(WORKER_SOURCE, { eval: true, workerData: { crcModule } }));
    } catch {
      return undefined;
    }
  }

  /**
   * The indexes (0 to count-1) of the used headers in `buf` whose checksum does not match. `buf`
   * must be backed by a SharedArrayBuffer and left unwritten until the promise settles.
   */
  verify(buf: Buffer, count: number, headerBytes: number): Promise<number[]> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    const id = this.#next++;
    return new Promise<number[]>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, buffer: buf.buffer, byteOffset: buf.byteOffset, count, headerBytes });
    });
  }

  async close(): Promise<void> {
    this.#worker.removeAllListeners('exit');
    await this.#worker.terminate();
  }
}

/** The same check on the calling thread (no worker, or the worker failed). */
export function verifyHeadersInline(buf: Buffer, count: number, headerBytes: number): number[] {
  const bad: number[] = [];
  for (let i = 0; i < count; i++) {
    const pos = i * headerBytes;
    const stored = buf.readUInt32LE(pos);
    if (stored === 0 && buf[pos + 4] === 0) continue;
    if (crc32c(buf.subarray(pos + 4, pos + headerBytes)) !== stored) bad.push(i);
  }
  return bad;
}
