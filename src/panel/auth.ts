// Token auth for the panel: one bearer token, random at start (written root-only to the state
// directory) or from the config. API clients send `Authorization: Bearer TOKEN`; the browser logs in
// once with a form and then carries an HttpOnly, SameSite=Strict cookie. Compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { writeFileAtomic } from '../durable/index.js';
import { HttpError } from '../http/index.js';

export const COOKIE = 'livemr_panel';

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Writes the token file 0600 (atomically: no window where another user could read it). */
export function writeTokenFile(file: string, token: string): void {
  writeFileAtomic(file, `${token}\n`, { mode: 0o600 });
}

/** Constant-time comparison (hashing first makes the lengths equal too). */
export function tokenMatches(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(token).digest();
  return timingSafeEqual(a, b);
}

/** A cookie's value; a value that is not valid percent-encoding is a 401 naming the cookie (was a 500). */
function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of String(req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) {
      try {
        return decodeURIComponent(part.slice(i + 1).trim());
      } catch {
        throw new HttpError('unauthorized', `the ${name} cookie is malformed (not percent-encoded): log in again`);
      }
    }
  }
  return undefined;
}

/** The token a request carries: bearer header first, else the login cookie. */
export function requestToken(req: IncomingMessage): string | undefined {
  const h = String(req.headers.authorization ?? '');
  const m = /^Bearer\s+(\S+)$/i.exec(h);
  return m ? m[1] : cookieValue(req, COOKIE);
}

export function loginCookie(token: string): string {
  return `${COOKIE}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`;
}

export const logoutCookie = `${COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`;
