/**
 * The process that the recover phase kills: stores every record durably, says so, then waits for
 * SIGKILL without closing or checkpointing.
 *   crash-child.ts SPEC_JSON DIR COUNT DIM BATCH
 */
import type { EngineSpec } from '../engines/engine.ts';
import { makeEngine } from '../engines/engine.ts';
import { Dataset } from '../lib/data.ts';
import { storeAll } from './put.ts';

const [specJson, dir, count, dim, batch] = process.argv.slice(2);
if (!specJson || !dir || !process.send) throw new Error('crash-child: run by the recover phase only');
const spec = JSON.parse(specJson) as EngineSpec;
const ds = new Dataset(Number(count), Number(dim));
const eng = await makeEngine(spec, dir, ds.dim);
await eng.open();
await storeAll(eng, ds, Number(batch));
process.send('stored');
setInterval(() => undefined, 1000); // wait for SIGKILL
