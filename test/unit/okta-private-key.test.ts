import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseOktaPrivateKey } from '../../src/integrations/okta-private-key.js';

// Keys in every form Okta's Admin Console or openssl hands out, normalised to one JWK.
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwkOf = (text: string) => JSON.parse(text) as Record<string, unknown>;

describe('parseOktaPrivateKey', () => {
  it('reads PKCS#8 and PKCS#1 PEM, a JWK and a one-key JWKS, to the same key', () => {
    const forms = [
      rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
      rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString(),
      JSON.stringify(rsa.privateKey.export({ format: 'jwk' })),
      JSON.stringify({ keys: [rsa.privateKey.export({ format: 'jwk' })] }),
    ];
    const parsed = forms.map((f) => jwkOf(parseOktaPrivateKey(f, undefined).jwk));
    for (const p of parsed) expect(p).toMatchObject({ kty: 'RSA', alg: 'RS256', d: parsed[0]!.d, n: parsed[0]!.n });
  });

  it('takes the key id from --okta-key-id, else from the JWK', () => {
    const jwk = JSON.stringify({ ...rsa.privateKey.export({ format: 'jwk' }), kid: 'from-jwk' });
    expect(parseOktaPrivateKey(jwk, undefined).keyId).toBe('from-jwk');
    expect(parseOktaPrivateKey(jwk, 'given')).toMatchObject({ keyId: 'given' });
    expect(jwkOf(parseOktaPrivateKey(jwk, 'given').jwk).kid).toBe('given');
    expect(parseOktaPrivateKey(rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), undefined).keyId).toBeNull();
    expect(() => parseOktaPrivateKey(jwk, 'has space')).toThrow('--okta-key-id "has space" is not a key id');
  });

  it('refuses what cannot sign a client assertion, saying why', () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const short = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const encrypted = rsa.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pw' }).toString();
    const cases: [string, RegExp][] = [
      ['', /is empty/],
      ['not a key', /is not a private key dirsync can read \(PEM or JWK\)/],
      [rsa.publicKey.export({ format: 'pem', type: 'spki' }).toString(), /holds a public key or certificate/],
      [JSON.stringify(rsa.publicKey.export({ format: 'jwk' })), /holds a public key: give the private key/],
      [encrypted, /passphrase-protected/],
      [ec.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), /is an EC key: dirsync needs an RSA key/],
      [short.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(), /shorter than 2048 bits/],
      ['{"kty":"RSA","d":"x"', /starts like a JWK but is not valid JSON$/],
      [JSON.stringify({ keys: [rsa.privateKey.export({ format: 'jwk' }), rsa.privateKey.export({ format: 'jwk' })] }), /holds a key set of 2 keys/],
    ];
    for (const [text, message] of cases) expect(() => parseOktaPrivateKey(text, undefined), text.slice(0, 30)).toThrow(message);
  });

  it('never quotes key material back in an error', () => {
    const d = (rsa.privateKey.export({ format: 'jwk' }) as { d: string }).d;
    const broken = JSON.stringify(rsa.privateKey.export({ format: 'jwk' })).replace('"d":', '"d" ');
    expect(() => parseOktaPrivateKey(broken, undefined)).toThrow(/not valid JSON/);
    try {
      parseOktaPrivateKey(broken, undefined);
    } catch (error) {
      expect((error as Error).message).not.toContain(d.slice(0, 12));
    }
  });
});
