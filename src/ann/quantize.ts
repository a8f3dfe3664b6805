/**
 * Per-vector max-abs int8 codes: each component scaled so the largest magnitude maps to 127. The
 * index compares codes by cosine, which the per-vector scale does not change, so no scale is kept.
 * Writes `dim` codes at `outOff`; a zero vector stays all zeros.
 */
export function quantizeInto(
  src: Float32Array,
  srcOff: number,
  dim: number,
  out: Int8Array,
  outOff: number,
): void {
  let m = 0;
  for (let d = 0; d < dim; d++) {
    const a = Math.abs(src[srcOff + d]!);
    if (a > m) m = a;
  }
  const s = m > 0 ? 127 / m : 0;
  for (let d = 0; d < dim; d++) out[outOff + d] = Math.round(src[srcOff + d]! * s);
}

/** A query's codes, in an array that starts at byte 0 of its own buffer (the binding ignores offsets). */
export function quantize(v: Float32Array): Int8Array {
  const out = new Int8Array(v.length);
  quantizeInto(v, 0, v.length, out, 0);
  return out;
}
