// Mint N distinct RS256 tokens from a running `keyward idp` (POST /token), one per line.
// Usage: node mint.mjs IDP_URL AUDIENCE N OUT_FILE [TTL_S] [PREFIX]
// Each token has its own sub (PREFIX-i) and jti, so every token's bytes differ.
import { writeFileSync } from 'node:fs';

const [idp, audience, nArg, out, ttlArg, prefixArg] = process.argv.slice(2);
const n = Number(nArg);
const ttl = ttlArg ?? '7200';
const prefix = prefixArg ?? 'user';
if (!idp || !audience || !Number.isInteger(n) || n < 1 || n > 1_000_000 || !out) {
  console.error('usage: node mint.mjs IDP_URL AUDIENCE N OUT_FILE [TTL_S] [PREFIX]');
  process.exit(2);
}
const tokens = new Array(n);
let next = 0;
async function worker() {
  while (next < n) {
    const i = next++;
    const body = new URLSearchParams({ sub: `${prefix}-${i}`, aud: audience, ttl, scope: 'read' });
    const res = await fetch(`${idp}/token`, { method: 'POST', body, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`idp answered ${res.status}: ${await res.text()}`);
    tokens[i] = (await res.json()).access_token;
  }
}
await Promise.all(Array.from({ length: 8 }, worker));
writeFileSync(out, tokens.join('\n') + '\n');
