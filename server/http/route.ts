/** What an HTTP handler sees and returns; the transport (server/ws) adapts uWebSockets.js to it. */
export interface HttpRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
  readonly headers: Readonly<Record<string, string>>;
  /** Values of the route's :parameters, in order. */
  readonly params: readonly string[];
  readonly body: Buffer;
}

export interface HttpResponse {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string>>;
}

export type HttpHandler = (request: HttpRequest) => Promise<HttpResponse> | HttpResponse;

export interface Route {
  readonly method: 'get' | 'post' | 'delete' | 'put';
  readonly path: string;
  readonly handler: HttpHandler;
}

export function json(status: number, body: unknown): HttpResponse {
  return { status, body };
}
