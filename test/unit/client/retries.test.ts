/**
 * Retries, timeouts and aborts of the client, against tiny HTTP servers on 127.0.0.1 that misbehave
 * on purpose, some of them in front of a real warmstore server.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startServer, type StartedServer } from '../../../src/server/index.js';
import { WarmStoreClient, WarmStoreClientError, WarmStoreError } from '../../../src/client/index.js';
import { networkErrorCode } from '../../../src/client/transport.js';
import { DIM, embeddingOf, tempDir } from '../server/fixtures.js';

type Handler = (req: IncomingMessage, res: ServerResponse, attempt: number) => void;

interface Stub {
  url: string;
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }>;
  close(): Promise<void>;
}

/** An HTTP server on 127.0.0.1 that hands every request (numbered from 1) to `handler`. */
async function stub(handler: Handler): Promise<Stub> {
  const requests: Stub['requests'] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, requests.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Forwards a request to `target` and passes the answer back through `respond`. */
function forward(
  req: IncomingMessage,
  body: string,
  target: string,
  respond: (status: number, headers: IncomingMessage['headers'], text: string) => void,
): void {
  const { port } = new URL(target);
  const out = request(
    { host: '127.0.0.1', port: Number(port), method: req.method, path: req.url, headers: req.headers },
    (upstream) => {
      let text = '';
      upstream.setEncoding('utf8');
      upstream.on('data', (d: string) => (text += d));
      upstream.on('end', () => respond(upstream.statusCode ?? 502, upstream.headers, text));
    },
  );
  out.end(body);
}

const FAST = { backoffMs: 1, maxBackoffMs: 5 };
const shutting = { error: { code: 'SHUTTING_DOWN', message: 'the server is shutting down' } };

describe('client retries, timeouts and aborts', () => {
  let server: StartedServer;
  let cleanup: () => Promise<void>;

  before(async () => {
    const t = await tempDir('warmstore-client-retry-');
    cleanup = t.cleanup;
    server = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: false,
      storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
    });
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  it('retries 503 twice, then the request goes through to the real server', async () => {
    let proxy: Stub | undefined = undefined;
    proxy = await stub((req, res, attempt) => {
      if (attempt <= 2) return json(res, 503, shutting);
      forward(req, proxy!.requests[attempt - 1]!.body, server.url, (status, headers, text) => {
        res.writeHead(status, { 'content-type': headers['content-type'] ?? 'application/json' }).end(text);
      });
    });
    try {
      const client = new WarmStoreClient({ url: proxy.url, ...FAST });
      await client.put({ id: 'after-503', embedding: embeddingOf(1), content: 'made it' });
      assert.equal(proxy.requests.length, 3);
      assert.equal((await server.store.get('after-503'))?.content, 'made it');
      // Every attempt carried the same request.
      assert.equal(new Set(proxy.requests.map((r) => r.body)).size, 1);
    } finally {
      await proxy.close();
    }
  });

  it('gives up after `retries` and throws the last answer: STORE_CLOSED as WarmStoreError', async () => {
    const s = await stub((_req, res) =>
      json(res, 503, { error: { code: 'STORE_CLOSED', message: 'the store is closed' } }),
    );
    try {
      const client = new WarmStoreClient({ url: s.url, retries: 2, ...FAST });
      await assert.rejects(client.get('x'), (err: unknown) => {
        assert.ok(WarmStoreError.is(err, 'STORE_CLOSED'), String(err));
        assert.equal(err.details['status'], 503);
        return true;
      });
      assert.equal(s.requests.length, 3);
      const shuttingDown = await stub((_req, res) => json(res, 503, shutting));
      try {
        const c2 = new WarmStoreClient({ url: shuttingDown.url, retries: 1, ...FAST });
        await assert.rejects(c2.contentStorageStats(), (err: unknown) => {
          assert.ok(WarmStoreClientError.is(err, 'SHUTTING_DOWN'), String(err));
          assert.equal(err.status, 503);
          return true;
        });
        assert.equal(shuttingDown.requests.length, 2);
      } finally {
        await shuttingDown.close();
      }
    } finally {
      await s.close();
    }
  });

  it('retries a socket destroyed mid-response', async () => {
    let proxy: Stub | undefined = undefined;
    proxy = await stub((req, res, attempt) => {
      forward(req, proxy!.requests[attempt - 1]!.body, server.url, (status, _headers, text) => {
        if (attempt === 1) {
          // Headers and half the body, then the connection dies.
          res.writeHead(status, {
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(text)),
          });
          res.write(text.slice(0, Math.floor(text.length / 2)));
          setTimeout(() => res.socket?.destroy(), 10);
          return;
        }
        res.writeHead(status, { 'content-type': 'application/json' }).end(text);
      });
    });
    try {
      await server.store.put({ id: 'mid-response', embedding: embeddingOf(2), content: 'x'.repeat(4000) });
      const client = new WarmStoreClient({ url: proxy.url, ...FAST });
      const m = await client.get('mid-response');
      assert.equal(m?.content, 'x'.repeat(4000));
      assert.equal(proxy.requests.length, 2);
    } finally {
      await proxy.close();
    }
  });

  it('retries a connection reset (RST) before any answer', async () => {
    const s = await stub((req, res, attempt) => {
      if (attempt === 1) {
        req.socket.resetAndDestroy();
        return;
      }
      json(res, 200, { status: 'ok' });
    });
    try {
      const seen: Array<string | undefined> = [];
      // Records the error of the first attempt, to show it was a reset and not something else.
      const observing: typeof fetch = (input, init) =>
        fetch(input, init).catch((err: unknown) => {
          seen.push(networkErrorCode(err));
          throw err;
        });
      await new WarmStoreClient({ url: s.url, fetch: observing, ...FAST }).health();
      assert.equal(s.requests.length, 2);
      assert.deepEqual(seen, ['ECONNRESET']);
    } finally {
      await s.close();
    }
  });

  it('a delete retried after its first attempt took effect answers false (documented)', async () => {
    await server.store.put({ id: 'delete-twice', embedding: embeddingOf(3) });
    let proxy: Stub | undefined = undefined;
    proxy = await stub((req, res, attempt) => {
      forward(req, '', server.url, (status, _headers, text) => {
        if (attempt === 1) {
          res.socket?.destroy();
          return;
        }
        res.writeHead(status, { 'content-type': 'application/json' }).end(text);
      });
    });
    try {
      const client = new WarmStoreClient({ url: proxy.url, ...FAST });
      assert.equal(await client.delete('delete-twice'), false);
      assert.equal(proxy.requests.length, 2);
      assert.equal(server.store.has('delete-twice'), false);
    } finally {
      await proxy.close();
    }
  });

  it('retries a refused connection, then reports CONNECTION_FAILED with the errno', async () => {
    const s = await stub(() => undefined);
    const url = s.url;
    await s.close();
    const client = new WarmStoreClient({ url, retries: 2, ...FAST });
    await assert.rejects(client.get('x'), (err: unknown) => {
      assert.ok(WarmStoreClientError.is(err, 'CONNECTION_FAILED'), String(err));
      assert.equal(err.details['errno'], 'ECONNREFUSED');
      assert.equal(err.details.attempts, 3);
      assert.equal(err.status, undefined);
      return true;
    });
  });

  it('never retries a 4xx or a 500', async () => {
    for (const [status, code] of [
      [400, 'INVALID_INPUT'],
      [401, 'UNAUTHORIZED'],
      [403, 'FORBIDDEN'],
      [413, 'PAYLOAD_TOO_LARGE'],
      [500, 'CORRUPTION_DETECTED'],
      [507, 'INSUFFICIENT_RESOURCES'],
    ] as const) {
      const s = await stub((_req, res) =>
        json(res, status, { error: { code, message: `answer ${status}` } }),
      );
      try {
        const client = new WarmStoreClient({ url: s.url, ...FAST });
        await assert.rejects(client.put({ id: 'x', embedding: embeddingOf(1) }), (err: unknown) => {
          assert.ok(err instanceof WarmStoreError || err instanceof WarmStoreClientError, String(err));
          assert.equal(err.code, code);
          const gotStatus = err instanceof WarmStoreError ? err.details['status'] : err.status;
          assert.equal(gotStatus, status);
          return true;
        });
        assert.equal(s.requests.length, 1, `${status} was sent once`);
      } finally {
        await s.close();
      }
    }
  });

  it('a body that is not the API error shape still names the status', async () => {
    const s = await stub((_req, res) =>
      res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>bad gateway</h1>'),
    );
    try {
      const client = new WarmStoreClient({ url: s.url, ...FAST });
      await assert.rejects(client.get('x'), (err: unknown) => {
        assert.ok(WarmStoreClientError.is(err, 'BAD_RESPONSE'), String(err));
        assert.equal(err.status, 502);
        assert.match(err.message, /502/);
        return true;
      });
    } finally {
      await s.close();
    }
  });

  it('times out an attempt that gets no answer, and does not retry it', async () => {
    const s = await stub(() => undefined);
    try {
      const client = new WarmStoreClient({ url: s.url, timeoutMs: 100, ...FAST });
      await assert.rejects(client.get('x'), (err: unknown) => {
        assert.ok(WarmStoreClientError.is(err, 'TIMEOUT'), String(err));
        return true;
      });
      assert.equal(s.requests.length, 1);
      // A per-call timeout overrides the client's.
      const patient = new WarmStoreClient({ url: s.url, timeoutMs: false, ...FAST });
      await assert.rejects(patient.get('x', { timeoutMs: 50 }), (err: unknown) =>
        WarmStoreClientError.is(err, 'TIMEOUT'),
      );
    } finally {
      await s.close();
    }
  });

  it('an abort during the wait between retries rejects at once with the reason', async () => {
    const s = await stub((_req, res) => json(res, 503, shutting));
    try {
      const client = new WarmStoreClient({ url: s.url, retries: 5, backoffMs: 60_000, maxBackoffMs: 60_000 });
      const controller = new AbortController();
      const reason = new Error('caller gave up');
      const p = client.get('x', { signal: controller.signal });
      while (s.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
      controller.abort(reason);
      await assert.rejects(p, (err: unknown) => err === reason);
      assert.equal(s.requests.length, 1);
      await assert.rejects(
        client.get('x', { signal: AbortSignal.abort(reason) }),
        (err: unknown) => err === reason,
      );
      assert.equal(s.requests.length, 1, 'an already aborted signal sends nothing');
    } finally {
      await s.close();
    }
  });

  it('sends the API key as a bearer token, and JSON', async () => {
    const s = await stub((_req, res) =>
      json(res, 200, {
        totalBytes: 0,
        liveBytes: 0,
        deadBytes: 0,
        fragmentationRatio: 0,
        segments: 0,
        size: 0,
        isCompacting: false,
        spaces: [{ name: 'default', size: 0 }],
      }),
    );
    try {
      await new WarmStoreClient({ url: s.url, apiKey: 'sekrit' }).contentStorageStats();
      await new WarmStoreClient({ url: `${s.url}/prefix` }).contentStorageStats();
      assert.equal(s.requests[0]?.headers['authorization'], 'Bearer sekrit');
      assert.equal(s.requests[0]?.url, '/api/v1/metrics/storage');
      assert.equal(s.requests[1]?.headers['authorization'], undefined);
      assert.equal(s.requests[1]?.url, '/prefix/api/v1/metrics/storage', 'a path prefix is kept');
    } finally {
      await s.close();
    }
  });
});
