// A pass-through HTTP proxy that adds `Authorization: Bearer <key>` to every request, for the
// MCP conformance suite (it sends no credentials and kiln's /mcp requires a key). Everything
// else goes through unchanged, Host and Origin included (the DNS-rebinding scenario checks
// that kiln rejects a foreign Host), and bodies stream both ways without buffering (SSE).
// When either side closes, the other is closed too, so kiln sees a client that went away.
//
//   node auth_proxy.mjs --target http://127.0.0.1:PORT (--key KEY | --key-file PATH)
//                       [--listen 127.0.0.1:0] [--addr-file PATH]
//
// Prints "http://HOST:PORT" (the address it listens on) on stdout, and writes it to
// --addr-file when given. Plain node, no dependencies.
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';

function parseArgs(argv) {
  const args = { listen: '127.0.0.1:0' };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    const known = ['target', 'key', 'key-file', 'listen', 'addr-file'].includes(name);
    if (!known || i + 1 >= argv.length) {
      throw new Error(`unknown or incomplete option ${argv[i]}`);
    }
    args[name] = argv[i + 1];
  }
  if (!args.target || (!args.key && !args['key-file'])) {
    throw new Error('give --target URL and --key KEY or --key-file PATH');
  }
  return args;
}

let args;
try {
  args = parseArgs(process.argv.slice(2));
} catch (e) {
  console.error(`auth_proxy: ${e.message}`);
  process.exit(2);
}
const key = (args.key ?? readFileSync(args['key-file'], 'utf8')).trim();
const target = new URL(args.target);

// Hop-by-hop headers belong to one connection; node sets its own for each side.
const hopByHop = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade',
]);

function forwardHeaders(rawHeaders) {
  const out = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    if (!hopByHop.has(name) && name !== 'authorization') {
      out.push(rawHeaders[i], rawHeaders[i + 1]);
    }
  }
  return out;
}

const server = http.createServer((req, res) => {
  const headers = forwardHeaders(req.rawHeaders);
  headers.push('Authorization', `Bearer ${key}`);
  const upstream = http.request({
    host: target.hostname,
    port: target.port,
    method: req.method,
    path: req.url,
    headers,
    agent: false,
    setHost: false,
  });
  upstream.on('response', (up) => {
    res.writeHead(up.statusCode, up.statusMessage, forwardHeaders(up.rawHeaders));
    res.flushHeaders();
    up.pipe(res);
    // kiln dropped the connection mid-body: the client must see a broken stream, not an end.
    up.on('close', () => {
      if (!up.complete) {
        res.destroy();
      }
    });
  });
  upstream.on('error', (e) => {
    if (!res.headersSent) {
      res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`auth_proxy: ${target.host}: ${e.message}\n`);
    } else {
      res.destroy();
    }
  });
  req.pipe(upstream);
  // The client went away (a cancelled SSE reader): close the upstream connection too.
  res.on('close', () => {
    if (!res.writableFinished) {
      upstream.destroy();
    }
  });
});

const colon = args.listen.lastIndexOf(':');
server.listen(Number(args.listen.slice(colon + 1)), args.listen.slice(0, colon), () => {
  const address = server.address();
  const url = `http://${address.address}:${address.port}`;
  if (args['addr-file']) {
    writeFileSync(args['addr-file'], `${url}\n`);
  }
  console.log(url);
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
