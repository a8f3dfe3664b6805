import type { SpaceInfo } from '../../types.js';
import {
  formatCount,
  openCliClient,
  openCliStore,
  printJson,
  withStore,
  type RemoteCliOptions,
} from '../common.js';

export interface SpacesCliOptions extends RemoteCliOptions {
  data: string;
  json?: boolean;
  /** Delete this space and every memory in it instead of listing. */
  delete?: string;
}

/**
 * Lists the memory spaces with their sizes, or deletes one (`--delete NAME`), the way
 * `git branch` lists branches and `git branch --delete` removes one. Over `--url`, a key that
 * does not cover every space lists only its own.
 */
export async function spaces(opts: SpacesCliOptions): Promise<void> {
  if (opts.delete !== undefined) {
    const name = opts.delete;
    let deleted: number;
    if (opts.url !== undefined) {
      deleted = await openCliClient({ ...opts, url: opts.url }).deleteSpace(name);
    } else {
      const store = await openCliStore(opts.data, { mustExist: true });
      deleted = await withStore(store, () => store.deleteSpace(name));
    }
    if (opts.json) printJson({ space: name, deleted });
    else process.stdout.write(`deleted space ${shown(name)} (${formatCount(deleted)} memories)\n`);
    return;
  }
  let list: SpaceInfo[];
  if (opts.url !== undefined) {
    list = await openCliClient({ ...opts, url: opts.url }).spaces();
  } else {
    const store = await openCliStore(opts.data, { mustExist: true });
    list = await withStore(store, async () => store.spaces());
  }
  if (opts.json) {
    printJson({ spaces: list });
    return;
  }
  process.stdout.write(formatSpaces(list));
}

/** A name as a terminal shows it: quoted when it holds spaces or control characters. */
const shown = (name: string): string => (/[\s\p{C}]/u.test(name) ? JSON.stringify(name) : name);

/** One line per space, `name  size`, sizes aligned; shared with `warmstore stats`. */
export function formatSpaces(list: readonly SpaceInfo[], indent = ''): string {
  const names = list.map((s) => shown(s.name));
  const sizes = list.map((s) => formatCount(s.size));
  const width = Math.max(0, ...names.map((n) => n.length));
  const sizeWidth = Math.max(0, ...sizes.map((s) => s.length));
  return names.map((n, i) => `${indent}${n.padEnd(width)}  ${sizes[i]!.padStart(sizeWidth)}\n`).join('');
}
