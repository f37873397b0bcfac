// Generate interop JWTs for keyward's tests with node `jose` (third,
// independent implementation next to PyJWT and jwcrypto in gen.py).
//
// Writes a file with the same layout as gen.py's output; merge it with
//   python3 interop/gen.py --now N --merge <this file> --out ...
// (gen.py verifies every merged token with PyJWT and jwcrypto, too).
//
// Usage (from interop/):  npm ci && node gen.mjs --now N --out PATH
import { writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import {
  generateKeyPair, exportJWK, SignJWT, jwtVerify, createLocalJWKSet, decodeProtectedHeader,
} from 'jose';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'keyward-interop';
const LIFETIME = 3600;
const LIBRARY = 'jose';

const ALGORITHMS = [
  'RS256', 'RS384', 'RS512',
  'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512',
  'EdDSA',
];

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'jose.json' },
    now: { type: 'string' },
  },
});
const now = values.now === undefined ? Math.floor(Date.now() / 1000) : Number.parseInt(values.now, 10);
if (!Number.isSafeInteger(now)) throw new Error(`bad --now: ${values.now}`);

// Same claim shape as gen.py's claims_for().
function claimsFor(alg) {
  return {
    iss: ISSUER,
    sub: `user-${LIBRARY}-${alg.toLowerCase()}`,
    aud: AUDIENCE,
    iat: now,
    nbf: now,
    exp: now + LIFETIME,
    jti: `${LIBRARY}-${alg}-${now}`,
    scope: 'openid profile email keyward:read',
    name: 'Zoë Ångström',
    email_verified: true,
    ctx: {
      tenant: 'acme',
      roles: ['reader', 'auditor'],
      mfa: { method: 'totp', age_s: 42 },
      library: LIBRARY,
      alg,
    },
  };
}

function genOptions(alg) {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return { modulusLength: 2048, extractable: true };
  if (alg === 'EdDSA') return { crv: 'Ed25519', extractable: true };
  return { extractable: true }; // ES256/384/512 imply P-256/P-384/P-521
}

const require = createRequire(import.meta.url);
const joseVersion = require('jose/package.json').version;

const keys = [];
const tokens = [];
for (const alg of ALGORITHMS) {
  const kid = `${LIBRARY}-${alg}`;
  const { publicKey, privateKey } = await generateKeyPair(alg, genOptions(alg));
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  const claims = claimsFor(alg);
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg, kid, typ: 'JWT' })
    .sign(privateKey);
  keys.push(jwk);
  tokens.push({ library: LIBRARY, alg, kid, token, claims });
}

// Self-check against the exported JWKS, the way a relying party would.
const jwks = { keys };
const localSet = createLocalJWKSet(jwks);
for (const t of tokens) {
  const { payload } = await jwtVerify(t.token, localSet, {
    issuer: ISSUER, audience: AUDIENCE, algorithms: [t.alg], currentDate: new Date(now * 1000),
  });
  if (JSON.stringify(payload) !== JSON.stringify(t.claims)) throw new Error(`${t.kid}: claims differ`);
  if (decodeProtectedHeader(t.token).kid !== t.kid) throw new Error(`${t.kid}: kid differs`);
}

const doc = {
  generated_by: { node: process.versions.node, jose: joseVersion },
  now,
  jwks,
  tokens,
};
mkdirSync(dirname(values.out), { recursive: true });
writeFileSync(values.out, `${JSON.stringify(doc, null, 2)}\n`);
JSON.parse(readFileSync(values.out, 'utf8'));
console.error(`wrote ${tokens.length} tokens (jose ${joseVersion}), now=${now} -> ${values.out}`);
