// End-to-end: what an agent does with Kiln over MCP, through the official SDK's Client on
// Streamable HTTP against a real `kiln server` with real runc instances: create an app, deploy
// it from inline files (text and base64), wait until it is live, reach it through the
// gateway, read its logs, run a command in it; then a sandbox: create, run Python, kill.
// Needs root and runc (as the integration tests do).
// Run by CTest (mcp.agent_flow): KILN_BIN=build/kiln KILN_MCP_NODE_DIR=build/mcp-node \
//   build/mcp-node/bin/node tests/mcp/agent_flow.mjs
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  connectHttp, getWithHost, rest, resultText, startServer, toolData, toolError,
} from './lib.mjs';

const app = 'agent-e2e';
const greeting = 'hello from an MCP deploy';
const note = 'bytes sent as base64 \u2713';
const serverJs = `
const fs = require('fs');
const http = require('http');
http.createServer((req, res) => {
  console.log('request ' + req.method + ' ' + req.url);
  if (req.url === '/note') {
    res.end(fs.readFileSync(__dirname + '/public/note.txt'));
    return;
  }
  res.end(${JSON.stringify(greeting)});
}).listen(Number(process.env.PORT || 3000), () => console.log('listening on ' + process.env.PORT));
`;

let server;
let client;

// Calls a tool and answers its data; a failed call fails the test with the error's text.
async function call(name, args) {
  return toolData(await client.callTool({ name, arguments: args }), name);
}

before(async () => {
  server = await startServer({ name: 'agent' });
  client = await connectHttp(server);
});

after(async () => {
  await client?.close();
  await server?.stop();
});

test('apps_create, apps_deploy with inline files, live, served through the gateway', async () => {
  const created = await call('apps_create', { name: app, port: 8080 });
  assert.equal(created.name, app);

  const deployment = await call('apps_deploy', {
    app,
    files: [
      { path: 'server.js', content: serverJs },
      { path: 'public/note.txt', content: Buffer.from(note).toString('base64'),
        encoding: 'base64' },
    ],
    start: 'node server.js',
  });
  assert.match(deployment.id, /^dep_/, JSON.stringify(deployment));

  const deadline = Date.now() + 120_000;
  let status;
  for (;;) {
    status = await call('deployments_get', { id: deployment.id });
    if (status.status === 'live') {
      break;
    }
    if (['failed', 'cancelled', 'superseded'].includes(status.status) || Date.now() > deadline) {
      const logs = await client.callTool({ name: 'deployments_logs',
                                           arguments: { id: deployment.id } });
      assert.fail(`deployment ${deployment.id} is ${status.status} (not live within 120 s): ` +
                  `${JSON.stringify(status)}\nlogs: ${resultText(logs)}`);
    }
    await sleep(500);
  }

  const got = await call('apps_get', { app });
  assert.equal(got.status, 'running', JSON.stringify(got));
  const host = new URL(got.url).hostname;
  assert.equal(host, `${app}.localhost`);
  const page = await getWithHost(server.port, host, '/');
  assert.equal(page.status, 200, page.body);
  assert.equal(page.body, greeting);
  const noteAnswer = await getWithHost(server.port, host, '/note');
  assert.equal(noteAnswer.status, 200, noteAnswer.body);
  assert.equal(noteAnswer.body, note, 'the base64 file arrives as its bytes');
});

test('apps_logs returns the app\'s output', async () => {
  // Output reaches the log asynchronously: give it a few seconds.
  let text = '';
  for (let i = 0; i < 40; i++) {
    const logs = await client.callTool({ name: 'apps_logs', arguments: { app, lines: 100 } });
    text = resultText(logs);
    assert.notEqual(logs.isError, true, text);
    if (text.includes('request GET /note')) {
      break;
    }
    await sleep(250);
  }
  assert.match(text, /listening on 8080/);
  assert.match(text, /request GET \/note/);
});

test('apps_exec runs a command in the app\'s instance', async () => {
  const ran = await call('apps_exec', { app, command: 'echo hi; cat public/note.txt' });
  assert.equal(ran.exitCode, 0, JSON.stringify(ran));
  assert.equal(ran.stdout, `hi\n${note}`);
  assert.equal(ran.timedOut, false);
  const failed = await call('apps_exec', { app, argv: ['sh', '-c', 'echo oops >&2; exit 3'] });
  assert.equal(failed.exitCode, 3, JSON.stringify(failed));
  assert.equal(failed.stderr, 'oops\n');
});

test('sandboxes_create, sandboxes_exec runs Python, sandboxes_kill removes it', async () => {
  const sandbox = await call('sandboxes_create', { timeout: 300 });
  assert.match(sandbox.id, /^sbx_/, JSON.stringify(sandbox));
  assert.equal(sandbox.status, 'running', JSON.stringify(sandbox));

  const ran = await call('sandboxes_exec', { id: sandbox.id, command: "python3 -c 'print(6*7)'" });
  assert.equal(ran.exitCode, 0, JSON.stringify(ran));
  assert.equal(ran.stdout, '42\n');

  const refused = await client.callTool({ name: 'sandboxes_exec',
                                          arguments: { id: sandbox.id } });
  assert.equal(refused.isError, true, `exec with neither command nor argv: ${resultText(refused)}`);

  await call('sandboxes_kill', { id: sandbox.id });
  // A killed sandbox stays in the history with its end; nothing runs in it any more.
  const killed = await call('sandboxes_get', { id: sandbox.id });
  assert.equal(killed.status, 'killed', JSON.stringify(killed));
  const viaRest = await rest(server, 'GET', `/v1/sandboxes/${sandbox.id}`);
  assert.equal(viaRest.body?.data?.status, 'killed', viaRest.text);
  const late = await client.callTool({ name: 'sandboxes_exec',
                                       arguments: { id: sandbox.id, command: 'true' } });
  assert.equal(toolError(late).code, 'SANDBOX_NOT_RUNNING', resultText(late));
});

test('apps_delete with confirm stops and removes the app', async () => {
  await call('apps_delete', { app, confirm: app, purge: true });
  assert.equal((await rest(server, 'GET', `/v1/apps/${app}`)).status, 404);
  const page = await getWithHost(server.port, `${app}.localhost`, '/');
  assert.notEqual(page.body, greeting, 'the gateway still serves a deleted app');
});
