import { type KeyObject, createHash, createPublicKey, generateKeyPairSync, verify } from 'node:crypto';

/**
 * What Okta's org authorization server checks in a client-credentials token request signed
 * with a private key (private_key_jwt), and in DPoP proofs (RFC 9449): shared by the nock
 * fixtures and the fake Okta, so both refuse exactly what Okta would.
 */

export interface Jws {
  header: Record<string, unknown>;
  claims: Record<string, unknown>;
}

/** A service app key pair, the private key as Okta's Admin Console hands it out. */
export function serviceAppKey(type: 'rsa' | 'ec' = 'rsa'): { privatePem: string; privateJwk: string; publicKey: KeyObject } {
  const { privateKey, publicKey } =
    type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    privateJwk: JSON.stringify(privateKey.export({ format: 'jwk' })),
    publicKey,
  };
}

/** Verifies a compact JWS with `key` and returns its parts, or throws saying what is wrong. */
export function verifyJws(token: string, key: KeyObject): Jws {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a compact JWS');
  const [h, c, s] = parts as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString()) as Record<string, unknown>;
  const claims = JSON.parse(Buffer.from(c, 'base64url').toString()) as Record<string, unknown>;
  const alg = String(header.alg);
  const hash = { RS256: 'sha256', ES256: 'sha256', RS384: 'sha384', ES384: 'sha384', RS512: 'sha512', ES512: 'sha512' }[alg];
  if (!hash) throw new Error(`unsupported alg ${alg}`);
  const ok = verify(hash, Buffer.from(`${h}.${c}`), alg.startsWith('ES') ? { key, dsaEncoding: 'ieee-p1363' } : key, Buffer.from(s, 'base64url'));
  if (!ok) throw new Error('signature does not verify');
  return { header, claims };
}

/** Checks a client assertion as Okta does; returns an OAuth error description, or the decoded JWS. */
export function checkClientAssertion(assertion: string, opts: { publicKey: KeyObject; clientId: string; tokenUrl: string; keyId?: string }): Jws | { error: string; description: string } {
  let jws: Jws;
  try {
    jws = verifyJws(assertion, opts.publicKey);
  } catch {
    return { error: 'invalid_client', description: 'The client_assertion signature is invalid.' };
  }
  const { header, claims } = jws;
  if (claims.iss !== opts.clientId || claims.sub !== opts.clientId) return { error: 'invalid_client', description: "Invalid value for 'client_id' parameter." };
  if (claims.aud !== opts.tokenUrl) return { error: 'invalid_client', description: "The audience claim for client_assertion must be the endpoint invoked for the request." };
  if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return { error: 'invalid_client', description: 'The client_assertion token is expired.' };
  if (opts.keyId !== undefined && header.kid !== opts.keyId) return { error: 'invalid_client', description: 'The client_assertion signature is invalid.' };
  return jws;
}

/** A DPoP proof's public key thumbprint (RFC 7638), to bind a token to it. */
export function jwkThumbprint(jwk: Record<string, unknown>): string {
  const members = jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { e: jwk.e, kty: jwk.kty, n: jwk.n };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

/** Checks a DPoP proof; returns its key thumbprint and nonce, or what is wrong with it. */
export function checkDpopProof(
  proof: string | undefined,
  expect: { method: string; url: string; accessToken?: string },
): { thumbprint: string; nonce: unknown } | { error: string } {
  if (!proof) return { error: 'DPoP proof JWT header is missing.' };
  let jws: Jws;
  try {
    const header = JSON.parse(Buffer.from(proof.split('.')[0] ?? '', 'base64url').toString()) as { jwk?: Record<string, unknown>; typ?: string };
    if (header.typ !== 'dpop+jwt' || !header.jwk) return { error: "The DPoP proof JWT header is invalid." };
    jws = verifyJws(proof, createPublicKey({ key: header.jwk as never, format: 'jwk' }));
  } catch {
    return { error: 'The DPoP proof JWT signature is invalid.' };
  }
  const { claims, header } = jws;
  if (String(claims.htm).toUpperCase() !== expect.method.toUpperCase()) return { error: "'htm' claim in the DPoP proof JWT is invalid." };
  if (claims.htu !== expect.url.split('?')[0]) return { error: "'htu' claim in the DPoP proof JWT is invalid." };
  if (expect.accessToken !== undefined && claims.ath !== createHash('sha256').update(expect.accessToken).digest('base64url')) {
    return { error: "'ath' claim in the DPoP proof JWT is invalid." };
  }
  return { thumbprint: jwkThumbprint(header.jwk as Record<string, unknown>), nonce: claims.nonce };
}
