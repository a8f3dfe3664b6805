/**
 * The two ways the HTTP benchmark drives the server: autocannon for throughput (many connections,
 * bounded in time) and one keep-alive connection for latency (one request at a time, so that a
 * figure is the cost of a request and not the wait behind others).
 */
import * as http from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  type Autocannon,
  type AutocannonRequest,
  type AutocannonResult,
  loadPeer,
} from '../engines/peers.ts';
import { Lat, type LatSummary } from './measure.ts';

/** One autocannon run: requests per second and the latency of the 2xx answers. */
export interface LoadResult {
  reqPerSec: number;
  /** 2xx answers in the run. */
  ok: number;
  lat: LatSummary;
  /** Non-2xx answers, socket errors and timeouts: any of them makes the run's figure suspect. */
  failed: number;
  mbPerSec: number;
}

export interface LoadOptions {
  url: string;
  connections: number;
  /** Seconds. */
  duration: number;
  requests: AutocannonRequest[];
}

export async function autocannonRun(o: LoadOptions): Promise<LoadResult> {
  const autocannon = loadPeer<Autocannon>('autocannon');
  const lat = new Lat();
  let ok = 0;
  let last = NaN;
  const t0 = performance.now();
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const inst = autocannon(
      {
        url: o.url,
        connections: o.connections,
        pipelining: 1,
        duration: o.duration,
        requests: o.requests,
        timeout: 30,
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    // autocannon's own histogram has 1 ms resolution; keep a microsecond one beside it.
    inst.on('response', (_c, status, _b, ms) => {
      if (status >= 200 && status < 300) {
        ok++;
        last = performance.now();
        lat.ms(ms);
      }
    });
  });
  // Up to the last 2xx answer, not to the end of the run: the requests still in flight when
  // autocannon stops are not counted, and a batch of 1000 can be a tenth of a short run.
  const seconds = (last - t0) / 1000;
  return {
    // Counted from the 2xx answers: a run that fails fast must not look fast.
    reqPerSec: ok > 0 ? ok / seconds : 0,
    ok,
    lat: lat.summary(),
    failed: result.non2xx + result.errors + result.timeouts,
    mbPerSec: result.throughput.average / 1e6,
  };
}

/** An answer of the sequential client, with the time from sending to the last byte. */
export interface Timed {
  status: number;
  body: Buffer;
  ms: number;
}

/** One keep-alive connection to the server; one request at a time. */
export class SequentialClient {
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  readonly #base: URL;

  constructor(base: string) {
    this.#base = new URL(base);
  }

  request(method: 'GET' | 'POST', path: string, body?: string): Promise<Timed> {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(
        {
          agent: this.#agent,
          host: this.#base.hostname,
          port: this.#base.port,
          method,
          path,
          headers: body === undefined ? {} : { 'content-type': 'application/json' },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ms: performance.now() - t0 }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  /** `request`, refusing anything but a 2xx answer. */
  async ok(method: 'GET' | 'POST', path: string, body?: string): Promise<Timed> {
    const r = await this.request(method, path, body);
    if (r.status < 200 || r.status >= 300) {
      throw new Error(`${method} ${path}: ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
    }
    return r;
  }

  close(): void {
    this.#agent.destroy();
  }
}
