import type { Collection, ResponseContext } from '@okta/okta-sdk-nodejs';

/**
 * The SDK's Collection for a listing, its items taken as Okta's JSON as it is, not as the SDK's
 * models: the same requests (URL, auth, request executor), paging (`Link: rel="next"`) and
 * errors (an HTTP error is thrown by the SDK's Http before a page is parsed), only without a
 * model built per item.
 *
 * Why: @okta/okta-sdk-nodejs 8.1 builds each item through ObjectSerializer.deserialize, which
 * was 15.6 s of the 23 s of CPU that paging an app of 100,000 users and 500,000 group members
 * took (a profile of `npm run bench`'s IdP floor), more than the HTTP and JSON parsing together.
 *
 * Only for listings whose items map the same either way (okta.mapping.ts reads both loosely):
 * users (the SDK's user profile keeps every attribute), app users and app group assignments
 * (their `_embedded` user or group is raw JSON in the SDK's models too), and group members
 * (only their ids are read). Not for `/api/v1/groups`: the SDK's Group model drops custom profile
 * attributes that the raw JSON keeps, and targeted reads get single groups as models.
 */
export async function jsonPages<T>(collection: Promise<Collection<T>>): Promise<Collection<unknown>> {
  const pages = await collection;
  pages.factory = { parseResponse: (response: ResponseContext) => page(response) };
  return pages;
}

/**
 * A listing's page: a JSON array, or an error (retried as a malformed body, see readAll). A
 * page that is not an array must not pass for an empty one: that would end the listing early,
 * a partial read that looks whole.
 */
async function page(response: ResponseContext): Promise<unknown[]> {
  const body: unknown = JSON.parse(await response.body.text());
  if (!Array.isArray(body)) throw new SyntaxError(`Okta answered a listing with ${body === null ? 'null' : typeof body}, not a JSON array`);
  return body;
}
