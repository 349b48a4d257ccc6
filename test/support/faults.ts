import type { IncomingMessage, ServerResponse } from 'node:http';

/** What a fake IdP answers instead of the real response. */
export interface InjectedResponse {
  status?: number;
  body?: unknown;
  /** Sent as is instead of JSON (malformed bodies). */
  rawBody?: string;
  headers?: Record<string, string>;
  /** Destroy the socket instead of answering. */
  drop?: boolean;
  /** Answer the real response, but drop the connection halfway through its body. */
  cutMidBody?: boolean;
  delayMs?: number;
}

export type FaultInjector = (request: { method: string; path: string; query: URLSearchParams; n: number }) => InjectedResponse | undefined;

/**
 * Serves an injected fault. Returns false when the fake should go on and answer for real
 * (a body cut halfway is the real body, cut).
 */
export function serveFault(req: IncomingMessage, res: ServerResponse, injected: InjectedResponse): boolean {
  if (injected.cutMidBody) {
    res.end = ((chunk?: unknown) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString() : '';
      res.write(text.slice(0, Math.floor(text.length / 2)), () => req.socket.destroy());
      return res;
    }) as ServerResponse['end'];
    return false;
  }
  const send = () => {
    if (injected.drop) return void req.socket.destroy();
    if (res.destroyed) return;
    res.writeHead(injected.status ?? 500, { 'content-type': 'application/json', date: new Date().toUTCString(), ...injected.headers });
    res.end(injected.rawBody ?? JSON.stringify(injected.body ?? {}));
  };
  if (injected.delayMs) setTimeout(send, injected.delayMs);
  else send();
  return true;
}
