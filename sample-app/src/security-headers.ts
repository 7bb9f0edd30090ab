import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Headers on every response of the sample: browsers must not guess a content type (a text answer
 * that echoes a name is never run as a page), and no other site may frame the pages.
 */
export function securityHeaders(
  _req: IncomingMessage,
  res: ServerResponse,
  next: () => void,
): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'same-origin');
  next();
}
