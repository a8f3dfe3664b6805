import assert from 'node:assert/strict';
import { open as fsOpen, readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import {
  WarmStore,
  WarmStoreError,
  type CorruptRecord,
  type MemoryRecord,
  type ScrubReport,
  type WarmStoreLogger,
  type WarmStoreOptions,
} from '../../../src/index.js';
import type { WsFile } from '../../../src/fs/types.js';
import { createMetrics } from '../../../src/metrics/index.js';
import { createServer } from '../../../src/server/index.js';
import { FaultyFileSystem } from '../../../src/testing/index.js';
import { sample } from '../metrics/prom-text.js';
import { Rng, embeddingFor } from '../../helpers/random.js';
import { tempDir } from '../../helpers/tmp.js';
import { WrappedFileSystem, delegate } from '../../helpers/wrapped-fs.js';

const DIM = 8;
const VECTOR_BYTES = DIM * 4;
const DATA_START = 4096; // records.dat and vectors.dat: slot 0 starts here
const SLOT_HEADER_BYTES = 352;
const SEGMENT_HEADER_BYTES = 32;
const ENTRY_HEADER_BYTES = 12;
/** More than two table chunks (8192 slots each). */
const N = 20_000;
/** Fast enough for tests; the default rate is a background one. */
const FAST = { bytesPerSecond: 1 << 30 };
const OPTS: WarmStoreOptions = { dimension: DIM, maintenanceIntervalMs: false, scrub: false };

function rec(id: string, seed: number, withContent: boolean): MemoryRecord {
  return {
    id,
    embedding: embeddingFor(seed, DIM),
    content: withContent ? `content of ${id} #${seed}` : null,
  };
}

/** `n` memories m0.. (every tenth with content), written in a few group commits. */
async function fill(store: WarmStore, n: number): Promise<void> {
  for (let from = 0; from < n; from += 2000) {
    const batch: MemoryRecord[] = [];
    for (let i = from; i < Math.min(n, from + 2000); i++) batch.push(rec(`m${i}`, i, i % 10 === 0));
    await store.putMany(batch);
  }
}

/** The slot of every id, from records.dat (checkpoint first: headers are written by checkpoints). */
async function slotsOf(dir: string): Promise<Map<string, number>> {
  const buf = await readFile(join(dir, 'records.dat'));
  const out = new Map<string, number>();
  for (
    let pos = DATA_START, slot = 0;
    pos + SLOT_HEADER_BYTES <= buf.length;
    pos += SLOT_HEADER_BYTES, slot++
  ) {
    const len = buf[pos + 5]!;
    if (len > 0) out.set(buf.toString('utf8', pos + 96, pos + 96 + len), slot);
  }
  return out;
}

async function flipByte(path: string, offset: number): Promise<void> {
  const fh = await fsOpen(path, 'r+');
  try {
    const b = Buffer.alloc(1);
    const { bytesRead } = await fh.read(b, 0, 1, offset);
    assert.equal(bytesRead, 1, `${path} has a byte at ${offset}`);
    b[0] = b[0]! ^ 0x5a;
    await fh.write(b, 0, 1, offset);
  } finally {
    await fh.close();
  }
}

/** Damages the embedding of `id` in vectors.dat (the store keeps running: it reads through the page cache). */
async function damageVector(dir: string, slots: Map<string, number>, id: string): Promise<void> {
  const slot = slots.get(id);
  assert.ok(slot !== undefined, `${id} has a slot`);
  await flipByte(join(dir, 'vectors.dat'), DATA_START + slot * VECTOR_BYTES + 5);
}

/** Damages the content of `id` in its segment (entries follow the header back to back). */
async function damageContent(dir: string, id: string): Promise<string> {
  const idBytes = Buffer.from(id, 'utf8');
  for (const name of (await readdir(dir)).filter((n) => /^seg-\d+\.dat$/.test(n))) {
    const path = join(dir, name);
    const buf = await readFile(path);
    for (let pos = SEGMENT_HEADER_BYTES; pos + ENTRY_HEADER_BYTES <= buf.length;) {
      const clen = buf.readUInt32LE(pos + 4);
      const idLen = buf[pos + 8]!;
      const idAt = pos + ENTRY_HEADER_BYTES;
      if (idLen === idBytes.length && buf.subarray(idAt, idAt + idLen).equals(idBytes)) {
        await flipByte(path, idAt + idLen + Math.floor(clen / 2));
        return path;
      }
      pos += ENTRY_HEADER_BYTES + idLen + clen;
    }
  }
  assert.fail(`no content entry for ${id}`);
}

function isCorruption(id: string) {
  return (err: unknown): boolean => {
    assert.ok(
      WarmStoreError.is(err, 'CORRUPTION_DETECTED'),
      `expected CORRUPTION_DETECTED, got ${String(err)}`,
    );
    assert.equal(err.details.id, id);
    return true;
  };
}

function isInvalid(field: string) {
  return (err: unknown): boolean => {
    assert.ok(WarmStoreError.is(err, 'INVALID_INPUT'), `expected INVALID_INPUT, got ${String(err)}`);
    assert.equal(err.details.field, field);
    return true;
  };
}

class ErrorLog implements WarmStoreLogger {
  readonly errors: { obj: Record<string, unknown>; msg: string | undefined }[] = [];
  info(): void {}
  warn(): void {}
  error(obj: object, msg?: string): void {
    this.errors.push({ obj: obj as Record<string, unknown>, msg });
  }
}

/**
 * The Node file layer, with every asynchronous read of vectors.dat started `delayMs` late: the
 * bytes it returns are those on disk after the delay, so writes in the meantime land inside the
 * read, as they can on a busy disk.
 */
class SlowVectorReads extends WrappedFileSystem {
  constructor(private readonly delayMs: number) {
    super();
  }

  protected override wrap(f: WsFile, path: string): WsFile {
    if (!path.endsWith('vectors.dat')) return f;
    return delegate(f, {
      read: async (b, o, l, p) => {
        await new Promise((res) => setTimeout(res, this.delayMs));
        return f.read(b, o, l, p);
      },
    });
  }
}

const ids = (rs: readonly CorruptRecord[]): string[] => rs.map((r) => r.id ?? '?').sort();

async function scratch(t: TestContext): Promise<string> {
  return tempDir(t, 'warmstore-scrub-');
}

describe('scrub', () => {
  test('a pass reports exactly the damaged memories; reads, status, metrics, events and verify agree', async (t) => {
    const dir = await scratch(t);
    const log = new ErrorLog();
    const store = await WarmStore.open(dir, { ...OPTS, logger: log });
    t.after(() => store.close());
    await fill(store, N);
    await store.checkpoint();
    const slots = await slotsOf(dir);
    assert.ok(Math.max(...slots.values()) >= 2 * WarmStore.chunkSlots, 'the memories span three chunks');
    const damagedVectors = ['m3', 'm9001', 'm17003'];
    for (const id of damagedVectors) await damageVector(dir, slots, id);
    const segPath = await damageContent(dir, 'm12340');
    const damaged = [...damagedVectors, 'm12340'].sort();
    assert.deepEqual(store.corruptRecords, [], 'nothing is known before the pass');

    const found: CorruptRecord[] = [];
    const ended: ScrubReport[] = [];
    store.on('scrubCorruption', (c) => found.push(c));
    store.on('scrubEnd', (r) => ended.push(r));
    const metrics = createMetrics(store, { defaultMetrics: false });
    t.after(() => metrics.detach());
    const before = await metrics.metrics();
    assert.equal(sample(before, 'warmstore_scrub_slots_checked_total'), 0);
    assert.equal(sample(before, 'warmstore_scrub_pass_progress_ratio'), 0);

    const report = await store.scrub(FAST);
    assert.equal(report.completed, true);
    assert.equal(report.slots, N);
    assert.equal(report.checked, N);
    assert.equal(report.skipped, 0);
    assert.ok(report.bytesRead >= N * VECTOR_BYTES, `read ${report.bytesRead} bytes`);
    assert.deepEqual(ids(report.corrupt), damaged);
    for (const c of report.corrupt) {
      assert.equal(c.slot, slots.get(c.id!));
      assert.equal(c.file, c.id === 'm12340' ? segPath : join(dir, 'vectors.dat'));
    }
    assert.deepEqual(ids(found), damaged, 'one scrubCorruption event each');
    assert.equal(ended.length, 1);
    assert.deepEqual(ids(store.corruptRecords), damaged);

    // Loud: one error log line each, naming the id, the slot and the file.
    const logged = log.errors.filter((e) => /scrub found a damaged record/.test(e.msg ?? ''));
    assert.deepEqual(logged.map((e) => e.obj.id as string).sort(), damaged);
    for (const e of logged) {
      assert.equal(e.obj.slot, slots.get(e.obj.id as string));
      assert.equal(typeof e.obj.file, 'string');
    }

    for (const id of damaged) await assert.rejects(store.get(id), isCorruption(id));
    for (const id of ['m0', 'm4', 'm9000', 'm12341', `m${N - 1}`]) {
      const m = await store.get(id);
      assert.ok(m, `${id} is readable`);
      assert.deepEqual(m.embedding, embeddingFor(Number(id.slice(1)), DIM));
    }

    const st = store.scrubStatus();
    assert.equal(st.state, 'off', 'no background passes with scrub: false');
    assert.equal(st.passesCompleted, 1);
    assert.equal(st.slotsChecked, N);
    assert.equal(st.corruptFound, damaged.length);
    assert.ok(st.lastPassCompletedAt !== undefined && st.lastPassCompletedAt >= report.startedAt);
    const after = await metrics.metrics();
    assert.equal(sample(after, 'warmstore_scrub_slots_checked_total'), N);
    assert.equal(sample(after, 'warmstore_scrub_corrupt_found_total'), damaged.length);
    assert.equal(sample(after, 'warmstore_scrub_pass_progress_ratio'), 1);
    assert.equal(sample(after, 'warmstore_scrub_bytes_read_total'), report.bytesRead);

    // verify lists them too, and the live-byte ledger still matches the records (no garbage-count).
    const v = await store.verify();
    assert.deepEqual(
      v.problems.map((p) => p.kind),
      damaged.map(() => 'corrupt-record'),
    );
    assert.deepEqual(v.problems.map((p) => p.id).sort(), damaged);

    // A second pass finds nothing new: known damage is not counted twice.
    const again = await store.scrub(FAST);
    assert.deepEqual(again.corrupt, []);
    assert.equal(again.checked, N - damaged.length);
    assert.equal(store.scrubStatus().corruptFound, damaged.length);

    // A put of a damaged id replaces it; a delete removes it. Both clear it from the report.
    await store.put(rec('m3', 3, false));
    await store.put(rec('m12340', 12340, true));
    assert.equal(await store.delete('m9001'), true);
    assert.deepEqual(ids(store.corruptRecords), ['m17003']);
    assert.deepEqual((await store.get('m3'))?.embedding, embeddingFor(3, DIM));
    assert.equal((await store.get('m12340'))?.content, 'content of m12340 #12340');
    assert.equal(await store.get('m9001'), undefined);
    const v2 = await store.verify();
    assert.deepEqual(
      v2.problems.map((p) => `${p.kind} ${p.id}`),
      ['corrupt-record m17003'],
    );
    const third = await store.scrub(FAST);
    assert.deepEqual(third.corrupt, [], 'the replaced memories are sound');
    assert.equal(third.checked, N - 2);
  });

  test('passes running beside puts, updates and deletes that reuse freed slots report no false corruption', async (t) => {
    const dir = await scratch(t);
    // Synchronous durability: a freed slot is reused by the very next put. Slow reads of the
    // scrub's runs let many commits land inside each read.
    const store = await WarmStore.open(dir, {
      ...OPTS,
      durability: 'sync',
      fileSystem: new SlowVectorReads(15),
    });
    t.after(() => store.close());
    const live = 3000;
    await fill(store, live);
    // The lower half's slots become holes that no write below fills for good: the writer's deletes
    // add holes and its puts of a deleted id take at most as many back, so relocation always has
    // somewhere to move the memories above them.
    const half = live / 2;
    for (let i = 0; i < half; i += 100) {
      const dels: Promise<boolean>[] = [];
      for (let j = i; j < i + 100; j++) dels.push(store.delete(`m${j}`));
      await Promise.all(dels);
    }
    const r = new Rng(7);
    let writes = 0;
    let stop = false;
    const writer = (async () => {
      let seed = 1_000_000;
      while (!stop) {
        const ops: Promise<unknown>[] = [];
        for (let k = 0; k < 16; k++) {
          const id = `m${half + r.int(live - half)}`;
          // Updates and deletes free slots; the next puts of the batch (or the next batch) reuse them.
          if (r.int(10) < 7) ops.push(store.put(rec(id, seed++, r.bool(0.3))));
          else ops.push(store.delete(id));
        }
        await Promise.all(ops);
        writes += ops.length;
      }
    })();
    const reports: ScrubReport[] = [];
    // A compaction moves memories from high slots down into freed ones meanwhile.
    let slotsMoved = 0;
    try {
      const compaction = (async () => {
        slotsMoved = (await store.compact({ force: true })).slotsMoved;
      })();
      for (let i = 0; i < 3; i++) reports.push(await store.scrub(FAST));
      await compaction;
    } finally {
      stop = true;
      await writer;
    }
    assert.ok(slotsMoved > 0, 'the compaction moved memories during the passes');
    assert.ok(writes > 0, 'the writer ran during the passes');
    for (const p of reports) {
      assert.equal(p.completed, true);
      assert.deepEqual(p.corrupt, [], 'no false corruption');
    }
    assert.ok(
      reports.some((p) => p.skipped > 0),
      `some memories changed under a read: ${JSON.stringify(reports.map((p) => p.skipped))}`,
    );
    assert.deepEqual(store.corruptRecords, []);
    assert.equal(store.scrubStatus().corruptFound, 0);
    const v = await store.verify();
    assert.deepEqual(v.problems, []);
  });

  test('close during a pass stops it between two steps: the pass ends incomplete and scrub() rejects', async (t) => {
    const dir = await scratch(t);
    const store = await WarmStore.open(dir, OPTS);
    await fill(store, N);
    const ended: ScrubReport[] = [];
    store.on('scrubEnd', (r) => ended.push(r));
    // At 4 KiB/s the pass would take minutes: a close that waited for it would time the test out.
    const pass = store.scrub({ bytesPerSecond: 4096 });
    const outcome = pass.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    while (store.scrubStatus().passSlotsDone === 0) await new Promise((res) => setTimeout(res, 5));
    const running = store.scrubStatus();
    assert.equal(running.state, 'running');
    assert.equal(running.passSlots, N);
    assert.ok(running.passStartedAt !== undefined);
    await store.close();
    const err = await outcome;
    assert.ok(WarmStoreError.is(err, 'STORE_CLOSED'), `scrub() rejects with STORE_CLOSED: ${String(err)}`);
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.completed, false);
    assert.ok(ended[0]!.slots < N, `stopped after ${ended[0]!.slots} of ${N} slots`);
    const st = store.scrubStatus();
    assert.equal(st.passesCompleted, 0);
    assert.equal(st.state, 'off');
    await assert.rejects(store.scrub(), (e: unknown) => WarmStoreError.is(e, 'STORE_CLOSED'));
  });

  test('background passes start after open, find damage, repeat at the interval and stop at close', async (t) => {
    const dir = await scratch(t);
    let store = await WarmStore.open(dir, OPTS);
    await fill(store, 500);
    await store.checkpoint();
    await damageVector(dir, await slotsOf(dir), 'm77');
    await store.close();

    store = await WarmStore.open(dir, { ...OPTS, scrub: { intervalMs: 20, bytesPerSecond: 1 << 30 } });
    const s = store;
    t.after(() => s.close());
    assert.ok(['idle', 'running'].includes(store.scrubStatus().state));
    const found: CorruptRecord[] = [];
    store.on('scrubCorruption', (c) => found.push(c));
    // The scrub's timers never keep a process alive; this test must stay alive to watch them.
    const keepAlive = setInterval(() => undefined, 1000);
    t.after(() => clearInterval(keepAlive));
    const twoPasses = new Promise<void>((res) => {
      let n = 0;
      store.on('scrubEnd', (r) => {
        if (r.completed && ++n === 2) res();
      });
    });
    await twoPasses;
    assert.deepEqual(ids(found), ['m77'], 'found once, by the first pass');
    assert.deepEqual(ids(store.corruptRecords), ['m77']);
    const st = store.scrubStatus();
    assert.ok(st.passesCompleted >= 2);
    assert.equal(st.corruptFound, 1);
    await store.close();
    assert.equal(store.scrubStatus().state, 'off');
    assert.equal(store.scrubStatus().nextPassAt, undefined);
  });

  test('a read-only store scrubs on demand only', async (t) => {
    const dir = await scratch(t);
    const w = await WarmStore.open(dir, OPTS);
    await fill(w, 300);
    await w.checkpoint();
    await damageVector(dir, await slotsOf(dir), 'm42');
    await w.close();
    const store = await WarmStore.open(dir, { dimension: DIM, readOnly: true, scrub: { intervalMs: 10 } });
    t.after(() => store.close());
    // Longer than the interval: a background pass would have started.
    await new Promise((res) => setTimeout(res, 50));
    assert.equal(store.scrubStatus().state, 'off');
    assert.equal(store.scrubStatus().passesCompleted, 0, 'no background pass');
    const report = await store.scrub(FAST);
    assert.deepEqual(ids(report.corrupt), ['m42']);
    await assert.rejects(store.get('m42'), isCorruption('m42'));
  });

  test('a damaged memory of a dropped space is swept like the others, and the ledger stays right', async (t) => {
    const dir = await scratch(t);
    const store = await WarmStore.open(dir, OPTS);
    t.after(() => store.close());
    await fill(store, 100);
    const tenant: MemoryRecord[] = [];
    for (let i = 0; i < 50; i++) tenant.push({ ...rec(`t${i}`, 500 + i, true), space: 'tenant' });
    await store.putMany(tenant);
    await store.checkpoint();
    await damageVector(dir, await slotsOf(dir), 't7');
    assert.deepEqual(ids((await store.scrub(FAST)).corrupt), ['t7']);
    assert.equal(await store.deleteSpace('tenant'), 50);
    // The sweep frees the dropped space's slots a chunk per event-loop turn.
    for (let i = 0; i < 1000 && store.corruptRecords.length > 0; i++) {
      await new Promise((res) => setImmediate(res));
    }
    assert.deepEqual(store.corruptRecords, [], 'the sweep freed the damaged slot');
    const v = await store.verify();
    assert.deepEqual(v.problems, [], 'no corrupt record left, and live bytes match the records');
    assert.equal(store.contentStorageStats().liveBytes > 0, true);
  });

  test('a read error fails the pass, not the store; the status says why and the next pass runs', async (t) => {
    const dir = await scratch(t);
    const fs = new FaultyFileSystem();
    const store = await WarmStore.open(dir, { ...OPTS, fileSystem: fs });
    t.after(() => store.close());
    await fill(store, 2000);
    fs.failAt({ op: 'read', nth: 1, error: 'EIO', pathIncludes: 'vectors.dat' });
    await assert.rejects(store.scrub(FAST), (err: unknown) => WarmStoreError.is(err, 'IO_ERROR'));
    const st = store.scrubStatus();
    assert.match(st.lastError ?? '', /vectors\.dat/);
    assert.equal(st.passesCompleted, 0);
    assert.deepEqual(store.corruptRecords, [], 'a failed read is not corruption');
    fs.clearFaults();
    const report = await store.scrub(FAST);
    assert.equal(report.checked, 2000);
    assert.equal(store.scrubStatus().lastError, undefined);
    assert.equal((await store.get('m7'))?.id, 'm7');
  });

  test('the storage route and /metrics report the scrub over HTTP', async (t) => {
    const dir = await scratch(t);
    const store = await WarmStore.open(dir, OPTS);
    t.after(() => store.close());
    await fill(store, 1000);
    await store.checkpoint();
    await damageVector(dir, await slotsOf(dir), 'm9');
    await store.scrub(FAST);
    const server = await createServer({ store, logger: false, docs: false, port: 0, host: '127.0.0.1' });
    t.after(() => server.close());
    const base = await server.listen();
    const storage = (await (await fetch(`${base}/api/v1/metrics/storage`)).json()) as {
      scrub?: Record<string, unknown>;
    };
    assert.ok(storage.scrub, 'the storage route has a scrub section');
    assert.equal(storage.scrub['state'], 'off');
    assert.equal(storage.scrub['slotsChecked'], 1000);
    assert.equal(storage.scrub['corruptFound'], 1);
    assert.equal(storage.scrub['passesCompleted'], 1);
    assert.equal(typeof storage.scrub['lastPassCompletedAt'], 'number');
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.equal(sample(text, 'warmstore_scrub_slots_checked_total'), 1000);
    assert.equal(sample(text, 'warmstore_scrub_corrupt_found_total'), 1);
    assert.ok((sample(text, 'warmstore_scrub_last_pass_completed_seconds') ?? 0) > 1_700_000_000);
  });

  test('options are validated, naming the field; nothing is created', async (t) => {
    const dir = await scratch(t);
    const bad: [unknown, string][] = [
      [true, 'scrub'],
      ['on', 'scrub'],
      [{ bytesPerSecond: 0 }, 'scrub.bytesPerSecond'],
      [{ bytesPerSecond: 1.5e6 + 0.5 }, 'scrub.bytesPerSecond'],
      [{ bytesPerSecond: '32M' }, 'scrub.bytesPerSecond'],
      [{ intervalMs: 5 }, 'scrub.intervalMs'],
      [{ intervalMs: 2 ** 31 }, 'scrub.intervalMs'],
      [{ intervalMs: Number.NaN }, 'scrub.intervalMs'],
    ];
    for (const [scrub, field] of bad) {
      const sub = join(dir, `s${field}${bad.findIndex((b) => b[0] === scrub)}`);
      await assert.rejects(
        WarmStore.open(sub, { dimension: DIM, scrub } as WarmStoreOptions),
        isInvalid(field),
        JSON.stringify(scrub),
      );
      await assert.rejects(readdir(sub), { code: 'ENOENT' }, 'no directory created');
    }
    const store = await WarmStore.open(join(dir, 'ok'), {
      ...OPTS,
      scrub: { bytesPerSecond: 4096, intervalMs: 2 ** 31 - 1 },
    });
    t.after(() => store.close());
    assert.equal(store.scrubStatus().state, 'idle');
    assert.ok(
      store.scrubStatus().nextPassAt! <= Date.now() + 5 * 60_000,
      'the first pass within five minutes of open',
    );
    await assert.rejects(store.scrub({ bytesPerSecond: -1 }), isInvalid('bytesPerSecond'));
    await assert.rejects(store.scrub({ bytesPerSecond: 100 }), isInvalid('bytesPerSecond'));
    await assert.rejects(store.scrub(null as never), isInvalid('options'));
    assert.equal(store.scrubStatus().passesCompleted, 0, 'a refused call runs nothing');
  });
});
