// The protected service of the proxy tests: answers every request 200 with a JSON echo of
// what it received (method, URL and every header line in order, repeated ones included), so a
// test sees exactly which X-Auth-* values the proxy forwarded and that no client copy survived.
// Usage: node upstream.mjs --port PORT (0: any free port). Prints `ready PORT`; exits when its
// stdin closes or on SIGTERM.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' } } });
const server = createServer((req, res) => {
  const headers = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
  }
  // The body is not read: bounded by not reading it at all.
  const body = JSON.stringify({ method: req.method, url: req.url, headers });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});
server.headersTimeout = 5000;
server.requestTimeout = 10000;
server.listen(Number.parseInt(values.port, 10), '127.0.0.1', () => {
  console.log(`ready ${server.address().port}`);
});
server.on('error', (err) => {
  console.error(`upstream: ${err.message}`);
  process.exit(1);
});
process.on('SIGTERM', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
