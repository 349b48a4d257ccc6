import { SnapshotBuilder } from '../../core/snapshot.js';
import type { Snapshot } from '../../core/model.js';
import type { ScimRepository } from '../../db/scim.repository.js';
import { type ReadStats, type SnapshotSource, emptyReadStats } from '../connector.js';
import { toDirectoryGroup, toDirectoryUser } from './scim.mapping.js';

/**
 * A scim integration's "IdP": what the IdP pushed, as stored by the SCIM endpoint. A run reads
 * it as a pull reads Okta or authentik, so a push gets every guarantee a pulled change has
 * (identity, adoption, locks, deprovision modes, thresholds, change log).
 */
export class ScimSnapshotSource implements SnapshotSource {
  readonly stats: ReadStats = emptyReadStats();

  constructor(
    private readonly store: ScimRepository,
    private readonly integrationId: string,
  ) {}

  async readSnapshot(): Promise<Snapshot> {
    const pushed = await this.store.readAll(this.integrationId);
    this.stats.requests += 1;
    this.stats.records += pushed.users.length + pushed.groups.length + pushed.members.length;
    const builder = new SnapshotBuilder();
    for (const user of pushed.users) builder.addUserFrom(user, toDirectoryUser);
    for (const group of pushed.groups) builder.addGroupFrom(group, toDirectoryGroup);
    for (const { groupId, userId } of pushed.members) builder.addMember(groupId, userId);
    return builder.build();
  }
}
