import type { Collection, ResponseContext } from '@okta/okta-sdk-nodejs';

/**
 * The SDK's Collection for a listing, its items taken as Okta's JSON as it is, not as the SDK's
 * models: the same requests (URL, auth, request executor), paging (`Link: rel="next"`) and
 * HTTP errors (thrown by the SDK's Http before a page is parsed), only without a model built
 * per item. The page's Content-Type is not looked at: a page is JSON or an error.
 *
 * Why: @okta/okta-sdk-nodejs 8.1 builds each item through ObjectSerializer.deserialize, which
 * was 15.6 s of the 23 s of CPU that paging an app of 100,000 users and 500,000 group members
 * took (a profile of `npm run bench`'s IdP floor), more than the HTTP and JSON parsing together.
 *
 * okta.mapping.ts reads both loosely. Users map the same either way (the SDK's user profile
 * keeps every attribute), so targeted reads may still get single users as models; so do app
 * users and app group assignments (their `_embedded` user or group is raw JSON in the models
 * too). Groups do not: the SDK's Group model drops custom profile attributes (an AD group's
 * groupType, groupScope, objectSid), which the JSON keeps, so a targeted read gets a single
 * group as JSON too (okta.subjects.ts).
 */
export async function jsonPages<T>(collection: Promise<Collection<T>>): Promise<Collection<unknown>> {
  const pages = await collection;
  pages.factory = { parseResponse: (response: ResponseContext) => page(response) };
  return pages;
}

/**
 * A listing's page: a JSON array of objects, or an error (retried as any bad answer, see
 * readAll). A page that is not an array must not pass for an empty one, nor an item that is
 * not an object (the SDK's Collection ends a listing at the first falsy item): either would
 * end the listing early, a partial read that looks whole.
 */
async function page(response: ResponseContext): Promise<unknown[]> {
  const body: unknown = JSON.parse(await response.body.text());
  if (!Array.isArray(body)) throw new Error(`Okta answered a listing with ${kindOf(body)}, not a JSON array`);
  const bad = body.findIndex((item) => kindOf(item) !== 'an object');
  if (bad >= 0) throw new Error(`Okta listed ${kindOf(body[bad])} as item ${bad + 1} of a page, not an object`);
  return body;
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
