/** RFC 7644 §3.12 Table 9: the `scimType` values of a 400 (and 409) error. */
export type ScimType =
  | 'invalidFilter'
  | 'tooMany'
  | 'uniqueness'
  | 'mutability'
  | 'invalidSyntax'
  | 'invalidPath'
  | 'noTarget'
  | 'invalidValue'
  | 'invalidVers'
  | 'sensitive';

export const ERROR_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:Error';

/**
 * A request the SCIM endpoint refuses: answered with the SCIM Error schema (RFC 7644 §3.12),
 * `status` as a string, a `scimType` where the RFC defines one, and a `detail` sentence.
 */
export class ScimError extends Error {
  override name = 'ScimError';
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly scimType?: ScimType,
  ) {
    super(detail);
  }

  get body(): { schemas: string[]; status: string; scimType?: ScimType; detail: string } {
    return { schemas: [ERROR_SCHEMA], status: String(this.status), ...(this.scimType && { scimType: this.scimType }), detail: this.detail };
  }
}

export const badRequest = (scimType: ScimType, detail: string) => new ScimError(400, detail, scimType);
export const notFound = (detail: string) => new ScimError(404, detail);
