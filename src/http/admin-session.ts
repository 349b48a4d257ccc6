import { createHmac, timingSafeEqual } from 'node:crypto';

/** The console's session cookie. */
export const SESSION_COOKIE = 'dirsync_admin';

/** How long a console session lasts: the cookie's max age, and what the server accepts. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

function mac(adminToken: string, issuedAt: number): string {
  return createHmac('sha256', adminToken).update(`dirsync admin session v2 ${issuedAt}`).digest('base64url');
}

/**
 * A session cookie's value: when it was issued (ms since the epoch) and an HMAC of that under
 * the admin token, so rotating the token ends every session and an old cookie expires on the
 * server too, whatever the browser keeps. Example: `1764480000000.Qm9...`.
 */
export function sessionValue(adminToken: string, issuedAt = Date.now()): string {
  return `${issuedAt}.${mac(adminToken, issuedAt)}`;
}

export type SessionCheck = 'valid' | 'expired' | 'absent';

/** Whether a presented cookie is a session of this token that has not expired. */
export function checkSession(presented: string | undefined, adminToken: string, now = Date.now()): SessionCheck {
  if (!presented) return 'absent';
  const dot = presented.indexOf('.');
  const issuedAt = Number(presented.slice(0, dot));
  if (dot < 1 || !Number.isSafeInteger(issuedAt)) return 'absent';
  const expected = Buffer.from(mac(adminToken, issuedAt));
  const given = Buffer.from(presented.slice(dot + 1));
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'absent';
  // A minute of clock skew between server processes, no more.
  return issuedAt <= now + 60_000 && now - issuedAt < SESSION_TTL_MS ? 'valid' : 'expired';
}
