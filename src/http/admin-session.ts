import { createHmac, timingSafeEqual } from 'node:crypto';

/** The console's session cookie. */
export const SESSION_COOKIE = 'dirsync_admin';

/** How long a console session lasts: the cookie's max age, and what the server accepts. */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;

/** Who a session belongs to: `admin` (DIRSYNC_ADMIN_TOKEN) or a stored token's id, bound to that token's hash. */
export interface SessionSubject {
  readonly id: string;
  /** The token's stored hash ('' for the bootstrap admin): a session outlives neither a revocation nor a re-issue. */
  readonly binding: string;
}

/** The bootstrap admin's session subject. */
export const ADMIN_SUBJECT: SessionSubject = { id: 'admin', binding: '' };

function mac(adminToken: string, subject: SessionSubject, issuedAt: number): string {
  return createHmac('sha256', adminToken).update(`dirsync admin session v3 ${subject.id} ${subject.binding} ${issuedAt}`).digest('base64url');
}

/**
 * A session cookie's value: when it was issued (ms since the epoch), whose it is, and an HMAC
 * of both under the admin token (and the token's stored hash), so rotating the admin token
 * ends every session, revoking a token ends its sessions, and an old cookie expires on the
 * server too, whatever the browser keeps. Example: `1764480000000.admin.Qm9...`.
 */
export function sessionValue(adminToken: string, issuedAt = Date.now(), subject: SessionSubject = ADMIN_SUBJECT): string {
  return `${issuedAt}.${subject.id}.${mac(adminToken, subject, issuedAt)}`;
}

export type SessionCheck = { state: 'valid' | 'expired'; subjectId: string } | { state: 'absent' };

/**
 * Whether a presented cookie is a live session: `bindingOf` gives a subject's current binding
 * (undefined for an unknown or revoked token, whose sessions are then absent).
 */
export async function checkSession(
  presented: string | undefined,
  adminToken: string,
  bindingOf: (subjectId: string) => Promise<string | undefined>,
  now = Date.now(),
): Promise<SessionCheck> {
  const parts = presented?.split('.') ?? [];
  if (parts.length !== 3) return { state: 'absent' };
  const [issued, subjectId, given] = parts as [string, string, string];
  const issuedAt = Number(issued);
  if (!/^\d{1,16}$/.test(issued) || !Number.isSafeInteger(issuedAt) || !/^(admin|[0-9a-f-]{36})$/.test(subjectId)) return { state: 'absent' };
  const binding = subjectId === 'admin' ? '' : await bindingOf(subjectId);
  if (binding === undefined) return { state: 'absent' };
  const expected = Buffer.from(mac(adminToken, { id: subjectId, binding }, issuedAt));
  const actual = Buffer.from(given);
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return { state: 'absent' };
  // A minute of clock skew between server processes, no more.
  return { state: issuedAt <= now + 60_000 && now - issuedAt < SESSION_TTL_MS ? 'valid' : 'expired', subjectId };
}
