// Shared by the MCP end-to-end tests (sdk_client.mjs, agent_flow.mjs): the official MCP SDK
// loaded from the pinned npm project, a real `kiln server` on 127.0.0.1:0 in a temporary data
// directory, and small REST and tool-result helpers.
//
// Environment (CMakeLists.txt sets both):
//   KILN_BIN            the kiln binary
//   KILN_MCP_NODE_DIR   the npm project of tests/mcp/package.json after `npm ci` (the CTest
//                       fixture mcp.npm_install puts it in <build>/mcp-node)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const kilnBin = process.env.KILN_BIN;
const nodeDir = process.env.KILN_MCP_NODE_DIR;
if (!kilnBin || !nodeDir) {
  console.error('set KILN_BIN (the kiln binary) and KILN_MCP_NODE_DIR (the npm project with ' +
                'tests/mcp/package.json installed); ctest -L e2e sets both');
  process.exit(2);
}
if (!existsSync(join(nodeDir, 'node_modules', '@modelcontextprotocol', 'sdk'))) {
  console.error(`${nodeDir}/node_modules has no @modelcontextprotocol/sdk: run the CTest ` +
                'fixture mcp.npm_install (ctest -R mcp.npm_install) first');
  process.exit(2);
}

// The test files live in the source tree and node_modules in the build tree, so bare imports
// would not find the SDK: resolve it from the npm project instead (its CommonJS build, which
// the SDK ships beside the ES modules).
const requireSdk = createRequire(join(nodeDir, 'package.json'));
export const { Client } = requireSdk('@modelcontextprotocol/sdk/client/index.js');
export const { StreamableHTTPClientTransport } =
    requireSdk('@modelcontextprotocol/sdk/client/streamableHttp.js');
export const { StdioClientTransport } = requireSdk('@modelcontextprotocol/sdk/client/stdio.js');

// Starts `kiln server --listen 127.0.0.1:0` with a fresh data directory and the given TOML
// config text; resolves when it has written its address. Answers {url, port, adminKey,
// dataDir, dir, stop()}. stop() ends the server (SIGTERM), removes the instances it left with
// `kiln cleanup` and deletes the directory; it also runs if the test process exits first.
export async function startServer({ config = '', name = 'mcp' } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `kiln-e2e-${name}-`));
  const dataDir = join(dir, 'data');
  const configFile = join(dir, 'kiln.toml');
  // HTTPS off: the default port 8443 is shared by every server on this machine.
  writeFileSync(configFile, `[gateway]\ntls_port = 0\n\n${config}`);
  const logFile = join(dir, 'server.log');
  const log = [];
  const child = spawn(kilnBin, ['server', '--listen', '127.0.0.1:0', '--data-dir', dataDir,
                                '--config', configFile],
                      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => log.push(d));
  child.stderr.on('data', (d) => log.push(d));
  let exited = null;
  child.on('exit', (code, signal) => { exited = { code, signal }; });

  let stopped = false;
  const stopSync = () => {
    if (stopped) {
      return;
    }
    stopped = true;
    if (exited === null) {
      child.kill('SIGTERM');
    }
    spawnSync(kilnBin, ['cleanup', '--data-dir', dataDir], { stdio: 'ignore', timeout: 60000 });
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', stopSync);
  const serverLog = () => Buffer.concat(log).toString('utf8');

  const addrFile = join(dataDir, 'kiln.addr');
  for (let i = 0; ; i++) {
    if (existsSync(addrFile) && readFileSync(addrFile, 'utf8').trim() !== '') {
      break;
    }
    if (exited !== null || i > 400) {
      const tail = serverLog().split('\n').slice(-30).join('\n');
      stopSync();
      throw new Error(`kiln server did not start (exit ${JSON.stringify(exited)}):\n${tail}`);
    }
    await sleep(50);
  }
  const url = readFileSync(addrFile, 'utf8').split('\n')[0].trim();
  const adminKey = readFileSync(join(dataDir, 'admin.key'), 'utf8').split('\n')[0].trim();
  return {
    url,
    port: Number(new URL(url).port),
    adminKey,
    dataDir,
    dir,
    serverLog,
    async stop() {
      if (exited === null && !stopped) {
        const done = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        // Unreferenced: a pending timer would keep the test process alive after the tests.
        await Promise.race([done, sleep(30000, undefined, { ref: false })]);
      }
      if (process.env.KILN_E2E_SERVER_LOG) {
        writeFileSync(process.env.KILN_E2E_SERVER_LOG, serverLog());
      }
      stopSync();
      process.removeListener('exit', stopSync);
    },
  };
}

// A REST call with the key: answers {status, body} with the body parsed when it is JSON.
export async function rest(server, method, path, { key = server.adminKey, body } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(server.url + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON: callers look at text
  }
  return { status: res.status, body: json, text };
}

// A plain HTTP GET with a Host header of our choosing (fetch does not let us set Host).
export function getWithHost(port, host, path = '/') {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { Host: host } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
                                    body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error(`GET http://${host}${path} timed out`)));
  });
}

// An MCP client over Streamable HTTP at <url>/mcp with the key as a bearer token.
export async function connectHttp(server, key = server.adminKey) {
  const client = new Client({ name: 'kiln-e2e', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', server.url), {
    requestInit: { headers: { Authorization: `Bearer ${key}` } },
  });
  await client.connect(transport);
  return client;
}

// An MCP client that talks to `kiln mcp` (the stdio bridge) started with KILN_URL and
// KILN_API_KEY, and a HOME with no saved profile.
export async function connectStdio(server, key = server.adminKey) {
  const client = new Client({ name: 'kiln-e2e-stdio', version: '1.0.0' });
  const transport = new StdioClientTransport({
    command: kilnBin,
    args: ['mcp'],
    env: { KILN_URL: server.url, KILN_API_KEY: key, HOME: server.dir },
    stderr: 'inherit',
  });
  await client.connect(transport);
  return client;
}

// Every tool, following nextCursor; also answers how many pages it took.
export async function listAllTools(client) {
  const tools = [];
  let cursor;
  let pages = 0;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    pages += 1;
    tools.push(...page.tools);
    cursor = page.nextCursor;
    if (pages > 1000) {
      throw new Error('tools/list never ends: nextCursor keeps coming');
    }
  } while (cursor);
  return { tools, pages };
}

// The text of a tool result's first content block.
export function resultText(result) {
  const block = (result.content ?? []).find((c) => c.type === 'text');
  return block ? block.text : '';
}

// A failed tool result's {code, message, hint}, or throws with the result when it did not fail.
export function toolError(result) {
  if (result.isError !== true) {
    throw new Error(`expected isError: true, got ${JSON.stringify(result)}`);
  }
  const parsed = JSON.parse(resultText(result));
  if (!parsed.error) {
    throw new Error(`an error result without {"error": ...}: ${resultText(result)}`);
  }
  return parsed.error;
}

// The data of a tool result that succeeded (structuredContent, or the text parsed as JSON);
// throws with the error when it failed.
export function toolData(result, what = 'tool call') {
  if (result.isError) {
    throw new Error(`${what} failed: ${resultText(result)}`);
  }
  return result.structuredContent ?? JSON.parse(resultText(result));
}
