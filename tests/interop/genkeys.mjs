// Generates RS256 signing keys for the interop IdP, at test time (no private key is ever
// committed). Usage: node genkeys.mjs OUT_DIR KID [KID...]
// Writes OUT_DIR/<kid>.jwk.json: one private JWK (kty RSA, alg RS256, use sig, kid).
// The test composes the JWKS files the IdP loads ([old], [new, old], [new]) from these.
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const [outDir, ...kids] = process.argv.slice(2);
if (!outDir || kids.length === 0) {
  console.error('usage: node genkeys.mjs OUT_DIR KID [KID...]');
  process.exit(2);
}
mkdirSync(outDir, { recursive: true });
for (const kid of kids) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(kid)) {
    console.error(`kid ${JSON.stringify(kid)}: letters, digits, - and _ only, at most 64`);
    process.exit(2);
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  // 0600: a private key, even a throwaway one.
  writeFileSync(join(outDir, `${kid}.jwk.json`), JSON.stringify(jwk), { mode: 0o600 });
}
console.log(`generated ${kids.join(', ')} in ${outDir}`);
