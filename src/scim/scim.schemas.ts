/**
 * The SCIM schemas dirsync serves and reads by: core User with the enterprise extension, and
 * Group (RFC 7643 §4 and §8.7.1), and the discovery documents built from them (RFC 7644 §4).
 * Attributes the client sends that no schema names are kept as sent.
 */

export const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const LIST_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';
export const PATCH_OP_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const SCHEMA_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Schema';
const RESOURCE_TYPE_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
const SERVICE_PROVIDER_CONFIG_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';

/** Largest page a list answers (ServiceProviderConfig `filter.maxResults`). */
export const MAX_RESULTS = 1000;

type AttributeType = 'string' | 'boolean' | 'decimal' | 'integer' | 'dateTime' | 'reference' | 'complex';

/** One attribute definition (RFC 7643 §7), as far as dirsync checks and publishes it. */
export interface AttributeDef {
  readonly name: string;
  readonly type: AttributeType;
  readonly multiValued: boolean;
  readonly required: boolean;
  readonly caseExact: boolean;
  readonly mutability: 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
  readonly returned: 'always' | 'never' | 'default' | 'request';
  readonly uniqueness: 'none' | 'server' | 'global';
  readonly subAttributes?: readonly AttributeDef[];
}

function attr(name: string, type: AttributeType, o: Partial<Omit<AttributeDef, 'name' | 'type'>> = {}): AttributeDef {
  return { name, type, multiValued: false, required: false, caseExact: false, mutability: 'readWrite', returned: 'default', uniqueness: 'none', ...o };
}

/** A multi-valued attribute of value/display/type/primary entries (RFC 7643 §2.4). */
function multi(name: string, extra: AttributeDef[] = [], valueType: AttributeType = 'string'): AttributeDef {
  return attr(name, 'complex', {
    multiValued: true,
    subAttributes: [attr('value', valueType), attr('display', 'string'), attr('type', 'string'), attr('primary', 'boolean'), ...extra],
  });
}

const USER_ATTRIBUTES: readonly AttributeDef[] = [
  attr('userName', 'string', { required: true, uniqueness: 'server' }),
  attr('name', 'complex', {
    subAttributes: ['formatted', 'familyName', 'givenName', 'middleName', 'honorificPrefix', 'honorificSuffix'].map((n) => attr(n, 'string')),
  }),
  ...['displayName', 'nickName', 'title', 'userType', 'preferredLanguage', 'locale', 'timezone'].map((n) => attr(n, 'string')),
  attr('profileUrl', 'reference'),
  attr('active', 'boolean'),
  attr('password', 'string', { mutability: 'writeOnly', returned: 'never' }),
  multi('emails'),
  multi('phoneNumbers'),
  multi('ims'),
  multi('photos', [], 'reference'),
  attr('addresses', 'complex', {
    multiValued: true,
    subAttributes: [...['formatted', 'streetAddress', 'locality', 'region', 'postalCode', 'country', 'type'].map((n) => attr(n, 'string')), attr('primary', 'boolean')],
  }),
  attr('groups', 'complex', {
    multiValued: true,
    mutability: 'readOnly',
    subAttributes: [attr('value', 'string'), attr('$ref', 'reference'), attr('display', 'string'), attr('type', 'string')],
  }),
  multi('entitlements'),
  multi('roles'),
  multi('x509Certificates'),
];

const ENTERPRISE_ATTRIBUTES: readonly AttributeDef[] = [
  ...['employeeNumber', 'costCenter', 'organization', 'division', 'department'].map((n) => attr(n, 'string')),
  attr('manager', 'complex', { subAttributes: [attr('value', 'string'), attr('$ref', 'reference'), attr('displayName', 'string', { mutability: 'readOnly' })] }),
];

const GROUP_ATTRIBUTES: readonly AttributeDef[] = [
  attr('displayName', 'string', { required: true }),
  attr('members', 'complex', {
    multiValued: true,
    subAttributes: [attr('value', 'string', { mutability: 'immutable' }), attr('$ref', 'reference', { mutability: 'immutable' }), attr('display', 'string'), attr('type', 'string', { mutability: 'immutable' })],
  }),
];

/** Attribute definitions by schema URN: how bodies are checked and string booleans read. */
export const SCHEMA_ATTRIBUTES: ReadonlyMap<string, readonly AttributeDef[]> = new Map([
  [USER_SCHEMA, USER_ATTRIBUTES],
  [ENTERPRISE_USER_SCHEMA, ENTERPRISE_ATTRIBUTES],
  [GROUP_SCHEMA, GROUP_ATTRIBUTES],
]);

const COMMON = [
  attr('id', 'string', { caseExact: true, mutability: 'readOnly', returned: 'always', uniqueness: 'server' }),
  attr('externalId', 'string', { caseExact: true }),
];

const SCHEMA_NAMES: Record<string, [string, string]> = {
  [USER_SCHEMA]: ['User', 'User Account'],
  [ENTERPRISE_USER_SCHEMA]: ['EnterpriseUser', 'Enterprise User'],
  [GROUP_SCHEMA]: ['Group', 'Group'],
};

/** The `Schemas` resources (RFC 7643 §7), each with its `meta.location` under `baseUrl`. */
export function schemaDocuments(baseUrl: string): Record<string, unknown>[] {
  return [...SCHEMA_ATTRIBUTES].map(([id, attributes]) => ({
    schemas: [SCHEMA_SCHEMA],
    id,
    name: SCHEMA_NAMES[id]![0],
    description: SCHEMA_NAMES[id]![1],
    attributes: id === ENTERPRISE_USER_SCHEMA ? attributes : [...COMMON, ...attributes],
    meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${id}` },
  }));
}

/** The `ResourceTypes` resources (RFC 7643 §6). */
export function resourceTypeDocuments(baseUrl: string): Record<string, unknown>[] {
  return [
    {
      schemas: [RESOURCE_TYPE_SCHEMA],
      id: 'User',
      name: 'User',
      endpoint: '/Users',
      description: 'User Account',
      schema: USER_SCHEMA,
      schemaExtensions: [{ schema: ENTERPRISE_USER_SCHEMA, required: false }],
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/User` },
    },
    {
      schemas: [RESOURCE_TYPE_SCHEMA],
      id: 'Group',
      name: 'Group',
      endpoint: '/Groups',
      description: 'Group',
      schema: GROUP_SCHEMA,
      schemaExtensions: [],
      meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/Group` },
    },
  ];
}

/** `ServiceProviderConfig` (RFC 7643 §5): PATCH and filter yes, bulk, sort, etag and password change no. */
export function serviceProviderConfig(baseUrl: string): Record<string, unknown> {
  return {
    schemas: [SERVICE_PROVIDER_CONFIG_SCHEMA],
    patch: { supported: true },
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
    filter: { supported: true, maxResults: MAX_RESULTS },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: false },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'OAuth Bearer Token',
        description: 'The SCIM token `dirsync integration create --provider scim` printed, as `Authorization: Bearer <token>`',
        specUri: 'https://www.rfc-editor.org/info/rfc6750',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${baseUrl}/ServiceProviderConfig` },
  };
}
