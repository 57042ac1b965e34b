// End-to-end: the official MCP SDK's Client against a real `kiln server`, over Streamable HTTP
// (POST /mcp with the key as a bearer token) and over stdio (`kiln mcp`, the bridge). Both
// transports list every tool across pages and check them against the server's OpenAPI
// document, read and write through tools and compare with REST, and see the error results an
// agent acts on (APP_NOT_FOUND, CONFIRMATION_REQUIRED). A read-only key sees only the tools
// its scopes allow.
// Run by CTest (mcp.sdk_client): KILN_BIN=build/kiln KILN_MCP_NODE_DIR=build/mcp-node \
//   build/mcp-node/bin/node tests/mcp/sdk_client.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  connectHttp, connectStdio, listAllTools, rest, resultText, startServer, toolData, toolError,
} from './lib.mjs';

const kPageSize = 10;
let server;
let operations;  // operationId → {scopes, annotations}, the service operations of OpenAPI

before(async () => {
  server = await startServer({ name: 'sdk', config: `[mcp]\ntools_page_size = ${kPageSize}\n` });
  const doc = await rest(server, 'GET', '/v1/openapi.json');
  assert.equal(doc.status, 200, doc.text);
  operations = new Map();
  for (const methods of Object.values(doc.body.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      // /healthz, /metrics and the document itself are the listener's, not operations.
      if (['get', 'post', 'put', 'patch', 'delete'].includes(method) && op['x-kiln-scopes']) {
        operations.set(op.operationId, { scopes: op['x-kiln-scopes'],
                                         annotations: op['x-kiln-annotations'] });
      }
    }
  }
  assert.ok(operations.size > 3 * kPageSize, `only ${operations.size} operations in OpenAPI`);
});

after(async () => {
  await server?.stop();
});

const transports = [
  ['Streamable HTTP', (key) => connectHttp(server, key)],
  ['stdio (kiln mcp)', (key) => connectStdio(server, key)],
];

for (const [transportName, connect] of transports) {
  describe(`over ${transportName}`, () => {
    let client;
    const app = transportName.startsWith('stdio') ? 'e2e-stdio' : 'e2e-http';
    before(async () => {
      client = await connect();
    });
    after(async () => {
      await client?.close();
    });

    test('initialize names kiln and offers tools', () => {
      assert.equal(client.getServerVersion()?.name, 'kiln');
      assert.ok(client.getServerCapabilities()?.tools, 'no tools capability');
    });

    test('tools/list pages through one tool per operation, each well-formed', async () => {
      const { tools, pages } = await listAllTools(client);
      assert.equal(pages, Math.ceil(operations.size / kPageSize), 'pages of tools/list');
      const names = tools.map((t) => t.name);
      assert.equal(new Set(names).size, names.length, `duplicate tool names: ${names}`);
      assert.equal(tools.length, operations.size, 'one tool per operation of /v1/openapi.json');
      assert.deepEqual([...names].sort(), [...operations.keys()].sort());
      for (const t of tools) {
        assert.match(t.name, /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/, `${t.name} is not snake_case`);
        assert.ok(t.name.length <= 64, `${t.name} is longer than 64 characters`);
        assert.ok(t.description && t.description.length > 0, `${t.name} has no description`);
        assert.equal(t.inputSchema?.type, 'object', `${t.name}: inputSchema ${JSON.stringify(t.inputSchema)}`);
        assert.ok(t.annotations, `${t.name} has no annotations`);
        const op = operations.get(t.name);
        assert.equal(t.annotations.readOnlyHint, op.annotations.readOnly, `${t.name} readOnlyHint`);
        assert.equal(typeof t.annotations.destructiveHint, 'boolean', `${t.name} destructiveHint`);
        assert.equal(typeof t.annotations.idempotentHint, 'boolean', `${t.name} idempotentHint`);
        assert.equal(typeof t.annotations.openWorldHint, 'boolean', `${t.name} openWorldHint`);
        if (op.annotations.destructive) {
          assert.equal(t.annotations.destructiveHint, true, `${t.name} destructiveHint`);
        }
      }
    });

    test('me_get answers what GET /v1/me answers', async () => {
      const result = await client.callTool({ name: 'me_get', arguments: {} });
      const viaRest = await rest(server, 'GET', '/v1/me');
      assert.equal(viaRest.status, 200, viaRest.text);
      assert.deepEqual(toolData(result, 'me_get'), viaRest.body.data);
      assert.deepEqual(result.structuredContent, viaRest.body.data);
    });

    test('apps_create makes an app that REST sees; apps_list matches GET /v1/apps', async () => {
      const result = await client.callTool({ name: 'apps_create', arguments: { name: app } });
      const created = toolData(result, 'apps_create');
      assert.equal(created.name, app);
      assert.match(created.id, /^app_/);
      const viaRest = await rest(server, 'GET', `/v1/apps/${app}`);
      assert.equal(viaRest.status, 200, viaRest.text);
      assert.equal(viaRest.body.data.id, created.id);
      assert.equal(viaRest.body.data.name, app);

      const listed = await client.callTool({ name: 'apps_list', arguments: {} });
      const restList = await rest(server, 'GET', '/v1/apps');
      assert.equal(restList.status, 200, restList.text);
      assert.deepEqual(listed.structuredContent, {
        items: restList.body.data,
        has_more: restList.body.has_more,
        next_cursor: restList.body.next_cursor,
      });
      assert.ok(listed.structuredContent.items.some((a) => a.id === created.id));
    });

    test('apps_get of a missing app is an error result with APP_NOT_FOUND and a hint', async () => {
      const result = await client.callTool({ name: 'apps_get', arguments: { app: 'no-such-app' } });
      const error = toolError(result);
      assert.equal(error.code, 'APP_NOT_FOUND', resultText(result));
      assert.ok(error.message, `no message: ${resultText(result)}`);
      assert.ok(error.hint, `no hint: ${resultText(result)}`);
    });

    test('apps_delete needs confirm with the exact name, then deletes', async () => {
      const refused = await client.callTool({ name: 'apps_delete', arguments: { app } });
      const error = toolError(refused);
      assert.equal(error.code, 'CONFIRMATION_REQUIRED', resultText(refused));
      assert.ok(error.hint, `no hint: ${resultText(refused)}`);
      assert.equal((await rest(server, 'GET', `/v1/apps/${app}`)).status, 200, 'deleted anyway');

      const wrong = await client.callTool({ name: 'apps_delete',
                                            arguments: { app, confirm: `${app}-x` } });
      assert.equal(toolError(wrong).code, 'CONFIRMATION_REQUIRED', resultText(wrong));

      const deleted = await client.callTool({ name: 'apps_delete',
                                              arguments: { app, confirm: app } });
      assert.notEqual(deleted.isError, true, resultText(deleted));
      const gone = await rest(server, 'GET', `/v1/apps/${app}`);
      assert.equal(gone.status, 404, gone.text);
      assert.equal(gone.body.error.code, 'APP_NOT_FOUND');
    });

    test('a read-only key sees only the tools its scopes allow, none that change things', async () => {
      const minted = await rest(server, 'POST', '/v1/keys',
                                { body: { name: `read-only ${app}`, scopes: ['read'] } });
      assert.equal(minted.status, 201, minted.text);
      const readKey = minted.body.data.secret;
      const readClient = await connect(readKey);
      try {
        const { tools } = await listAllTools(readClient);
        const allowed = [...operations]
            .filter(([, op]) => op.scopes.every((s) => s === 'read'))
            .map(([name]) => name);
        assert.deepEqual(tools.map((t) => t.name).sort(), allowed.sort());
        const me = await rest(server, 'GET', '/v1/me', { key: readKey });
        assert.deepEqual(tools.map((t) => t.name).sort(),
                         me.body.data.capabilities.map((c) => c.replace(/[.-]/g, '_')).sort(),
                         'tools/list and GET /v1/me capabilities disagree');
        for (const t of tools) {
          assert.equal(t.annotations.destructiveHint, false, `read key sees destructive ${t.name}`);
          const { scopes } = operations.get(t.name);
          assert.ok(!scopes.some((s) => ['write', 'exec', 'admin'].includes(s)),
                    `read key sees ${t.name}, which needs ${scopes}`);
          // The one tool every key has that is not read-only is auth_token (no scope needed:
          // it swaps the caller's own key for a JWT).
          assert.ok(t.annotations.readOnlyHint || scopes.length === 0,
                    `read key sees ${t.name} with readOnlyHint false`);
        }
        for (const name of ['apps_create', 'apps_delete', 'sandboxes_create', 'sandboxes_exec']) {
          assert.ok(!tools.some((t) => t.name === name), `read key sees ${name}`);
        }
        // Calling a tool it was not shown is refused with what to do, and nothing is created.
        const refused = await readClient.callTool({ name: 'apps_create',
                                                    arguments: { name: `${app}-ro` } });
        const error = toolError(refused);
        assert.equal(error.code, 'MISSING_SCOPE', resultText(refused));
        assert.ok(error.hint, `no hint: ${resultText(refused)}`);
        assert.equal((await rest(server, 'GET', `/v1/apps/${app}-ro`)).status, 404);
      } finally {
        await readClient.close();
      }
    });
  });
}
