/**
 * A small fetch wrapper for the HTTP tests: JSON in, status, parsed JSON and raw text out.
 */

export interface Json {
  [k: string]: unknown;
}

export interface CallResult {
  status: number;
  json: Json;
  text: string;
  headers: Headers;
}

export interface CallOptions {
  /** Extra request headers, e.g. `authorization`. */
  headers?: Record<string, string>;
}

export async function call(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  options: CallOptions = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { ...options.headers };
  const init: RequestInit = { method, headers };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: Json = {};
  try {
    json = JSON.parse(text) as Json;
  } catch {
    // not JSON (metrics, docs)
  }
  return { status: res.status, json, text, headers: res.headers };
}

export const errorOf = (json: Json): { code: string; message: string; field?: string } =>
  json['error'] as { code: string; message: string; field?: string };
