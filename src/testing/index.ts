/**
 * warmstore/testing: what warmstore's own crash and fault tests use, published on purpose so that
 * an application can fault-inject its own store the same way. Every export of the entry point is
 * named here. None of it belongs in production code: these layers exist to make a disk fail on
 * cue, and the power-cut layer skips real fsyncs and keeps its undo logs in memory.
 *
 * ```ts
 * import { WarmStore } from 'warmstore';
 * import { FaultyFileSystem, withTestHooks } from 'warmstore/testing';
 *
 * const fs = new FaultyFileSystem();
 * const points: string[] = [];
 * const store = await WarmStore.open(
 *   dir,
 *   withTestHooks({ fileSystem: fs }, { onKillPoint: (name) => points.push(name) }),
 * );
 * fs.failAt({ op: 'sync', nth: 1, error: 'EIO' }); // the next fdatasync (or durable write) fails; the put waiting on it rejects
 * ```
 */

/**
 * A file layer (`WsFileSystem`) that wraps another one, by default the real fs, and makes the Nth
 * matching operation throw ENOSPC or EIO shaped like Node's own errors, or write short. It counts
 * every operation, so a test can measure how many a call makes and then fail each in turn; pass
 * it as `fileSystem` in `WarmStoreOptions`.
 */
export { FaultyFileSystem } from './fault-fs.js';
/** Builds an error shaped like the ones Node's fs throws (code, errno, syscall, path). */
export { makeFsError } from './fault-fs.js';
/** The operations a fault can target, the ones counted, the errors raised, one armed fault, one that fired. */
export type { FaultOp, CountedOp, FaultErrorCode, FaultSpec, TriggeredFault } from './fault-fs.js';

/**
 * A file layer over one directory tree that simulates a power cut: `cut()` (or `cutAtOp(n)`)
 * reverts the tree to what POSIX durability guarantees (data as of the last fdatasync, plus the
 * durable writes that resolved; directory entries as of the last directory fsync), so a test can
 * reopen the store and check that every acknowledged write survived.
 */
export { PowerCutFileSystem } from './power-cut-fs.js';
/** How a cut reverts the tree (exact or torn), and what it changed. */
export type { CutOptions, CutReport } from './power-cut-fs.js';

/**
 * Attaches test hooks to store options without making them options: `withTestHooks(options,
 * { onKillPoint })` returns a copy of `options` on which the store calls `onKillPoint(name)` at
 * each named step of a compaction (crash tests kill the process or cut the power there).
 */
export { withTestHooks } from './hooks.js';
/** The hooks `withTestHooks` accepts. */
export type { TestHooks } from '../engine/test-hooks.js';

/**
 * Registers a format migration for this process (returns its unregister function), so a test can
 * fabricate a file at an older format version and check that a store opens it.
 */
export { registerMigration } from './migrations.js';
/** A migration of one file kind from one format version, and the file kinds. */
export type { Migration, FileKind } from '../format/header.js';
