/**
 * The server process of the HTTP benchmark (forked by `lib/http-server.ts`, never imported): a
 * `startServer` on 127.0.0.1 with a random port over a fresh data directory, preloaded with the
 * benchmark's dataset. It also answers the parent's messages: the library's `store.recall`, timed
 * here on the store the server serves, so that the HTTP figure and the library figure share the
 * store, the query and the process.
 */
import { performance } from 'node:perf_hooks';
import type { Durability } from '../../src/index.js';
import { Dataset } from './data.ts';
import { decodeBase64Embedding, type ChildReply, type ChildRequest } from './http-server.ts';
import { num, opt } from './options.ts';

/** The server entry point, typed by its source; the code that runs is the build. */
type ServerModule = typeof import('../../src/server/index.js');

async function serve(): Promise<void> {
  const dir = opt('dir', '');
  if (dir === '') throw new Error('--dir is required');
  const durability = opt('durability', 'sync') as Durability;
  const preload = num('preload', 10_000);
  const dim = num('dim', 768);
  const { startServer } = (await import(
    new URL('../../dist/server/index.js', import.meta.url).href
  )) as ServerModule;
  const server = await startServer({
    dataDir: dir,
    host: '127.0.0.1',
    port: 0,
    logger: false,
    docs: false,
    // No compaction or checkpoint timer: a maintenance pass in the middle of one phase would be
    // charged to that phase alone.
    storeOptions: { durability, maintenanceIntervalMs: false },
  });
  const ds = new Dataset(preload, dim);
  const t0 = performance.now();
  for (let i = 0; i < ds.n; i += 1000) await server.store.putMany(ds.records.slice(i, i + 1000));
  const send = (m: ChildReply): void => {
    process.send!(m);
  };
  send({ type: 'ready', url: server.url, preloadMs: performance.now() - t0, size: server.store.size });

  process.on('message', (m: ChildRequest) => {
    void (async () => {
      switch (m.cmd) {
        case 'recall': {
          const q = decodeBase64Embedding(m.query);
          const t = performance.now();
          const hits = await server.store.recall(q, { k: m.k });
          const ms = performance.now() - t;
          send({ type: 'recall', id: m.id, ms, ids: hits.map((h) => h.memory.id) });
          break;
        }
        case 'stats':
          send({
            type: 'stats',
            id: m.id,
            size: server.store.size,
            rss: process.memoryUsage.rss(),
            cpuUs: ((u) => u.user + u.system)(process.cpuUsage()),
          });
          break;
        case 'settle': {
          // The previous phase's writes checkpointed, so that its background work is not charged
          // to the next phase.
          const t = performance.now();
          // The server's store is a WarmStore; its StoreApi type leaves checkpoint() out.
          await (server.store as unknown as { checkpoint(): Promise<void> }).checkpoint();
          send({ type: 'settled', id: m.id, ms: performance.now() - t });
          break;
        }
        case 'stop': {
          const t = performance.now();
          await server.close();
          send({ type: 'stopped', id: m.id, closeMs: performance.now() - t });
          process.exit(0);
        }
      }
    })().catch((e: unknown) => {
      console.error(e);
      process.exit(1);
    });
  });
}

serve().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
