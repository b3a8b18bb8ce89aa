import type { z } from 'zod';
import { ErrorCode } from '@msr/protocol/codes';
import type { Principal } from '../principal.js';

/** What an HTTP handler sees and returns; the transport (server/transport) adapts uWebSockets.js to it. */
export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string>>;
  /** Values of the route's :parameters, in order. */
  readonly params: readonly string[];
  readonly body: Buffer;
  /** Who is asking (set by the guard on every route that is not public). */
  readonly principal?: Principal;
}

export interface HttpResponse {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * The body as pieces of text sent as they come, at the pace the client reads (instead of `body`);
   * the iterator is ended early when the client goes away.
   */
  readonly stream?: AsyncIterable<string>;
}

export type HttpHandler = (request: HttpRequest) => Promise<HttpResponse> | HttpResponse;

export interface Route {
  readonly method: 'get' | 'post' | 'delete' | 'put';
  readonly path: string;
  readonly handler: HttpHandler;
  /** Who may call it: anyone, any authenticated user (the default), or administrators. */
  readonly access?: 'public' | 'user' | 'admin';
}

export function json(status: number, body: unknown): HttpResponse {
  return { status, body };
}

/** A JSON request body checked against its schema, or the 400 BAD_MESSAGE answer naming each problem. */
export function parseJsonBody<T>(body: Buffer, schema: z.ZodType<T>): { data: T } | { error: HttpResponse } {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8') || 'null');
  } catch {
    return { error: json(400, { code: ErrorCode.BAD_MESSAGE, message: 'body is not valid JSON' }) };
  }
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { data: parsed.data };
  const message = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
  return { error: json(400, { code: ErrorCode.BAD_MESSAGE, message }) };
}
