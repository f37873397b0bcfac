// The Node peer of the serve benchmark: the forward-auth endpoint a team would write on `jose`.
// GET|any /auth with `Authorization: Bearer <jwt>` -> 200 + X-Auth-Subject, else 401.
// Keys come from createRemoteJWKSet on the jwks_uri discovered from the issuer, as keyward does.
// Usage: node server.mjs --issuer ISS --audience AUD --listen 127.0.0.1:PORT [--workers N]
// --workers N (default: the core count) forks N processes with node:cluster sharing the port:
// one Node process uses one core for JavaScript, so a single process would be an unfair peer.
import cluster from 'node:cluster';
import http from 'node:http';
import os from 'node:os';
import { createRemoteJWKSet, jwtVerify } from 'jose';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) {
    console.error(`missing --${name}`);
    process.exit(2);
  }
  return fallback;
}

const issuer = arg('issuer');
const audience = arg('audience');
const [host, port] = arg('listen').split(':');
const workers = Number(arg('workers', String(os.availableParallelism())));

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  let ready = 0;
  cluster.on('listening', () => {
    ready += 1;
    if (ready === workers) console.log(`jose peer: ${workers} workers on ${host}:${port}`);
  });
  cluster.on('exit', (_w, code) => {
    console.error(`jose peer: a worker exited (${code}); stopping`);
    process.exit(1);
  });
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
    process.exit(0);
  });
} else {
  const discovery = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(5000),
  });
  if (!discovery.ok) {
    console.error(`jose peer: discovery answered ${discovery.status}`);
    process.exit(1);
  }
  const { jwks_uri: jwksUri } = await discovery.json();
  // jose's defaults: 5 s timeout, 30 s cooldown between refetches, 10 min max age.
  const jwks = createRemoteJWKSet(new URL(jwksUri));
  const options = { issuer, audience, algorithms: ['RS256'] };

  // Every answer is empty with an explicit Content-Length: 0. Without it Node answers chunked, and
  // behind nginx's kept-alive upstream connections that cost ~40 ms a request (2k req/s).
  const server = http.createServer(async (req, res) => {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer ([A-Za-z0-9._~+/=-]{1,8192})$/.exec(header);
    if (!m) {
      res.writeHead(401, { 'WWW-Authenticate': 'Bearer realm="default"', 'Cache-Control': 'no-store', 'Content-Length': '0' });
      res.end();
      return;
    }
    try {
      const { payload } = await jwtVerify(m[1], jwks, options);
      res.writeHead(200, {
        'X-Auth-Subject': typeof payload.sub === 'string' ? payload.sub : '',
        'Cache-Control': 'no-store',
        'Content-Length': '0',
      });
      res.end();
    } catch (e) {
      res.writeHead(401, {
        'WWW-Authenticate': `Bearer realm="default", error="invalid_token"`,
        'X-Keyward-Reason': e.code ?? 'invalid',
        'Cache-Control': 'no-store',
        'Content-Length': '0',
      });
      res.end();
    }
  });
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  server.listen(Number(port), host, () => {
    if (workers <= 1) console.log(`jose peer: 1 process on ${host}:${port}`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
