import { randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { decrypt, encrypt } from '../crypto.js';

/**
 * Secrets the console shows once (a new endpoint's signing secret, a rotated SCIM token)
 * carried across a POST-redirect-GET, so that reloading the page that shows them neither
 * repeats the action (a second endpoint, a second rotation that voids the secret just shown)
 * nor shows the secret again.
 *
 * The secret rides in a short-lived cookie sealed with AES-256-GCM (the keyed envelope of
 * crypto.ts), bound to the page it is for, and is cleared by the GET that shows it. A cookie
 * rather than process memory, so a GET answered by another server process behind the same
 * load balancer still shows it when DIRSYNC_ENCRYPTION_KEY is set (each process's own random
 * key otherwise: that GET then says the secret was shown and how to get a new one).
 */
const COOKIE = 'dirsync_shown_once';
const TTL_SECONDS = 120;
const processKey = randomBytes(32);

/** Sets the cookie for `path` (the GET that will show it) and redirects there (303). */
export function redirectShowingOnce(reply: FastifyReply, key: Buffer | undefined, path: string, data: Record<string, unknown>): FastifyReply {
  const sealed = encrypt(key ?? processKey, JSON.stringify({ data, exp: Date.now() + TTL_SECONDS * 1000 }), context(path));
  reply.setCookie(COOKIE, sealed.toString('base64url'), { path, httpOnly: true, sameSite: 'strict', maxAge: TTL_SECONDS });
  return reply.redirect(path, 303);
}

/**
 * What `redirectShowingOnce` sealed for this request's path, clearing the cookie; undefined
 * when there is none, it expired, or it was sealed for another page or under another key.
 */
export function takeShownOnce<T>(request: FastifyRequest, reply: FastifyReply, key: Buffer | undefined): T | undefined {
  const value = request.cookies[COOKIE];
  if (!value) return undefined;
  const path = request.url.split('?')[0]!;
  reply.clearCookie(COOKIE, { path });
  try {
    const keys = { current: key ?? processKey, previous: key ? [processKey] : [] };
    const opened = JSON.parse(decrypt(keys, Buffer.from(value, 'base64url'), context(path))) as { data: T; exp: number };
    return opened.exp > Date.now() ? opened.data : undefined;
  } catch {
    return undefined;
  }
}

function context(path: string): string {
  return `dirsync console shown-once ${path}`;
}
