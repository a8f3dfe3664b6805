/**
 * API keys and TLS over real HTTP(S) on 127.0.0.1: every way around the key check a client might
 * try, access levels, spaces, the loopback rule, and a self-signed certificate.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { WarmStoreError } from '../../src/errors.js';
import {
  createServer,
  encodeEmbeddingBase64,
  parseApiKeys,
  startServer,
  type ApiKey,
  type StartedServer,
} from '../../src/server/index.js';
import { FakeStore } from '../unit/server/fake-store.js';
import { DIM, embeddingOf, tempDir } from '../unit/server/fixtures.js';
import { call, errorOf } from './http-call.js';

const ADMIN = 'admin-0123456789abcdef';
const READER = 'reader-0123456789abcdef';
const DEFAULT_WRITER = 'default-writer-0123456789';
const ALICE = 'alice-0123456789abcdef';
const KEYS: ApiKey[] = [
  { key: ADMIN, spaces: ['*'], access: 'write' },
  { key: READER, spaces: ['*'], access: 'read' },
  { key: DEFAULT_WRITER, spaces: ['default'], access: 'write' },
  { key: ALICE, spaces: ['alice'], access: 'write' },
];

const bearer = (key: string): { headers: Record<string, string> } => ({
  headers: { authorization: `Bearer ${key}` },
});
const e = (i: number): string => encodeEmbeddingBase64(embeddingOf(i));

/** One request of each route, with a body that would succeed given the right key. */
const ROUTES: Array<[method: string, path: string, body?: unknown]> = [
  ['GET', '/api/v1/memories/seed'],
  ['POST', '/api/v1/memories', { id: 'x1', embedding: e(1) }],
  ['DELETE', '/api/v1/memories/seed'],
  ['POST', '/api/v1/recall', { embedding: e(0) }],
  ['POST', '/api/v1/memories/batch', { memories: [{ id: 'x2', embedding: e(2) }] }],
  ['POST', '/api/v1/memories/batch/get', { ids: ['seed'] }],
  ['POST', '/api/v1/memories/batch/delete', { ids: ['seed'] }],
  ['POST', '/api/v1/maintenance/compact'],
  ['POST', '/api/v1/maintenance/run'],
  ['GET', '/api/v1/metrics/storage'],
  ['GET', '/metrics'],
  ['GET', '/api/v1/spaces'],
  ['DELETE', '/api/v1/spaces/scratch'],
  ['GET', '/api/v2/unknown'],
];

describe('API keys over HTTP', () => {
  let server: StartedServer;
  let base: string;
  let cleanup: () => Promise<void>;
  const logLines: string[] = [];

  before(async () => {
    const t = await tempDir();
    cleanup = t.cleanup;
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString('utf8'));
        done();
      },
    });
    server = await startServer({
      dataDir: t.dir,
      port: 0,
      logger: pino({ level: 'trace' }, sink),
      metrics: { defaultMetrics: false },
      apiKeys: KEYS,
      storeOptions: { dimension: DIM, maintenanceIntervalMs: false },
    });
    base = server.url;
    const seed = await call(base, 'POST', '/api/v1/memories', { id: 'seed', embedding: e(0) }, bearer(ADMIN));
    assert.equal(seed.status, 201, seed.text);
  });
  after(async () => {
    await server.close();
    await cleanup();
  });

  const assert401 = (
    r: { status: number; text: string; headers: Headers; json: object },
    what: string,
  ): void => {
    assert.equal(r.status, 401, `${what}: ${r.text}`);
    assert.equal(errorOf(r.json as never).code, 'UNAUTHORIZED', what);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer realm="warmstore"/, what);
  };

  it('/healthz and the API document need no key', async () => {
    assert.equal((await call(base, 'GET', '/healthz')).status, 200);
    const doc = await call(base, 'GET', '/docs/json');
    assert.equal(doc.status, 200);
    const schemes = (doc.json['components'] as { securitySchemes: Record<string, { scheme: string }> })
      .securitySchemes;
    assert.equal(schemes['apiKey']?.scheme, 'bearer');
  });

  it('401 on every route without an Authorization header, and nothing changes', async () => {
    for (const [method, path, body] of ROUTES)
      assert401(await call(base, method, path, body), `${method} ${path}`);
    const head = await fetch(`${base}/api/v1/memories/seed`, { method: 'HEAD' });
    assert.equal(head.status, 401);
    assert.equal((await call(base, 'GET', '/api/v1/memories/seed', undefined, bearer(ADMIN))).status, 200);
    assert.equal((await call(base, 'GET', '/api/v1/memories/x1', undefined, bearer(ADMIN))).status, 404);
  });

  it('401 for another scheme, a malformed header, or a wrong key', async () => {
    const attempts: Array<[string, string]> = [
      ['basic', `Basic ${Buffer.from(`user:${ADMIN}`).toString('base64')}`],
      ['token scheme', `Token ${ADMIN}`],
      ['bare key', ADMIN],
      ['no space', `Bearer${ADMIN}`],
      ['empty bearer', 'Bearer '],
      ['two tokens', `Bearer ${ADMIN} ${ADMIN}`],
      ['wrong key', 'Bearer not-a-key-0123456789abcdef'],
      ['prefix of a key', `Bearer ${ADMIN.slice(0, -1)}`],
      ['key plus a character', `Bearer ${ADMIN}x`],
      ['key in another case', `Bearer ${ADMIN.toUpperCase()}`],
    ];
    for (const [what, authorization] of attempts) {
      for (const [method, path, body] of [ROUTES[0]!, ROUTES[1]!]) {
        assert401(await call(base, method, path, body, { headers: { authorization } }), `${what} ${method}`);
      }
    }
    const wrong = await call(
      base,
      'GET',
      '/api/v1/memories/seed',
      undefined,
      bearer('not-a-key-0123456789abcdef'),
    );
    assert.match(wrong.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  });

  it('401 for a key in the query string: only the header counts', async () => {
    for (const param of ['api_key', 'key', 'access_token', 'token', 'authorization']) {
      assert401(await call(base, 'GET', `/api/v1/memories/seed?${param}=${ADMIN}`), param);
      assert401(await call(base, 'GET', `/metrics?${param}=Bearer%20${ADMIN}`), param);
    }
  });

  it('the scheme name is case-insensitive', async () => {
    const r = await call(base, 'GET', '/api/v1/memories/seed', undefined, {
      headers: { authorization: `bearer ${ADMIN}` },
    });
    assert.equal(r.status, 200, r.text);
  });

  it('a read key reads and recalls, and gets 403 for every write', async () => {
    for (const [method, path, body] of ROUTES) {
      const r = await call(base, method, path, body, bearer(READER));
      const write = method === 'DELETE' || /\/memories(\/batch(\/delete)?)?$|maintenance/.test(path);
      if (write) {
        assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
        assert.equal(errorOf(r.json).code, 'FORBIDDEN');
      } else {
        assert.ok(r.status === 200 || r.status === 404, `${method} ${path}: ${r.status} ${r.text}`);
      }
    }
    const still = await call(base, 'GET', '/api/v1/memories/seed', undefined, bearer(READER));
    assert.equal(still.status, 200, 'the deletes were refused');
    assert.equal((await call(base, 'GET', '/api/v1/memories/x1', undefined, bearer(READER))).status, 404);
    assert.equal((await call(base, 'GET', '/api/v1/memories/x2', undefined, bearer(READER))).status, 404);
  });

  it('a key for another space gets 403 in the default space and works in its own', async () => {
    for (const [method, path, body] of ROUTES.slice(0, 7)) {
      const r = await call(base, method, path, body, bearer(ALICE));
      assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
      assert.match(errorOf(r.json).message, /space "default"/);
    }
    const own = await call(base, 'GET', '/api/v1/memories/seed?space=alice', undefined, bearer(ALICE));
    assert.equal(own.status, 404, 'seed lives in the default space only');
    const ownPut = await call(
      base,
      'POST',
      '/api/v1/memories',
      { id: 'a', space: 'alice', embedding: e(3) },
      bearer(ALICE),
    );
    assert.equal(ownPut.status, 201, ownPut.text);
    const back = await call(base, 'DELETE', '/api/v1/memories/a?space=alice', undefined, bearer(ALICE));
    assert.equal(back.status, 200, back.text);
  });

  it('a batch is refused whole when one item names a space the key does not cover', async () => {
    const r = await call(
      base,
      'POST',
      '/api/v1/memories/batch',
      {
        memories: [
          { id: 'd1', embedding: e(4) },
          { id: 'd2', embedding: e(5), space: 'alice' },
        ],
      },
      bearer(DEFAULT_WRITER),
    );
    assert.equal(r.status, 403, r.text);
    assert.match(errorOf(r.json).message, /space "alice"/);
    assert.equal((await call(base, 'GET', '/api/v1/memories/d1', undefined, bearer(ADMIN))).status, 404);
    const ok = await call(
      base,
      'POST',
      '/api/v1/memories/batch',
      { memories: [{ id: 'd1', embedding: e(4), space: 'default' }] },
      bearer(DEFAULT_WRITER),
    );
    assert.equal(ok.status, 200, ok.text);
    assert.equal((ok.json['results'] as Array<{ ok: boolean }>)[0]?.ok, true);
  });

  it('store-wide routes need a key covering every space', async () => {
    for (const path of ['/api/v1/metrics/storage', '/metrics']) {
      assert.equal((await call(base, 'GET', path, undefined, bearer(DEFAULT_WRITER))).status, 403, path);
      assert.equal((await call(base, 'GET', path, undefined, bearer(READER))).status, 200, path);
    }
    for (const path of ['/api/v1/maintenance/run', '/api/v1/maintenance/compact']) {
      assert.equal((await call(base, 'POST', path, undefined, bearer(DEFAULT_WRITER))).status, 403, path);
      assert.equal((await call(base, 'POST', path, undefined, bearer(READER))).status, 403, path);
      const r = await call(base, 'POST', path, undefined, bearer(ADMIN));
      assert.equal(r.status, 200, `${path}: ${r.text}`);
    }
  });

  it('an unknown route answers 404 only to a valid key', async () => {
    const r = await call(base, 'GET', '/api/v2/unknown', undefined, bearer(READER));
    assert.equal(r.status, 404);
  });

  it('never logs a key', async () => {
    // A line that carries the header the way a request serializer would must come out redacted.
    server.logger.info({ req: { headers: { authorization: `Bearer ${ADMIN}` } } }, 'probe');
    server.logger.info({ authorization: `Bearer ${ADMIN}` }, 'probe');
    const text = logLines.join('');
    assert.match(text, /\[redacted\]/);
    for (const { key } of KEYS) assert.equal(text.includes(key), false, 'a key reached the log');
    assert.ok(logLines.length > 10, 'the logger was in use');
  });
});

describe('API key configuration', () => {
  const field = (f: () => unknown): string | undefined => {
    try {
      f();
    } catch (err) {
      if (err instanceof WarmStoreError) return err.details.field;
      throw err;
    }
    return undefined;
  };

  it('refuses malformed key lists naming the entry, never quoting a key', () => {
    const good = { key: ADMIN, spaces: ['*'], access: 'write' };
    assert.equal(
      field(() => parseApiKeys({})),
      'apiKeys',
    );
    assert.equal(
      field(() => parseApiKeys([good, { ...good, key: 'short' }])),
      'apiKeys[1].key',
    );
    assert.equal(
      field(() => parseApiKeys([{ ...good, key: `${ADMIN} x` }])),
      'apiKeys[0].key',
    );
    assert.equal(
      field(() => parseApiKeys([good, good])),
      'apiKeys[1].key',
    );
    assert.equal(
      field(() => parseApiKeys([{ ...good, spaces: [] }])),
      'apiKeys[0].spaces',
    );
    assert.equal(
      field(() => parseApiKeys([{ ...good, spaces: ['*', ''] }])),
      'apiKeys[0].spaces[1]',
    );
    assert.equal(
      field(() => parseApiKeys([{ ...good, access: 'admin' }])),
      'apiKeys[0].access',
    );
    assert.equal(
      field(() => parseApiKeys([{ ...good, role: 'x' }])),
      'apiKeys[0].role',
    );
    try {
      parseApiKeys([good, good]);
    } catch (err) {
      assert.equal((err as Error).message.includes(ADMIN), false);
    }
  });

  it('refuses a non-loopback host without keys unless insecure, before opening anything', async () => {
    const store = new FakeStore(DIM);
    for (const host of ['0.0.0.0', '::', '192.168.1.10', 'example.com']) {
      await assert.rejects(
        createServer({ store, host, logger: false }),
        (err: unknown) =>
          WarmStoreError.is(err, 'INVALID_INPUT') &&
          err.details.field === 'host' &&
          /--insecure/.test(err.message),
        host,
      );
    }
    for (const options of [{ insecure: true }, { apiKeys: KEYS }]) {
      const s = await createServer({
        store,
        host: '0.0.0.0',
        logger: false,
        metrics: { defaultMetrics: false },
        ...options,
      });
      await s.close();
    }
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) {
      const s = await createServer({ store, host, logger: false, metrics: { defaultMetrics: false } });
      await s.close();
    }
  });
});

describe('TLS', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let cert: Buffer;
  let key: Buffer;

  before(async () => {
    const t = await tempDir();
    dir = t.dir;
    cleanup = t.cleanup;
    // openssl ships with the CI image and this machine; node:crypto cannot write an X.509 certificate.
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(dir, 'cert.pem'));
    key = readFileSync(join(dir, 'key.pem'));
  });
  after(async () => {
    await cleanup();
  });

  const get = (
    url: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = httpsRequest(url, { ca: cert, headers }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  it('serves HTTPS with the certificate, and the keys still apply', async () => {
    const store = new FakeStore(DIM);
    const server = await startServer({
      store,
      port: 0,
      logger: false,
      metrics: { defaultMetrics: false },
      apiKeys: [{ key: ADMIN, spaces: ['*'], access: 'write' }],
      tls: { cert, key },
    });
    try {
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
      assert.deepEqual(JSON.parse((await get(`${server.url}/healthz`)).body), { status: 'ok' });
      assert.equal((await get(`${server.url}/api/v1/metrics/storage`)).status, 401);
      const ok = await get(`${server.url}/api/v1/metrics/storage`, { authorization: `Bearer ${ADMIN}` });
      assert.equal(ok.status, 200, ok.body);
      // Plain HTTP to the TLS port gets no API answer.
      const plain = await fetch(server.url.replace('https:', 'http:') + '/healthz').then(
        (r) => r.status,
        () => 'refused',
      );
      assert.notEqual(plain, 200);
      // A client that does not trust the certificate refuses the connection.
      await assert.rejects(fetch(`${server.url}/healthz`));
    } finally {
      await server.close();
    }
  });
});
