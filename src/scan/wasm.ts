/**
 * The slice of the WebAssembly API the scan uses, typed here: TypeScript declares WebAssembly
 * only in its DOM library, which a Node package should not pull in.
 */
export interface WasmMemory {
  readonly buffer: SharedArrayBuffer;
  grow(deltaPages: number): number;
}

interface WasmApi {
  Memory: new (d: { initial: number; maximum: number; shared: true }) => WasmMemory;
}

export const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
