import { CookieJar } from 'tough-cookie';

/** A credential ready to use: the jar whose cookies go with each request, and extra headers. */
export interface ActiveCredential {
  readonly generation: number;
  readonly jar: CookieJar;
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

interface StoredCredential {
  v: 1;
  cookies: unknown;
  headers: Array<[string, string]>;
}

/** Serialises a credential for the store: JSON of the jar (tough-cookie's format) and the headers. */
export function serializeCredential(
  jar: CookieJar,
  headers: ReadonlyArray<readonly [string, string]>,
): string {
  const stored: StoredCredential = {
    v: 1,
    cookies: jar.serializeSync() ?? null,
    headers: headers.map(([key, value]) => [key, value]),
  };
  return JSON.stringify(stored);
}

/**
 * Reads a stored credential back. Returns `null` for anything malformed (the caller then logs in
 * again); never throws with the stored text in a message.
 */
export function deserializeCredential(text: string, generation: number): ActiveCredential | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (!parsed || typeof parsed !== 'object') return null;
  const stored = parsed as Partial<StoredCredential>;
  if (stored.v !== 1 || !Array.isArray(stored.headers)) return null;
  const headers: Array<readonly [string, string]> = [];
  for (const pair of stored.headers as unknown[]) {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      typeof pair[1] !== 'string'
    ) {
      return null;
    }
    headers.push([pair[0], pair[1]]);
  }
  let jar: CookieJar;
  try {
    jar = stored.cookies ? CookieJar.deserializeSync(stored.cookies as never) : new CookieJar();
  } catch {
    return null;
  }
  return { generation, jar, headers };
}

/** Whether a jar holds at least one cookie. */
export function jarHasCookies(jar: CookieJar): boolean {
  const serialized = jar.serializeSync();
  return !!serialized && serialized.cookies.length > 0;
}
