import { userInfo } from 'node:os';
import { locate } from '../access/targets.js';
import type { JsonObject } from '../core/model.js';
import { AuditRepository } from '../db/audit.repository.js';
import { UserError } from '../errors.js';
import type { CliContext } from './context.js';

/** The CLI acts on the database directly, as whoever may read DATABASE_URL: the audit log names the OS user. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return `cli:${process.env.USER ?? 'unknown'}`;
  }
}

/** A refusal the CLI itself makes (such as a delete without --yes): audited as `refused`, not `failed`. */
export class RefusedError extends UserError {
  override name = 'RefusedError';
}

interface CliTarget {
  readonly type: string;
  readonly id?: string | null;
  readonly tenantId?: string | null;
}

/**
 * Runs a mutating command's body and appends its audit row (actor `cli:<user>`, source
 * `local`): `ok`, `refused` (RefusedError) or `failed` with the error's sentence. `created`
 * names a target the body made (its id and tenant). A failure to write the row is not the
 * command's failure: the error, if any, is what the person needs to hear.
 */
export async function audited<T>(
  ctx: CliContext,
  action: string,
  target: CliTarget,
  body: () => Promise<T>,
  options: { detail?: JsonObject; created?: (result: T) => Partial<CliTarget> } = {},
): Promise<T> {
  // The target's tenant is read first: a delete takes it away.
  const find = target.id ? (locate as Record<string, ((id: string) => (db: CliContext['db']) => Promise<{ tenantId: string | null }>) | undefined>)[target.type] : undefined;
  const tenantId = target.tenantId ?? (find && target.id ? await find(target.id)(ctx.db).then((t) => t.tenantId, () => null) : null);
  const record = (outcome: 'ok' | 'refused' | 'failed', reason: string | null, t: CliTarget) =>
    new AuditRepository(ctx.db)
      .append({
        actor: cliActor(),
        action,
        targetType: t.type,
        targetId: t.id ?? null,
        tenantId: t.tenantId ?? tenantId,
        source: 'local',
        outcome,
        reason,
        detail: options.detail ?? null,
      })
      .catch(() => undefined);
  try {
    const result = await body();
    await record('ok', null, options.created ? { ...target, ...options.created(result) } : target);
    return result;
  } catch (error) {
    await record(error instanceof RefusedError ? 'refused' : 'failed', (error as Error).message ?? String(error), target);
    throw error;
  }
}
