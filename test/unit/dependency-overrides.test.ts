import { createRequire } from 'node:module';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';

// package.json `overrides` pin cookie 1.1, content-disposition 2.0 (both run on Node 20, unlike
// the 2.x and 3.x their dependents ask for) and uuid 11.1.1+ (GHSA-w5hq-g745-h8pq: the Okta SDK's
// njwt and node-jose ask for uuid 8 and 9). These check that each dependent still gets the API
// it calls: @fastify/cookie (parseCookie, stringifySetCookie), light-my-request (inject's
// cookies), @fastify/static (content-disposition's `create`), njwt and node-jose (uuid's v4).
const require = createRequire(import.meta.url);
// semver ships no types; this is the one function used.
const semver = require('semver') as { satisfies: (version: string, range: string) => boolean };

describe('overridden dependencies', () => {
  it('every package in package-lock.json runs on this Node (what npm ci warns EBADENGINE about)', () => {
    const lock = JSON.parse(readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { engines?: { node?: string } | string[]; optional?: boolean; os?: string[]; cpu?: string[] }> };
    const unfit = Object.entries(lock.packages)
      // Platform builds for other systems are never installed, so npm checks nothing of theirs.
      .filter(([, p]) => !(p.optional && (p.os || p.cpu)))
      .flatMap(([name, p]) => {
        const range = Array.isArray(p.engines) ? undefined : p.engines?.node;
        return range && !semver.satisfies(process.versions.node, range) ? [`${name} wants node ${range}`] : [];
      });
    expect(unfit).toEqual([]);
  });

  it('@fastify/cookie sets and reads cookies, and inject passes them on (cookie)', async () => {
    const app = Fastify();
    await app.register(cookie, { secret: 'a-secret-of-enough-length-0123456789' });
    app.get('/set', async (_req, reply) => reply.setCookie('session', 'v a/l', { httpOnly: true, path: '/', sameSite: 'strict', signed: true }).send('ok'));
    app.get('/read', async (req) => ({ session: req.unsignCookie(req.cookies.session ?? '').value }));
    const set = await app.inject({ url: '/set' });
    expect(set.headers['set-cookie']).toMatch(/^session=.+; Path=\/; HttpOnly; SameSite=Strict$/);
    const value = set.cookies[0]!.value;
    const read = await app.inject({ url: '/read', cookies: { session: value } });
    expect(read.json()).toEqual({ session: 'v a/l' });
    await app.close();
  });

  it('@fastify/static names a download (content-disposition)', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'dirsync-static-'));
    try {
      writeFileSync(path.join(root, 'report.csv'), 'a,b\n');
      const app = Fastify();
      await app.register(fastifyStatic, { root });
      app.get('/download', (_req, reply) => reply.download('report.csv', 'Ünïcode report.csv'));
      const res = await app.inject({ url: '/download' });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-disposition']).toBe(`attachment; filename="?n?code report.csv"; filename*=UTF-8''%C3%9Cn%C3%AFcode%20report.csv`);
      await app.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("the Okta SDK's njwt and node-jose get a fixed uuid whose v4 they call", async () => {
    const sdk = createRequire(createRequire(import.meta.url).resolve('@okta/okta-sdk-nodejs'));
    for (const dependent of ['njwt', 'node-jose']) {
      const own = createRequire(sdk.resolve(dependent));
      const version = (own('uuid/package.json') as { version: string }).version.split('.').map(Number) as [number, number, number];
      expect(version[0] > 11 || (version[0] === 11 && (version[1] > 1 || version[2] >= 1)), `${dependent} gets uuid ${version.join('.')}`).toBe(true);
      // Both call it as require('uuid').v4 (njwt/index.js, node-jose/lib/jwk/basekey.js).
      expect((own('uuid') as { v4: () => string }).v4()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
    // njwt gives every token a uuid v4 jti: the Okta SDK's client assertions are built so.
    const njwt = sdk('njwt') as { create: (claims: object, key: string) => { body: { jti?: string } } };
    expect(njwt.create({ sub: 'x' }, 'k'.repeat(32)).body.jti).toMatch(/^[0-9a-f-]{36}$/);
  });
});
