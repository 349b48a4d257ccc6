/**
 * What deprovisioning means for one integration (SPEC "Deprovision"):
 * - suspend: tenant access kept but inactive, memberships kept;
 * - remove-access: tenant access and the tenant's memberships removed, the global user stays;
 * - delete: as remove-access, and the global user goes once no tenant has access left.
 */
export const DEPROVISION_MODES = ['suspend', 'remove-access', 'delete'] as const;
export type DeprovisionMode = (typeof DEPROVISION_MODES)[number];

export interface Policy {
  readonly deprovisionMode: DeprovisionMode;
}

export const DEFAULT_POLICY: Policy = Object.freeze({ deprovisionMode: 'suspend' });

export function isDeprovisionMode(value: string): value is DeprovisionMode {
  return (DEPROVISION_MODES as readonly string[]).includes(value);
}
