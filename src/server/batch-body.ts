/**
 * A batch put's body parsed item by item, without one string of the whole body.
 *
 * V8 puts a string over ~128 KB in its large-object space, and making one cost ~6 ns a byte here
 * against ~0.2 for a smaller one: 2.4 ms for a batch of 100 memories (430 KB), a quarter of the
 * server's CPU for that request. The body is scanned as bytes for the structure around the
 * `memories` array (strings are skipped with `indexOf`), each item is decoded and parsed on its
 * own, and the rest of the body is parsed with an empty array in its place. Anything the scan does
 * not expect (a second `memories`, an item that is not an object, a missing comma, a BOM) gives
 * undefined, and the caller parses the whole body as before, so errors and results stay the
 * parser's own.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const KEY = Buffer.from('memories');

/** `parse` parses one JSON text (with the server's prototype-poisoning rules) or throws. */
export function parseBatchBody(body: Buffer, parse: (text: string) => unknown): unknown {
  try {
    const shape = scan(body);
    if (shape === undefined) return undefined;
    const rest = body.toString('utf8', 0, shape.from) + '[]' + body.toString('utf8', shape.to);
    const out = parse(rest);
    if (typeof out !== 'object' || out === null || Array.isArray(out)) return undefined;
    const memories: unknown[] = new Array(shape.items.length / 2);
    for (let i = 0; i < memories.length; i++) {
      memories[i] = parse(body.toString('utf8', shape.items[2 * i]!, shape.items[2 * i + 1]!));
    }
    (out as { memories: unknown }).memories = memories;
    return out;
  } catch {
    return undefined;
  }
}

interface Shape {
  /** Byte range of the `memories` array, brackets included. */
  from: number;
  to: number;
  /** Start and end of each item, in pairs. */
  items: number[];
}

function isSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipSpace(b: Buffer, i: number): number {
  while (isSpace(b[i])) i++;
  return i;
}

/** The end of the string starting at `i` (an opening quote), or -1. */
function skipString(b: Buffer, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = b.indexOf(QUOTE, j);
    if (q < 0) return -1;
    let k = q - 1;
    while (b[k] === BACKSLASH) k--;
    // An odd run of backslashes escapes the quote.
    if ((q - 1 - k) % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/**
 * The end of the value starting at `i`: its extent only (JSON.parse checks what is inside), or -1
 * if it runs off the end.
 */
function skipValue(b: Buffer, i: number): number {
  const c = b[i];
  if (c === QUOTE) return skipString(b, i);
  if (c !== 0x7b && c !== 0x5b) {
    // A number or literal: up to the next delimiter.
    while (i < b.length && b[i] !== 0x2c && b[i] !== 0x7d && b[i] !== 0x5d && !isSpace(b[i])) i++;
    return i;
  }
  let depth = 0;
  while (i < b.length) {
    const d = b[i]!;
    if (d === QUOTE) {
      i = skipString(b, i);
      if (i < 0) return -1;
      continue;
    }
    if (d === 0x7b || d === 0x5b) depth++;
    else if (d === 0x7d || d === 0x5d) {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return -1;
}

function scan(b: Buffer): Shape | undefined {
  let i = skipSpace(b, 0);
  if (b[i] !== 0x7b) return undefined;
  i = skipSpace(b, i + 1);
  let shape: Shape | undefined;
  if (b[i] === 0x7d) return undefined;
  for (;;) {
    if (b[i] !== QUOTE) return undefined;
    const keyStart = i + 1;
    i = skipString(b, i);
    if (i < 0) return undefined;
    const isKey = i - 1 - keyStart === KEY.length && b.compare(KEY, 0, KEY.length, keyStart, i - 1) === 0;
    i = skipSpace(b, i);
    if (b[i] !== 0x3a) return undefined;
    i = skipSpace(b, i + 1);
    if (isKey) {
      if (shape !== undefined || b[i] !== 0x5b) return undefined;
      const from = i;
      const items: number[] = [];
      i = skipSpace(b, i + 1);
      if (b[i] === 0x5d) {
        i++;
      } else {
        for (;;) {
          if (b[i] !== 0x7b) return undefined;
          const start = i;
          i = skipValue(b, i);
          if (i < 0) return undefined;
          items.push(start, i);
          i = skipSpace(b, i);
          if (b[i] === 0x5d) {
            i++;
            break;
          }
          if (b[i] !== 0x2c) return undefined;
          i = skipSpace(b, i + 1);
        }
      }
      shape = { from, to: i, items };
    } else {
      i = skipValue(b, i);
      if (i < 0) return undefined;
    }
    i = skipSpace(b, i);
    if (b[i] === 0x7d) break;
    if (b[i] !== 0x2c) return undefined;
    i = skipSpace(b, i + 1);
  }
  return skipSpace(b, i + 1) === b.length ? shape : undefined;
}
