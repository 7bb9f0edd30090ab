const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * Whether a method is idempotent (RFC 9110 §9.2.2): sending it twice has the effect of sending it
 * once. Only these are retried automatically.
 * @example isIdempotentMethod('PUT') // true; isIdempotentMethod('POST') // false
 */
export function isIdempotentMethod(method: string): boolean {
  return IDEMPOTENT_METHODS.has(method.toUpperCase());
}

function trimTrailingSlash(path: string): string {
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/**
 * The default expiry rule: status 401 or 419 (Laravel's "page expired"), or a redirect (3xx) whose
 * `Location`, resolved against the request URL, has the origin and path of `loginUrl` (any query).
 * A redirect elsewhere is not an expiry; it is returned to the caller, never followed.
 *
 * @example isSessionExpiredByDefault(res, new URL('https://up/data'), new URL('https://up/login'))
 */
export function isSessionExpiredByDefault(
  response: Pick<Response, 'status' | 'headers'>,
  requestUrl: URL,
  loginUrl: URL | null,
): boolean {
  if (response.status === 401 || response.status === 419) return true;
  if (response.status < 300 || response.status > 399 || !loginUrl) return false;
  const location = response.headers.get('location');
  if (!location) return false;
  let target: URL;
  try {
    target = new URL(location, requestUrl);
  } catch {
    return false;
  }
  return (
    target.origin === loginUrl.origin &&
    trimTrailingSlash(target.pathname) === trimTrailingSlash(loginUrl.pathname)
  );
}
