import { nodeFileSystem } from '../../src/index.js';
import type { OpenMode, WsFile, WsFileSystem } from '../../src/index.js';

/**
 * The Node file layer with some file operations replaced: a subclass overrides `wrap` and returns,
 * for the files it cares about, a WsFile whose methods it changed (`delegate` forwards the rest).
 * Directory operations go straight to Node.
 */
export class WrappedFileSystem implements WsFileSystem {
  open(path: string, mode: OpenMode): WsFile {
    return this.wrap(nodeFileSystem.open(path, mode), path);
  }

  /** The file `open` hands out: `inner` itself unless a subclass changes it. */
  protected wrap(inner: WsFile, _path: string): WsFile {
    return inner;
  }

  readFile(path: string): Promise<Buffer> {
    return nodeFileSystem.readFile(path);
  }
  rename(from: string, to: string): Promise<void> {
    return nodeFileSystem.rename(from, to);
  }
  unlink(path: string): Promise<void> {
    return nodeFileSystem.unlink(path);
  }
  link(from: string, to: string): Promise<void> {
    return nodeFileSystem.link(from, to);
  }
  readdir(path: string): Promise<string[]> {
    return nodeFileSystem.readdir(path);
  }
  mkdir(path: string): Promise<void> {
    return nodeFileSystem.mkdir(path);
  }
  exists(path: string): Promise<boolean> {
    return nodeFileSystem.exists(path);
  }
  syncDir(path: string): Promise<void> {
    return nodeFileSystem.syncDir(path);
  }
  freeBytes(path: string): Promise<number> {
    return nodeFileSystem.freeBytes(path);
  }
}

/**
 * `inner` with the given methods replaced, every other one forwarded; except `writeDurable`, left
 * out unless given: the engine then makes a write and a sync, which overrides of those see.
 */
export function delegate(inner: WsFile, over: Partial<Omit<WsFile, 'path'>>): WsFile {
  return {
    path: inner.path,
    readSync: (b, o, l, p) => inner.readSync(b, o, l, p),
    read: (b, o, l, p) => inner.read(b, o, l, p),
    writeSync: (b, o, l, p) => inner.writeSync(b, o, l, p),
    write: (b, o, l, p) => inner.write(b, o, l, p),
    sync: () => inner.sync(),
    truncate: (n) => inner.truncate(n),
    size: () => inner.size(),
    close: () => inner.close(),
    closeSync: () => inner.closeSync(),
    ...over,
  };
}
