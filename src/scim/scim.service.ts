import type { JsonObject } from '../core/model.js';
import { ScimRepository, type ScimPredicate, type StoredScimGroup, type StoredScimUser, UserNameTakenError } from '../db/scim.repository.js';
import { ScimError, badRequest, notFound } from './scim.errors.js';
import { compileFilter } from './scim.filter.js';
import { type MemberChange, applyPatch, readPatchBody, splitGroupPatch } from './scim.patch.js';
import { type MemberRef, type Projection, project, readGroupBody, readUserBody, renderGroup, renderUser } from './scim.resource.js';
import { GROUP_SCHEMA, LIST_RESPONSE_SCHEMA, MAX_RESULTS, USER_SCHEMA } from './scim.schemas.js';
import type { Db } from '../db/database.js';
import { withFingerprint } from '../connectors/scim/scim.mapping.js';

/** One scim integration as a request reaches it: its id and the base URL resources are located under. */
export interface ScimTarget {
  readonly integrationId: string;
  readonly baseUrl: string;
}

/** List query parameters (RFC 7644 §3.4.2): filter, 1-based startIndex, count. */
export interface ListQuery extends Projection {
  readonly filter?: string;
  readonly startIndex?: string;
  readonly count?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The SCIM 2.0 resources of scim integrations: what the IdP pushes is stored as it asked
 * (the answers are truthful about that), and after every change `changed` asks for a run,
 * which brings the tenant to it through the same decide/apply path as a pull.
 */
export class ScimService {
  private readonly store: ScimRepository;

  constructor(
    db: Db,
    private readonly changed: (integrationId: string) => Promise<void>,
  ) {
    this.store = new ScimRepository(db);
  }

  async listUsers(t: ScimTarget, query: ListQuery): Promise<JsonObject> {
    const page = readPage(query);
    const where = filterOf(query.filter, 'User');
    const { total, users } = await this.store.listUsers(t.integrationId, where, page);
    const groups = await this.store.groupsOf(users.map((u) => u.id));
    return listResponse(total, page, users.map((u) => project(renderUser(u, t.baseUrl, groups.get(u.id)), query, USER_SCHEMA)));
  }

  async getUser(t: ScimTarget, id: string, projection: Projection): Promise<JsonObject> {
    const user = UUID.test(id) ? await this.store.findUser(t.integrationId, id) : undefined;
    if (!user) throw notFound(`User ${id} not found`);
    return project(await this.render(t, user), projection, USER_SCHEMA);
  }

  async createUser(t: ScimTarget, body: unknown): Promise<JsonObject> {
    const write = withFingerprint(readUserBody(body));
    const user = await uniqueUserName(() => this.store.createUser(t.integrationId, write));
    await this.changed(t.integrationId);
    return renderUser(user, t.baseUrl);
  }

  async replaceUser(t: ScimTarget, id: string, body: unknown): Promise<JsonObject> {
    const write = withFingerprint(readUserBody(body));
    const user = UUID.test(id) ? await uniqueUserName(() => this.store.replaceUser(t.integrationId, id, write)) : undefined;
    if (!user) throw notFound(`User ${id} not found`);
    await this.changed(t.integrationId);
    return this.render(t, user);
  }

  async patchUser(t: ScimTarget, id: string, body: unknown): Promise<JsonObject> {
    const operations = readPatchBody(body);
    if (!UUID.test(id)) throw notFound(`User ${id} not found`);
    const user = await this.store.transaction(async (store) => {
      const current = await store.findUser(t.integrationId, id, { forUpdate: true });
      if (!current) throw notFound(`User ${id} not found`);
      const before = renderUser(current, t.baseUrl);
      const patched = applyPatch(before, operations);
      return uniqueUserName(() => store.replaceUser(t.integrationId, id, withFingerprint(readUserBody(patched))));
    });
    await this.changed(t.integrationId);
    return this.render(t, user!);
  }

  async deleteUser(t: ScimTarget, id: string): Promise<void> {
    const deleted = UUID.test(id) && (await this.store.deleteUser(t.integrationId, id));
    if (!deleted) throw notFound(`User ${id} not found`);
    await this.changed(t.integrationId);
  }

  async listGroups(t: ScimTarget, query: ListQuery): Promise<JsonObject> {
    const page = readPage(query);
    const where = filterOf(query.filter, 'Group');
    const { total, groups } = await this.store.listGroups(t.integrationId, where, page);
    const members = wantsMembers(query) ? await this.membersByGroup(groups) : undefined;
    return listResponse(total, page, groups.map((g) => project(renderGroup(g, members?.get(g.id) ?? (members && []), t.baseUrl), query, GROUP_SCHEMA)));
  }

  async getGroup(t: ScimTarget, id: string, projection: Projection): Promise<JsonObject> {
    const group = UUID.test(id) ? await this.store.findGroup(t.integrationId, id) : undefined;
    if (!group) throw notFound(`Group ${id} not found`);
    const members = wantsMembers(projection) ? await this.store.membersOf([group.id]) : undefined;
    return project(renderGroup(group, members, t.baseUrl), projection, GROUP_SCHEMA);
  }

  async createGroup(t: ScimTarget, body: unknown): Promise<JsonObject> {
    const { group, members } = readGroupBody(body);
    const created = await this.store.transaction(async (store) => {
      const row = await store.createGroup(t.integrationId, group);
      if (members) await addMembers(store, t.integrationId, row.id, members);
      return row;
    });
    await this.changed(t.integrationId);
    return renderGroup(created, await this.store.membersOf([created.id]), t.baseUrl);
  }

  async replaceGroup(t: ScimTarget, id: string, body: unknown): Promise<JsonObject> {
    const { group, members } = readGroupBody(body);
    if (!UUID.test(id)) throw notFound(`Group ${id} not found`);
    const replaced = await this.store.transaction(async (store) => {
      const row = await store.replaceGroup(t.integrationId, id, group);
      if (!row) throw notFound(`Group ${id} not found`);
      // PUT replaces the whole resource (RFC 7644 §3.5.1): no members given, none kept.
      await store.removeMembers(id);
      if (members) await addMembers(store, t.integrationId, id, members);
      return row;
    });
    await this.changed(t.integrationId);
    return renderGroup(replaced, await this.store.membersOf([id]), t.baseUrl);
  }

  /**
   * PATCH on a group. Answers the group only when the request asks for attributes: otherwise
   * undefined, for a 204 (RFC 7644 §3.5.2 allows it), since a large group's member list would
   * cost more than the change (Okta and Entra send member changes one by one).
   */
  async patchGroup(t: ScimTarget, id: string, body: unknown, projection: Projection): Promise<JsonObject | undefined> {
    const steps = splitGroupPatch(readPatchBody(body));
    if (!UUID.test(id)) throw notFound(`Group ${id} not found`);
    const group = await this.store.transaction(async (store) => {
      const current = await store.findGroup(t.integrationId, id, { forUpdate: true });
      if (!current) throw notFound(`Group ${id} not found`);
      let resource: JsonObject = renderGroup(current, undefined, t.baseUrl);
      let attributesChanged = false;
      for (const step of steps) {
        if ('members' in step) await changeMembers(store, t.integrationId, id, step.members);
        else {
          resource = applyPatch(resource, [step.other]);
          attributesChanged = true;
        }
      }
      if (!attributesChanged) return store.touchGroup(id);
      const { group: write, members } = readGroupBody(resource);
      if (members) throw badRequest('invalidPath', 'members cannot be changed through this path');
      return (await store.replaceGroup(t.integrationId, id, write))!;
    });
    await this.changed(t.integrationId);
    if (!projection.attributes && !projection.excludedAttributes) return undefined;
    const members = wantsMembers(projection) ? await this.store.membersOf([id]) : undefined;
    return project(renderGroup(group, members, t.baseUrl), projection, GROUP_SCHEMA);
  }

  async deleteGroup(t: ScimTarget, id: string): Promise<void> {
    const deleted = UUID.test(id) && (await this.store.deleteGroup(t.integrationId, id));
    if (!deleted) throw notFound(`Group ${id} not found`);
    await this.changed(t.integrationId);
  }

  /** A user as returned, with the groups it is a member of. */
  private async render(t: ScimTarget, user: StoredScimUser): Promise<JsonObject> {
    return renderUser(user, t.baseUrl, (await this.store.groupsOf([user.id])).get(user.id));
  }

  private async membersByGroup(groups: readonly StoredScimGroup[]) {
    const byGroup = new Map<string, Awaited<ReturnType<ScimRepository['membersOf']>>>();
    for (const m of await this.store.membersOf(groups.map((g) => g.id))) {
      let list = byGroup.get(m.groupId);
      if (!list) byGroup.set(m.groupId, (list = []));
      list.push(m);
    }
    return byGroup;
  }
}

/** Whether a response should list members: not when excluded, nor when other attributes are asked for alone. */
function wantsMembers(projection: Projection): boolean {
  const named = (list: readonly string[] | undefined) => list?.some((a) => /^(urn:ietf:params:scim:schemas:core:2\.0:group:)?members(\..*)?$/i.test(a)) ?? false;
  if (projection.attributes) return named(projection.attributes);
  return !named(projection.excludedAttributes);
}

async function changeMembers(store: ScimRepository, integrationId: string, groupId: string, change: MemberChange): Promise<void> {
  switch (change.kind) {
    case 'add':
      return addMembers(store, integrationId, groupId, change.members);
    case 'replace':
      await store.removeMembers(groupId);
      return addMembers(store, integrationId, groupId, change.members);
    case 'remove':
      // Removing a member that is not there changes nothing (an IdP retrying a PATCH).
      return store.removeMembers(groupId, change.ids === 'all' ? undefined : change.ids.filter((v) => UUID.test(v)));
  }
}

/** Adds members, all of which must be users of this integration (400 invalidValue naming those that are not). */
async function addMembers(store: ScimRepository, integrationId: string, groupId: string, members: readonly MemberRef[]): Promise<void> {
  const ids = [...new Set(members.map((m) => m.value.toLowerCase()))];
  const malformed = ids.filter((v) => !UUID.test(v));
  const missing = [...malformed, ...(await store.missingUsers(integrationId, ids.filter((v) => UUID.test(v))))];
  if (missing.length > 0) {
    throw badRequest('invalidValue', `members must be Users of this integration; unknown: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ` and ${missing.length - 5} more` : ''}`);
  }
  await store.addMembers(groupId, ids);
}

async function uniqueUserName<T>(write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (error instanceof UserNameTakenError) throw new ScimError(409, `a User with userName "${error.message}" already exists (userNames are compared case-insensitively)`, 'uniqueness');
    throw error;
  }
}

function filterOf(text: string | undefined, type: 'User' | 'Group'): ScimPredicate | undefined {
  if (text === undefined || text.trim() === '') return undefined;
  return compileFilter(text, type);
}

/** startIndex (1-based, below 1 read as 1) and count (negative read as 0, capped at MAX_RESULTS): RFC 7644 §3.4.2.4. */
function readPage(query: ListQuery): { offset: number; limit: number; startIndex: number } {
  const int = (text: string | undefined, name: string, fallback: number): number => {
    if (text === undefined || text === '') return fallback;
    if (!/^-?\d+$/.test(text.trim())) throw badRequest('invalidValue', `${name} must be an integer, not ${JSON.stringify(text)}`);
    return Number(text);
  };
  const startIndex = Math.max(1, int(query.startIndex, 'startIndex', 1));
  const count = Math.min(MAX_RESULTS, Math.max(0, int(query.count, 'count', 100)));
  return { offset: startIndex - 1, limit: count, startIndex };
}

function listResponse(total: number, page: { startIndex: number }, resources: JsonObject[]): JsonObject {
  return { schemas: [LIST_RESPONSE_SCHEMA], totalResults: total, itemsPerPage: resources.length, startIndex: page.startIndex, Resources: resources };
}
