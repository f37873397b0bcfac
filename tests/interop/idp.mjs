// A real OpenID provider (oidc-provider, OpenID Certified) for keyward serve's proxy tests.
//
// Usage: node idp.mjs --port PORT --jwks FILE [--audience AUD] [--resource URI]
//                     [--client-id ID] [--client-secret SECRET] [--ttl SECONDS]
//
// Serves issuer http://127.0.0.1:PORT on 127.0.0.1 only: discovery at
// /.well-known/openid-configuration, keys at /jwks, tokens at /token. One client may use the
// client_credentials grant; one resource server (resource indicator RESOURCE) receives JWT
// access tokens (typ at+jwt, aud AUD) signed RS256 with the first key of FILE (a JWKS of
// private JWKs). A rotation is staged by restarting it with another FILE: [old], [new, old],
// [new]. Prints `ready ISSUER` on stdout once it listens; exits on SIGTERM/SIGINT or when its
// stdin closes (so a killed test never leaves it behind).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Provider, { errors } from 'oidc-provider';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    jwks: { type: 'string' },
    audience: { type: 'string', default: 'orders-api' },
    resource: { type: 'string', default: 'https://orders.keyward.test/' },
    'client-id': { type: 'string', default: 'keyward-interop' },
    'client-secret': { type: 'string', default: 'interop-secret-not-for-production' },
    ttl: { type: 'string', default: '600' },
  },
  strict: true,
});
const port = Number.parseInt(values.port ?? '', 10);
if (!Number.isInteger(port) || port < 1 || port > 65535 || !values.jwks) {
  console.error('usage: node idp.mjs --port PORT --jwks FILE [--audience AUD] [--resource URI]');
  process.exit(2);
}
const jwks = JSON.parse(readFileSync(values.jwks, 'utf8'));
if (!Array.isArray(jwks.keys) || jwks.keys.length === 0) {
  console.error(`${values.jwks}: a JWKS with at least one private key is required`);
  process.exit(2);
}
const ttl = Number.parseInt(values.ttl, 10);
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  jwks,
  // Fresh per start: no cookie of this test IdP outlives it.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  clients: [
    {
      client_id: values['client-id'],
      client_secret: values['client-secret'],
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  scopes: ['orders:read'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => values.resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resourceIndicator) => {
        if (resourceIndicator !== values.resource) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'orders:read',
          audience: values.audience,
          accessTokenTTL: ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
});
// Quiet: errors a test provokes on purpose are not worth a stack trace on stderr.
provider.on('server_error', (_ctx, err) => console.error(`server_error: ${err.message}`));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
server.on('error', (err) => {
  console.error(`listen ${issuer}: ${err.message}`);
  process.exit(1);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent holds our stdin open; when it goes away, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
