import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';

/**
 * What the session needs to know of a request, whichever framework made it: Express's request and
 * Fastify's both have `headers` and `socket`; Express adds `secure` and `host`, Fastify `protocol`
 * and `host`, each following its own trust-proxy setting.
 */
export interface RequestLike {
  readonly headers: IncomingMessage['headers'];
  readonly socket?: IncomingMessage['socket'];
  readonly method?: string;
}

/** The first value of a proxy header such as `X-Forwarded-Proto`, trimmed and lowercased. */
function firstForwarded(req: RequestLike, name: string): string | undefined {
  const value = req.headers[name];
  return (Array.isArray(value) ? value[0] : value)?.split(',')[0].trim().toLowerCase();
}

/**
 * Whether the request arrived over HTTPS, honouring the `trustProxy` option: `true` trusts
 * `X-Forwarded-Proto`, `false` only the TLS socket, unset follows the framework's own trust-proxy
 * setting (Express's `req.secure`, Fastify's `request.protocol`).
 */
export function isSecureRequest(req: RequestLike, trustProxy: boolean | undefined): boolean {
  if (req.socket instanceof TLSSocket && req.socket.encrypted) return true;
  if (trustProxy === true) return firstForwarded(req, 'x-forwarded-proto') === 'https';
  if (trustProxy === false) return false;
  const framework = req as { secure?: unknown; protocol?: unknown };
  return framework.secure === true || framework.protocol === 'https';
}

/**
 * The host the client addressed, lowercased, by the same rule: `X-Forwarded-Host` with
 * `trustProxy: true`, the `Host` header with `false`, and unset whatever Express's `trust proxy`
 * setting makes of them (`req.host`, in Express and in Fastify).
 */
export function requestHost(req: RequestLike, trustProxy: boolean | undefined): string | undefined {
  const forwarded = trustProxy === true ? firstForwarded(req, 'x-forwarded-host') : undefined;
  const express = trustProxy === undefined ? (req as { host?: unknown }).host : undefined;
  return (
    forwarded ?? (typeof express === 'string' ? express : req.headers.host)?.trim().toLowerCase()
  );
}
