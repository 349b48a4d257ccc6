import { expect } from 'vitest';

/** A scim integration as `dirsync integration create --provider scim --json` prints it. */
export interface PushTarget {
  readonly scimBaseUrl: string;
  readonly scimToken: string;
}

/** Creates an active user the way an IdP's SCIM client does (POST /Users), expecting 201. */
export async function pushUser(target: PushTarget, userName: string): Promise<void> {
  const res = await fetch(`${target.scimBaseUrl}/Users`, {
    method: 'POST',
    headers: { authorization: `Bearer ${target.scimToken}`, 'content-type': 'application/scim+json' },
    body: JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName, active: true }),
  });
  expect(res.status).toBe(201);
}
