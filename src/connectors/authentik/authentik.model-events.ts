/**
 * What one authentik model event (`model_created`, `model_updated`, `model_deleted`) is about,
 * read without IO from its action and `context.model`. authentik fills `context.model` with
 * `{app, model_name, pk, name}` (authentik/events/utils.py `model_to_dict`), and stores a UUID
 * pk as its 32-digit hex without dashes (`sanitize_dict`: `value.hex`), while the API shows
 * group and application pks dashed: both spellings are read. A membership change made through
 * the API is a `model_updated` of the user or of the group whose member list changed
 * (authentik/events/middleware.py, `m2m_changed_handler` for User and Group).
 */

export const MODEL_ACTIONS = ['model_created', 'model_updated', 'model_deleted'] as const;

export type ModelEventSubject =
  | { readonly kind: 'user'; readonly id: string }
  | { readonly kind: 'group'; readonly id: string }
  | { readonly kind: 'application'; readonly pk: string; readonly name: string }
  | { readonly kind: 'binding'; readonly name: string }
  /** A model whose changes cannot change users, groups or memberships, or another action. */
  | { readonly kind: 'other' };

/** The subject of a model event, or `other`; a user or group event without a usable pk is `other` too. */
export function subjectOfModelEvent(action: unknown, model: unknown): ModelEventSubject {
  if (!(MODEL_ACTIONS as readonly unknown[]).includes(action) || !isObject(model)) return { kind: 'other' };
  const name = typeof model.name === 'string' ? model.name : '';
  const key = `${String(model.app)}.${String(model.model_name)}`;
  if (key === 'authentik_core.user') {
    const pk = typeof model.pk === 'number' ? String(model.pk) : typeof model.pk === 'string' ? model.pk.trim() : '';
    return /^(0|[1-9][0-9]{0,14})$/.test(pk) ? { kind: 'user', id: pk } : { kind: 'other' };
  }
  if (key === 'authentik_core.group') {
    const pk = dashedUuid(model.pk);
    return pk ? { kind: 'group', id: pk } : { kind: 'other' };
  }
  if (key === 'authentik_core.application') return { kind: 'application', pk: dashedUuid(model.pk) ?? String(model.pk), name };
  if (key === 'authentik_policies.policybinding') return { kind: 'binding', name };
  return { kind: 'other' };
}

/**
 * Whether a policy binding event concerns the application: its `name` is the binding's
 * `__str__`, "Binding from <target> #<order> to <Policy|Group|User> <name>" (authentik/policies/
 * models.py), whose target is the application's name. `undefined` when the name does not say
 * (another format, or a target shown by its pk): the caller must assume it does.
 */
export function bindingConcerns(bindingName: string, app: { readonly pk: string; readonly name: string }): boolean | undefined {
  const match = /^Binding from (.*) #-?\d+ to /s.exec(bindingName);
  if (!match) return undefined;
  const target = match[1] as string;
  if (target === app.name || target.includes(app.pk) || target.includes(app.pk.replace(/-/g, ''))) return true;
  if (target.startsWith('PolicyBindingModel ')) return undefined;
  return false;
}

/** A UUID as the API spells it (lowercase, dashed), from either spelling; undefined for anything else. */
export function dashedUuid(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const hex = value.trim().toLowerCase().replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/.test(hex)) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
