// End-to-end tests of the web dashboard (issue 7): playwright-core drives Debian's Chromium
// (/usr/bin/chromium, headless, a fresh user-data dir) against a real `kiln server` that
// serves the built front end (<build>/web). Each test does what a user does, by the page's
// labels and roles, and checks the outcome on the page and, where the page could lie, through
// the REST API or the gateway. Screenshots of each main page go to <build>/screenshots/.
//
// The tests run in order and build on each other (one server, one browser, one app):
// sign-in (a wrong key first), create an app, deploy it by dropping a .tar.gz and open its
// URL, the live log of a second deploy, a failing deploy, a server restart under an open page,
// a masked secret, rollback, the apps list (also at 375 px), a sandbox console, a file upload,
// keys, injection attempts, the activity feed, every main page at 375 px, killing the sandbox,
// and an expired session.
//
// Environment (CMakeLists.txt sets all three):
//   KILN_BIN            the kiln binary
//   KILN_BUILD_DIR      the build directory: dashboard in web/, screenshots to screenshots/
//   KILN_WEB_NODE_DIR   the npm project of tests/web/package.json after `npm ci` (the CTest
//                       fixture web.npm_install puts it in <build>/web-tests-node)
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const kilnBin = process.env.KILN_BIN;
const buildDir = process.env.KILN_BUILD_DIR;
const nodeDir = process.env.KILN_WEB_NODE_DIR;
if (!kilnBin || !buildDir || !nodeDir) {
  console.error('set KILN_BIN (the kiln binary), KILN_BUILD_DIR (the build directory with ' +
                'web/) and KILN_WEB_NODE_DIR (tests/web/package.json installed); ctest -L e2e ' +
                'sets all three');
  process.exit(2);
}
if (!existsSync(join(nodeDir, 'node_modules', 'playwright-core'))) {
  console.error(`${nodeDir}/node_modules has no playwright-core: run the CTest fixture ` +
                'web.npm_install (ctest -R web.npm_install) first');
  process.exit(2);
}
const dashboardDir = join(buildDir, 'web');
if (!existsSync(join(dashboardDir, 'index.html'))) {
  console.error(`${dashboardDir}/index.html is missing: build the dashboard first ` +
                `(cmake --build ${buildDir} --target web)`);
  process.exit(2);
}
const { chromium } = createRequire(join(nodeDir, 'package.json'))('playwright-core');

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const shotsDir = join(buildDir, 'screenshots');
mkdirSync(shotsDir, { recursive: true });

const kApp = 'hello-e2e';
const kGreetingV1 = 'Hello from Kiln!\n'; // examples/hello
const kGreetingV2 = 'Hello again, from release two\n';
// What an attacker would put in a name, a value or a log line, hoping the page makes it markup.
const kImgAttack = '<img src=x onerror=alert(1)>';
const kScriptAttack = '<script>alert(2)</script>';
const kSvgAttack = '<svg/onload=alert(3)>';

// ---- The server ----

const work = mkdtempSync(join(tmpdir(), 'kiln-e2e-web-'));
const dataDir = join(work, 'data');
const configFile = join(work, 'kiln.toml');
// HTTPS off: the default port 8443 is shared by every server on this machine.
// Stats points every second, so the plots fill within the test.
writeFileSync(configFile, `[gateway]\ntls_port = 0\n\n[apps]\nstats_interval_seconds = 1\n\n` +
                          `[server]\ndashboard_dir = ${JSON.stringify(dashboardDir)}\n`);
const serverLog = [];
let child = null;
let exited = null;

// Starts `kiln server` on `listen` with the test's data directory; resolves with its URL
// when it has written its address.
async function startServer(listen) {
  const addrFile = join(dataDir, 'kiln.addr');
  rmSync(addrFile, { force: true });
  exited = null;
  child = spawn(kilnBin, ['server', '--listen', listen, '--data-dir', dataDir,
                          '--config', configFile],
                { cwd: work, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => serverLog.push(d));
  child.stderr.on('data', (d) => serverLog.push(d));
  const me = child;
  child.on('exit', (code, signal) => {
    if (me === child) {
      exited = { code, signal };
    }
  });
  for (let i = 0; ; i++) {
    if (existsSync(addrFile) && readFileSync(addrFile, 'utf8').trim() !== '') {
      break;
    }
    if (exited !== null || i > 600) {
      throw new Error(`kiln server did not start (exit ${JSON.stringify(exited)}):\n` +
                      logTail());
    }
    await sleep(50);
  }
  return readFileSync(addrFile, 'utf8').split('\n')[0].trim();
}

async function stopServer() {
  if (child && exited === null) {
    const done = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([done, sleep(30000, undefined, { ref: false })]);
  }
}

function logTail(lines = 40) {
  return Buffer.concat(serverLog).toString('utf8').split('\n').slice(-lines).join('\n');
}

let cleanedUp = false;
function cleanupSync() {
  if (cleanedUp) {
    return;
  }
  cleanedUp = true;
  if (child && exited === null) {
    child.kill('SIGTERM');
  }
  spawnSync(kilnBin, ['cleanup', '--data-dir', dataDir], { stdio: 'ignore', timeout: 60000 });
  writeFileSync(join(buildDir, 'web-e2e-server.log'), Buffer.concat(serverLog));
  rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanupSync);

let url = ''; // http://127.0.0.1:PORT
let port = 0;
let adminKey = '';

async function rest(method, path, { key = adminKey, body } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  const res = await fetch(url + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body: json, text };
}

// A GET through the gateway with Host: <host> (fetch does not let a caller set Host).
function getWithHost(host, path = '/') {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { Host: host } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode,
                                    body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error(`GET http://${host}${path} timed out`)));
  });
}

// ---- Sources to deploy ----

function tarGz(dir, name) {
  const out = join(work, name);
  const r = spawnSync('tar', ['czf', out, '-C', dir, '.'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tar czf ${out}: ${r.stderr}`);
  return out;
}

function writeApp(name, files) {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  for (const [path, text] of Object.entries(files)) {
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

// Release two: a build that takes a few seconds and writes lines on the way (so the log can
// be watched while it runs, one of them an injection attempt), and a server that logs each
// request (so a followed runtime log shows new lines on demand).
function releaseTwo() {
  return writeApp('v2', {
    'package.json': JSON.stringify({
      name: 'hello-v2',
      version: '2.0.0',
      private: true,
      scripts: {
        build: `echo build-begins; sleep 6; echo '${kScriptAttack}'; echo build-done`,
        start: 'node server.js',
      },
    }),
    'server.js': `const http = require('http');
const port = Number(process.env.PORT) || 3000;
http.createServer((req, res) => {
  console.log('request ' + req.url);
  res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(${JSON.stringify(kGreetingV2)});
}).listen(port, () => console.log('v2 listening on port ' + port));
process.on('SIGTERM', () => process.exit(0));
`,
  });
}

function failingRelease() {
  return writeApp('broken', {
    'package.json': JSON.stringify({
      name: 'broken',
      version: '1.0.0',
      private: true,
      scripts: { build: 'echo about-to-fail; exit 7', start: 'node server.js' },
    }),
    'server.js':
        'require("http").createServer((q, s) => s.end("never")).listen(process.env.PORT);\n',
  });
}

// ---- The browser ----

let context = null;
let page = null;
const dialogs = []; // every dialog any page opened: {type, message}
const expectedConfirms = []; // prefixes of confirm() texts the next steps accept
const responses = []; // {url, status, body} of every /v1 answer the pages got

function watchPage(p) {
  p.on('dialog', async (dialog) => {
    dialogs.push({ type: dialog.type(), message: dialog.message() });
    const i = expectedConfirms.findIndex((prefix) => dialog.message().startsWith(prefix));
    if (dialog.type() === 'confirm' && i >= 0) {
      expectedConfirms.splice(i, 1);
      await dialog.accept();
    } else {
      await dialog.dismiss();
    }
  });
  p.on('pageerror', (e) => console.error(`page error: ${e.message}`));
}

async function screenshot(p, name) {
  await p.screenshot({ path: join(shotsDir, `${name}.png`), fullPage: true });
}

// Polls `fn` until it answers a truthy value; fails with `what` after `ms`.
async function waitFor(fn, what, ms = 30000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) {
        return last;
      }
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    }
    await sleep(200);
  }
}

async function signIn(p, key) {
  await p.getByLabel('API key').fill(key);
  await p.getByRole('button', { name: 'Sign in' }).click();
}

async function gotoNav(p, name) {
  await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name }).click();
}

// Whether the log of deployment `id` on the app page has a line that is exactly `text`.
async function hasLine(p, id, text) {
  return (await deploymentLog(p, id)).some((l) => l.trim() === text);
}

// The text of the log of deployment `id` on the app page, one entry per line.
async function deploymentLog(p, id) {
  return p.getByRole('log', { name: `Log of deployment ${id}` }).locator('.log-text')
    .allTextContents();
}

async function waitDeployment(id, want, ms = 180000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const r = await rest('GET', `/v1/deployments/${id}`);
    const status = r.body?.data?.status;
    if (status === want) {
      return r.body.data;
    }
    if (['failed', 'cancelled'].includes(status) || Date.now() > deadline) {
      const logs = await rest('GET', `/v1/deployments/${id}/logs`);
      throw new Error(`deployment ${id} is ${status}, not ${want}: ${r.text}\n${logs.text}`);
    }
    await sleep(300);
  }
}

// Uploads a .tar.gz through the page's file picker; answers the deployment it started.
async function deployByPicker(p, archive) {
  const answer = p.waitForResponse((r) => r.request().method() === 'POST' &&
                                          r.url().endsWith(`/v1/apps/${kApp}/deployments`));
  await p.getByLabel('Choose a .tar.gz').setInputFiles(archive);
  const res = await answer;
  assert.equal(res.status(), 202, await res.text());
  return (await res.json()).data;
}

let sandboxId = '';
const firstDeployment = {};

before(async () => {
  url = await startServer('127.0.0.1:0');
  port = Number(new URL(url).port);
  adminKey = readFileSync(join(dataDir, 'admin.key'), 'utf8').split('\n')[0].trim();
  const profile = mkdtempSync(join(work, 'chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run'],
    viewport: { width: 1280, height: 900 },
  });
  context.on('page', watchPage);
  context.on('response', async (r) => {
    if (!r.url().includes('/v1/')) {
      return;
    }
    try {
      responses.push({ url: r.url(), status: r.status(), body: await r.text() });
    } catch {
      // a stream still open when its page closed
    }
  });
  page = context.pages()[0] ?? await context.newPage();
  watchPage(page);
});

after(async () => {
  await context?.close().catch(() => {});
  await stopServer();
  cleanupSync();
});

// ---- The tests ----

test('a wrong key shows the error on the sign-in form; the admin key signs in', async () => {
  await page.goto(url + '/');
  await page.getByRole('heading', { name: 'Sign in to Kiln' }).waitFor();
  await screenshot(page, 'signin');

  await signIn(page, 'kiln_sk_thisisnotakey0000000000000000');
  const alert = page.getByRole('alert');
  await alert.waitFor();
  const text = await alert.innerText();
  assert.ok(text.trim().length > 10, `the error says what went wrong: "${text}"`);
  // Still the sign-in form (not a blank page), ready for another try.
  assert.ok(await page.getByLabel('API key').isVisible());
  assert.ok(await page.getByRole('button', { name: 'Sign in' }).isEnabled());
  assert.equal((await context.cookies()).filter((c) => c.name === 'kiln_session').length, 0,
                'a wrong key sets no session cookie');
  await screenshot(page, 'signin-error');

  await signIn(page, adminKey);
  await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
  const me = await rest('GET', '/v1/me');
  const ws = me.body.data.workspace;
  const header = await page.getByRole('banner').innerText();
  assert.ok(header.includes(ws.name || ws.slug),
            `the header names workspace ${ws.name}: ${header}`);
  assert.ok(await page.getByRole('button', { name: 'Sign out' }).isVisible());

  // The session is an HttpOnly, SameSite=Strict cookie that page scripts cannot read.
  const cookie = (await context.cookies()).find((c) => c.name === 'kiln_session');
  assert.ok(cookie, 'signing in sets kiln_session');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.ok(!(await page.evaluate(() => document.cookie)).includes('kiln_session'));
  assert.ok(!(await page.content()).includes(adminKey), 'the key is not left in the page');
});

test('the apps page creates an app', async () => {
  await page.getByText('No apps yet').waitFor();
  const form = page.getByRole('form', { name: 'Create an app' });
  await form.getByLabel('Name').fill(kApp);
  await form.getByRole('button', { name: 'Create app' }).click();
  await page.getByRole('heading', { name: kApp, level: 1 }).waitFor();
  assert.equal(new URL(page.url()).pathname, `/apps/${kApp}`);
  assert.equal((await rest('GET', `/v1/apps/${kApp}`)).status, 200, 'the app exists');

  await gotoNav(page, 'Apps');
  const row = page.getByRole('table', { name: 'Apps' }).getByRole('row').filter({ hasText: kApp });
  await row.waitFor();
  assert.match(await row.innerText(), /created/);
  assert.match(await row.innerText(), /not deployed/);
});

test('dropping a .tar.gz of examples/hello deploys it; its URL opens the app', async () => {
  await page.getByRole('link', { name: kApp, exact: true }).click();
  await page.getByRole('heading', { name: kApp, level: 1 }).waitFor();
  const archive = tarGz(join(repoRoot, 'examples', 'hello'), 'hello.tar.gz');
  const bytes = readFileSync(archive).toString('base64');
  const answer = page.waitForResponse((r) => r.request().method() === 'POST' &&
                                             r.url().endsWith(`/v1/apps/${kApp}/deployments`));
  // A drop as the browser makes it: a DataTransfer holding the file.
  const dataTransfer = await page.evaluateHandle((b64) => {
    const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([raw], 'hello.tar.gz', { type: 'application/gzip' }));
    return dt;
  }, bytes);
  const posts = [];
  const countPosts = (r) => {
    if (r.method() === 'POST' && r.url().endsWith(`/v1/apps/${kApp}/deployments`)) {
      posts.push(r.url());
    }
  };
  page.on('request', countPosts);
  // Dropped twice in a row (an impatient user): one deployment, and the second drop says why.
  // The upload is held until both drops are in: a small archive on a fast machine could
  // otherwise be deployed before the second drop, which may then rightly deploy again.
  let release;
  const released = new Promise((resolve) => { release = resolve; });
  const deployments = `**/v1/apps/${kApp}/deployments`;
  await page.route(deployments, async (route) => {
    await released;
    await route.continue();
  });
  await page.getByTestId('dropzone').dispatchEvent('drop', { dataTransfer });
  await page.getByTestId('dropzone').dispatchEvent('drop', { dataTransfer });
  release();
  const res = await answer;
  await page.unroute(deployments);
  assert.equal(res.status(), 202, await res.text());
  page.off('request', countPosts);
  assert.equal(posts.length, 1, 'a second drop while the first uploads starts no second deploy');
  const dep = (await res.json()).data;
  assert.equal(dep.source?.type, 'upload', JSON.stringify(dep));
  Object.assign(firstDeployment, dep);

  await waitDeployment(dep.id, 'live');
  const current = page.getByRole('region', { name: 'Current deployment' });
  await current.getByText('Deployed: the release is live.').waitFor({ timeout: 30000 });
  await page.getByRole('region', { name: 'Overview' }).locator('.badge', { hasText: 'running' })
    .waitFor({ timeout: 30000 });
  const app = (await rest('GET', `/v1/apps/${kApp}`)).body.data;
  firstDeployment.release = app.release.id;

  // The URL on the page is a link that opens the app (Chromium resolves *.localhost).
  const link = page.getByRole('region', { name: 'Overview' }).getByRole('link', { name: app.url });
  await link.waitFor({ timeout: 30000 });
  assert.equal(new URL(app.url).hostname, `${kApp}.localhost`);
  const [tab] = await Promise.all([context.waitForEvent('page'), link.click()]);
  await tab.waitForLoadState();
  assert.equal((await tab.evaluate(() => document.body.innerText)).trim(), kGreetingV1.trim());
  await tab.close();
  const viaGateway = await getWithHost(`${kApp}.localhost`);
  assert.equal(viaGateway.body, kGreetingV1);
  await screenshot(page, 'app');
});

test('a second deploy by file picker shows its log live while it runs', async () => {
  const archive = tarGz(releaseTwo(), 'v2.tar.gz');
  const dep = await deployByPicker(page, archive);
  const log = page.getByRole('log', { name: `Log of deployment ${dep.id}` });
  await log.waitFor();
  const status = page.getByRole('region', { name: 'Current deployment' }).locator('.log-status');
  // The build writes build-begins, sleeps 6 s, then build-done: the first line must show up
  // before the second exists, i.e. while the deployment runs.
  const seen = await waitFor(async () => {
    const lines = await deploymentLog(page, dep.id);
    return lines.some((l) => l.trim() === 'build-begins') &&
           { lines, status: await status.innerText() };
  }, 'build-begins in the live log', 120000);
  assert.ok(!seen.lines.some((l) => l.trim() === 'build-done'),
            `the log arrived only at the end: ${seen.lines.join(' | ')}`);
  assert.match(seen.status, /^Live/, 'the log says it is following');
  const running = await rest('GET', `/v1/deployments/${dep.id}`);
  assert.ok(['queued', 'building', 'deploying'].includes(running.body.data.status),
            `the deployment still runs: ${running.text}`);

  await waitDeployment(dep.id, 'live');
  await waitFor(() => hasLine(page, dep.id, 'build-done'), 'build-done in the log');
  await status.getByText('Deployed: the release is live.').waitFor({ timeout: 30000 });
  // The steps show with their durations.
  const steps = await page.getByRole('list', { name: 'Steps' }).innerText();
  assert.match(steps, /build/);
  assert.match(steps, /\d+(\.\d+)? (ms|s)/, `steps with durations: ${steps}`);
  await waitFor(async () => (await getWithHost(`${kApp}.localhost`)).body === kGreetingV2,
                'the gateway to serve release two', 30000);
});

test('a failing deploy shows the failing step and its log; the app keeps serving', async () => {
  const dep = await deployByPicker(page, tarGz(failingRelease(), 'broken.tar.gz'));
  const current = page.getByRole('region', { name: 'Current deployment' });
  await current.getByText('Failed at step').waitFor({ timeout: 120000 });
  const failed = await current.locator('.failed-step').innerText();
  assert.match(failed, /build/, `the failing step is named: ${failed}`);
  await current.getByRole('alert').waitFor();
  await waitFor(() => hasLine(page, dep.id, 'about-to-fail'),
                'the failed build\'s output in its log');
  assert.equal((await rest('GET', `/v1/deployments/${dep.id}`)).body.data.status, 'failed');
  assert.equal((await getWithHost(`${kApp}.localhost`)).body, kGreetingV2);
  await screenshot(page, 'app-failed-deploy');
});

test('the followed runtime log reconnects after the server restarts', async () => {
  const runtime = page.getByRole('log', { name: `Runtime log of ${kApp}` });
  const status = page.getByRole('region', { name: 'Runtime logs' }).locator('.log-status');
  await status.getByText(/^Following/).waitFor();
  const before = `/before-${Date.now()}`;
  await getWithHost(`${kApp}.localhost`, before);
  await runtime.getByText(`request ${before}`).waitFor({ timeout: 30000 });

  await stopServer();
  assert.equal(await startServer(url.replace('http://', '')), url);
  await waitFor(async () => (await getWithHost(`${kApp}.localhost`)).body === kGreetingV2,
                'the app to answer after the restart', 120000);
  // The page's stream is back: a request made now shows up in the log without a reload.
  const later = `/after-restart-${Date.now()}`;
  await waitFor(async () => {
    await getWithHost(`${kApp}.localhost`, later);
    return runtime.getByText(`request ${later}`).first().isVisible();
  }, 'a request after the restart in the followed runtime log', 90000);
  assert.match(await status.innerText(), /^Following/);
  // Still signed in: the session outlives the restart.
  assert.ok(await page.getByRole('button', { name: 'Sign out' }).isVisible());
});

test('a secret env var is masked: its value is in no page and no API answer', async () => {
  const secretValue = `s3cret-${Math.random().toString(36).slice(2)}-value`;
  const env = page.getByRole('form', { name: 'Set an environment variable' });
  await env.getByLabel('Key').fill('API_TOKEN');
  await env.getByLabel('Secret').check();
  assert.equal(await env.getByLabel('Value').getAttribute('type'), 'password',
               'a secret is typed into a password field');
  await env.getByLabel('Value').fill(secretValue);
  await env.getByRole('button', { name: 'Save variable' }).click();
  const table = page.getByRole('table', { name: 'Environment variables' });
  const row = table.getByRole('row').filter({ hasText: 'API_TOKEN' });
  await row.waitFor();
  assert.match(await row.innerText(), /secret/);
  assert.ok(await row.getByText('hidden secret value').count() === 1, 'the value is masked');
  assert.equal(await env.getByLabel('Value').inputValue(), '', 'the form forgets the value');

  // A plain value next to it, which is an injection attempt: shown as text.
  await env.getByLabel('Key').fill('GREETING_HTML');
  await env.getByLabel('Value').fill(kImgAttack);
  await env.getByRole('button', { name: 'Save variable' }).click();
  await table.getByText(kImgAttack, { exact: true }).waitFor();

  await page.reload();
  await page.getByRole('table', { name: 'Environment variables' }).getByText('API_TOKEN').waitFor();
  await sleep(500); // the answers of the reload reach `responses`
  assert.ok(responses.some((r) => r.url.endsWith(`/v1/apps/${kApp}/env`) &&
                                  r.body.includes('API_TOKEN')),
            'the recorder saw the page load the env list');
  for (const r of responses) {
    assert.ok(!r.body.includes(secretValue), `the secret came back in ${r.url}`);
  }
  assert.ok(!(await page.content()).includes(secretValue), 'the secret is in the page');
  const stored = await rest('GET', `/v1/apps/${kApp}/env`);
  const v = stored.body.data.vars.find((x) => x.key === 'API_TOKEN');
  assert.equal(v.secret, true, stored.text);
  assert.equal(v.value, null, stored.text);
  await page.getByRole('region', { name: 'Environment' }).screenshot({
    path: join(shotsDir, 'app-env.png') });
});

test('rolling back to the first release serves it again', async () => {
  const history = page.getByRole('table', { name: 'Deployments' });
  await history.waitFor();
  expectedConfirms.push(`Roll ${kApp} back`);
  const answer = page.waitForResponse((r) => r.url().endsWith(`/v1/apps/${kApp}/rollback`),
                                      { timeout: 120000 });
  await history.getByRole('button', { name: `Roll back to deployment ${firstDeployment.id}` })
    .click();
  const res = await answer;
  assert.equal(res.status(), 200, await res.text());
  const back = (await res.json()).data;
  assert.equal(back.kind, 'rollback', JSON.stringify(back));
  await waitDeployment(back.id, 'live');
  await waitFor(async () => (await getWithHost(`${kApp}.localhost`)).body === kGreetingV1,
                'the gateway to serve the first release again', 30000);
  const overview = page.getByRole('region', { name: 'Overview' });
  await overview.getByText(firstDeployment.release).waitFor({ timeout: 30000 });
  assert.equal(dialogs.filter((d) => d.type === 'confirm').length, 1, 'rollback asks first');
  await screenshot(page, 'app-rolled-back');
});

test('the plots show the server\'s history of requests, latency, CPU and memory', async () => {
  const history = async () => (await rest('GET', `/v1/apps/${kApp}/stats`)).body.data.points;
  const sum = (points) => points.reduce((n, p) => n + p.requests, 0);
  const before = sum(await history());
  for (let i = 0; i < 40; i++) {
    assert.equal((await getWithHost(`${kApp}.localhost`)).status, 200);
  }
  let points = [];
  await waitFor(async () => sum(points = await history()) >= before + 40,
                'the server\'s history to count the 40 requests', 15000);
  const busiest = Math.max(...points.map((p) => p.rps));
  assert.ok(busiest > 0, JSON.stringify(points));

  const overview = page.getByRole('region', { name: 'Overview' });
  // "Requests over the last 5 min: now 0.00 req/s, highest 12.3 req/s"
  const highest = async (title) => {
    const label = await overview.getByRole('img', { name: new RegExp(`^${title} over the last`) })
      .getAttribute('aria-label', { timeout: 1000 }).catch(() => null);
    const m = label && label.match(/highest ([\d.]+)/);
    return m ? Number(m[1]) : 0;
  };
  // The page polls: its Requests plot reaches the busiest second the server recorded.
  await waitFor(async () => (await highest('Requests')) >= busiest * 0.95,
                `the Requests plot to show ${busiest} req/s`, 20000);
  assert.ok((await highest('Latency')) > 0, 'the latency of those requests');
  assert.ok((await highest('Memory')) > 1, 'the app\'s memory in MiB');
  const requests = overview.getByRole('img', { name: /^Requests over the last/ });
  assert.ok(await requests.locator('polyline').count() >= 1, 'a line is drawn');
  await overview.screenshot({ path: join(shotsDir, 'app-plots.png') });
});

test('a change made elsewhere shows in the app page\'s forms without a reload', async () => {
  await page.goto(`${url}/apps/${kApp}`);
  const policy = page.getByLabel('Who can open it');
  const memory = page.getByLabel('Memory (MiB)');
  assert.equal(await policy.inputValue(), 'public');
  const memoryBefore = await memory.inputValue();
  const changed = await rest('PATCH', `/v1/apps/${kApp}`, { body: { accessPolicy: 'workspace' } });
  assert.equal(changed.status, 200, changed.text);
  try {
    // The page refreshes every 5 s; nothing on it is touched meanwhile.
    await waitFor(async () => (await policy.inputValue()) === 'workspace',
                  'the policy select to follow the change', 20000);
    assert.equal(await memory.inputValue(), memoryBefore, 'an unchanged setting stays');
  } finally {
    const back = await rest('PATCH', `/v1/apps/${kApp}`, { body: { accessPolicy: 'public' } });
    assert.equal(back.status, 200, back.text);
  }
});

test('the apps list shows status, URL, release and last deploy, also at 375 px', async () => {
  await gotoNav(page, 'Apps');
  const app = (await rest('GET', `/v1/apps/${kApp}`)).body.data;
  const row = page.getByRole('table', { name: 'Apps' }).getByRole('row').filter({ hasText: kApp });
  await row.getByRole('link', { name: app.url }).waitFor();
  const text = await row.innerText();
  assert.match(text, /running/);
  assert.ok(text.includes(app.release.id.slice(0, 12)), `the release ${app.release.id}: ${text}`);
  assert.match(text, /live/, 'the last deploy\'s status');
  await screenshot(page, 'apps');

  await page.setViewportSize({ width: 375, height: 812 });
  try {
    await row.getByRole('link', { name: app.url }).waitFor();
    await screenshot(page, 'apps-375');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375, `the apps page scrolls sideways at 375 px (${width} px wide)`);
    assert.ok(await row.getByRole('link', { name: kApp, exact: true }).isVisible());
  } finally {
    await page.setViewportSize({ width: 1280, height: 900 });
  }
});

test('a sandbox from the page runs a command in its console', async () => {
  await gotoNav(page, 'Sandboxes');
  const form = page.getByRole('form', { name: 'Create a sandbox' });
  await form.getByLabel('Metadata').fill(`note=${kSvgAttack}`);
  await form.getByRole('button', { name: 'Create sandbox' }).click();
  await page.waitForURL(/\/sandboxes\/sbx_/, { timeout: 120000 });
  sandboxId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
  await page.getByRole('heading', { name: sandboxId, level: 1 }).waitFor();

  const consoleOut = page.getByRole('log', { name: 'Console output' });
  await page.getByRole('textbox', { name: 'Command' })
    .fill('echo kiln-$((6*7)); echo oops >&2; exit 3');
  await page.getByRole('button', { name: 'Run' }).click();
  await consoleOut.getByText('kiln-42').waitFor({ timeout: 60000 });
  await consoleOut.getByText(/\[exit 3/).waitFor();
  const text = await consoleOut.innerText();
  assert.match(text, /\$ echo kiln-\$\(\(6\*7\)\)/, 'the command is echoed');
  assert.match(text, /oops/, 'stderr shows too');
  assert.equal(await consoleOut.locator('.log-stderr', { hasText: 'oops' }).count(), 1,
               'stderr is marked as stderr');
  await screenshot(page, 'sandbox');
});

test('a file uploaded in the file browser reads back', async () => {
  const files = page.getByRole('region', { name: 'Files' });
  const content = `line one\n<b>not bold</b>\n${Date.now()}\n`;
  await files.getByLabel('Upload files').setInputFiles({
    name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from(content) });
  await files.getByRole('button', { name: 'View notes.txt' }).click();
  const viewer = files.getByLabel('Contents of /root/notes.txt');
  await viewer.waitFor();
  assert.equal(await viewer.textContent(), content);
  // It is really in the sandbox.
  const ran = await rest('POST', `/v1/sandboxes/${sandboxId}/exec`,
                         { body: { command: 'cat /root/notes.txt' } });
  assert.equal(ran.body?.data?.stdout, content, ran.text);
  await screenshot(page, 'sandbox-files');
});

test('a minted key is shown once, works, and stops working when revoked', async () => {
  await gotoNav(page, 'Keys');
  await page.getByRole('heading', { name: 'API keys' }).waitFor();
  const form = page.getByRole('form', { name: 'Mint a key' });
  await form.getByLabel('Name').fill('ci-e2e');
  // A double click mints one key, not two.
  await form.getByRole('button', { name: 'Mint key' }).dblclick();
  const secretField = page.getByLabel('Secret of key ci-e2e');
  await secretField.waitFor();
  await sleep(500); // a second POST, if the page sent one, has been answered
  const minted = (await rest('GET', '/v1/keys?limit=100')).body.data
    .filter((k) => k.name === 'ci-e2e');
  assert.equal(minted.length, 1, `a double click minted ${minted.length} keys`);
  const secret = await secretField.inputValue();
  assert.match(secret, /^kiln_sk_/);
  assert.ok(await page.getByRole('button', { name: 'Copy' }).isVisible());
  assert.equal((await rest('GET', '/v1/me', { key: secret })).status, 200, 'the new key works');
  await screenshot(page, 'keys');

  // Shown once: after a reload the secret is nowhere.
  await page.reload();
  const row = page.getByRole('table', { name: 'API keys' }).getByRole('row')
    .filter({ hasText: 'ci-e2e' });
  await row.waitFor();
  assert.ok(!(await page.content()).includes(secret), 'the secret is shown again');
  assert.equal(await page.getByLabel('Secret of key ci-e2e').count(), 0);

  expectedConfirms.push('Revoke key ci-e2e');
  await row.getByRole('button', { name: 'Revoke key ci-e2e' }).click();
  await row.getByText('revoked').waitFor({ timeout: 30000 });
  assert.equal(await row.getByRole('button', { name: 'Revoke key ci-e2e' }).count(), 0);
  assert.equal((await rest('GET', '/v1/me', { key: secret })).status, 401,
               'the revoked key still works');
});

// Fails when an element that one of the attacks would make is in the page.
async function assertNoMarkup(p, where) {
  const made = await p.evaluate(() => Array.from(document.querySelectorAll(
    'img[src="x"], img[onerror], svg[onload], script:not([src])')).map((e) => e.outerHTML));
  assert.deepEqual(made, [], `an injected element made it into the DOM of the ${where}`);
}

test('injection attempts render as text and run nothing', async () => {
  // A key name, a file name, a sandbox label, an env value and a build log line.
  await gotoNav(page, 'Keys');
  const form = page.getByRole('form', { name: 'Mint a key' });
  await form.getByLabel('Name').fill(kImgAttack);
  await form.getByRole('button', { name: 'Mint key' }).click();
  await page.getByRole('table', { name: 'API keys' }).getByText(kImgAttack, { exact: true })
    .waitFor();
  await assertNoMarkup(page, 'keys page');

  await page.goto(`${url}/sandboxes/${sandboxId}`);
  const files = page.getByRole('region', { name: 'Files' });
  await files.getByRole('table').waitFor();
  await files.getByLabel('Upload files').setInputFiles({
    name: kImgAttack, mimeType: 'text/plain', buffer: Buffer.from(kScriptAttack) });
  await files.getByRole('button', { name: `View ${kImgAttack}` }).click();
  const viewer = files.getByLabel(`Contents of /root/${kImgAttack}`);
  await viewer.waitFor();
  assert.equal(await viewer.textContent(), kScriptAttack);
  await page.getByRole('textbox', { name: 'Command' }).fill(`ls /root; echo '${kSvgAttack}'`);
  await page.getByRole('button', { name: 'Run' }).click();
  const consoleOut = page.getByRole('log', { name: 'Console output' });
  await consoleOut.getByText(/\[exit 0/).waitFor();
  const printed = await consoleOut.innerText();
  assert.ok(printed.includes(`${kImgAttack}\n`), `ls lists the file by its name: ${printed}`);
  assert.ok(printed.includes(`\n${kSvgAttack}\n`), `echo's output as text: ${printed}`);
  await assertNoMarkup(page, 'sandbox page');

  await gotoNav(page, 'Sandboxes');
  await page.getByRole('table', { name: 'Sandboxes' }).getByText(`note=${kSvgAttack}`).waitFor();
  await assertNoMarkup(page, 'sandboxes list');

  await page.goto(`${url}/apps/${kApp}`);
  await page.getByRole('table', { name: 'Environment variables' })
    .getByText(kImgAttack, { exact: true }).waitFor();
  // The log of release two, with the <script> line its build echoed.
  const v2 = (await rest('GET', `/v1/apps/${kApp}/deployments`)).body.data
    .find((d) => d.kind === 'deploy' && d.status === 'superseded' && d.id !== firstDeployment.id);
  assert.ok(v2, 'release two is in the history');
  await page.getByRole('button', { name: `Show deployment ${v2.id}` }).click();
  await page.getByRole('log', { name: `Log of deployment ${v2.id}` })
    .getByText(kScriptAttack, { exact: true }).waitFor();
  await assertNoMarkup(page, 'app page');

  await gotoNav(page, 'Activity');
  await page.getByRole('list', { name: 'Activity' }).getByText(kImgAttack).first().waitFor();

  await assertNoMarkup(page, 'activity feed');
  // And no injected script ever ran: no page opened a dialog other than the app's confirms.
  await sleep(500);
  assert.deepEqual(dialogs.filter((d) => d.type !== 'confirm'), [],
                   'an injected script opened a dialog');
});

test('the activity feed lists what happened', async () => {
  await page.goto(`${url}/activity`);
  const feed = page.getByRole('list', { name: 'Activity' });
  await feed.getByText('key.revoked').first().waitFor();
  for (const type of ['app.created', 'key.created', 'sandbox.created']) {
    assert.ok(await feed.getByText(type, { exact: true }).count() > 0, `${type} is listed`);
  }
  assert.ok(await feed.getByRole('link', { name: kApp, exact: true }).count() > 0,
            'app events link the app');
  // Deployments and env changes name their app, not its id; actors are key names.
  const live = feed.getByRole('listitem').filter({ hasText: 'deployment.live' }).first();
  assert.ok(await live.getByRole('link', { name: kApp, exact: true }).isVisible(),
            `a deployment names its app: ${await live.innerText()}`);
  const envSet = feed.getByRole('listitem').filter({ hasText: 'app.env_set' }).first();
  assert.ok(await envSet.getByRole('link', { name: kApp, exact: true }).isVisible());
  const feedText = await feed.innerText();
  assert.ok(!feedText.includes('app=app_'), `no raw app ids: ${feedText}`);
  assert.match(await live.innerText(), /by admin/, 'the actor is the admin key by name');
  // Fewer than a page of events: nothing more to load, so no button that would load the
  // first page again.
  assert.equal(await page.getByRole('button', { name: 'Load more' }).isVisible(), false,
               '"Load more" shows with no more events');
  await screenshot(page, 'activity');
});

test('"Load more" brings the next page of the feed and focus moves to it', async () => {
  // More than a page (50) of events: keys made and revoked.
  for (let i = 0; i < 30; ++i) {
    const made = await rest('POST', '/v1/keys', { body: { name: `feed-${i}` } });
    assert.equal(made.status, 201, made.text);
    const id = made.body.data.id;
    const revoked = await rest('DELETE', `/v1/keys/${id}?confirm=${id}`);
    assert.ok(revoked.status < 300, revoked.text);
  }
  await page.goto(`${url}/activity`);
  const items = page.getByRole('list', { name: 'Activity' }).getByRole('listitem');
  await items.nth(49).waitFor();
  assert.equal(await items.count(), 50, 'the first page holds 50 events');
  await page.getByRole('button', { name: 'Load more' }).click();
  await items.nth(50).waitFor();
  const focused = await page.evaluate(() =>
    [...document.querySelectorAll('ol.feed > li')].indexOf(document.activeElement));
  assert.equal(focused, 50, 'focus is on the first event that "Load more" brought');
});

test('every main page fits 375 px without scrolling sideways', async () => {
  await page.setViewportSize({ width: 375, height: 812 });
  try {
    const pages = [
      [`/apps/${kApp}`, page.getByRole('table', { name: 'Environment variables' }), 'app-375'],
      ['/sandboxes', page.getByRole('table', { name: 'Sandboxes' }), null],
      [`/sandboxes/${sandboxId}`, page.getByRole('region', { name: 'Files' }).getByRole('table'),
       'sandbox-375'],
      ['/templates', page.getByRole('table', { name: 'Templates' }), null],
      ['/keys', page.getByRole('table', { name: 'API keys' }), null],
      ['/activity', page.getByRole('list', { name: 'Activity' }), null],
    ];
    for (const [path, ready, shot] of pages) {
      await page.goto(url + path);
      await ready.waitFor();
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 375, `${path} scrolls sideways at 375 px (${width} px wide)`);
      if (shot) {
        await screenshot(page, shot);
      }
    }
  } finally {
    await page.setViewportSize({ width: 1280, height: 900 });
  }
});

test('killing a sandbox from its page ends its console and file browser', async () => {
  await page.goto(`${url}/sandboxes/${sandboxId}`);
  await page.getByRole('textbox', { name: 'Command' }).waitFor();
  expectedConfirms.push(`Kill sandbox ${sandboxId}`);
  await page.getByRole('button', { name: 'Kill' }).click();
  const note = /nothing runs in it any more/;
  await page.getByRole('region', { name: 'Console' }).getByText(note).waitFor();
  await page.getByRole('region', { name: 'Files' }).getByText(note).waitFor();
  assert.equal(await page.getByRole('textbox', { name: 'Command' }).count(), 0,
               'the console of a killed sandbox still takes commands');
  assert.equal((await rest('GET', `/v1/sandboxes/${sandboxId}`)).body?.data?.status, 'killed');
});

test('an expired session goes back to sign-in, not a blank page', async () => {
  // Sign out in another tab: this tab's next call finds no session.
  await page.goto(`${url}/apps`);
  await page.getByRole('heading', { name: 'Apps', level: 1 }).waitFor();
  const other = await context.newPage();
  await other.goto(`${url}/keys`);
  await other.getByRole('button', { name: 'Sign out' }).click();
  await other.getByText('You are signed out.').waitFor();
  await other.close();

  await gotoNav(page, 'Keys');
  await page.getByText('Your session expired. Sign in again.').waitFor();
  assert.ok(await page.getByLabel('API key').isVisible());
  await screenshot(page, 'signin-expired');

  // Signing in again works from there, and a lost cookie on reload shows sign-in too.
  await signIn(page, adminKey);
  await page.getByRole('navigation', { name: 'Main' }).waitFor();
  await context.clearCookies();
  await page.goto(`${url}/apps/${kApp}`);
  await page.getByLabel('API key').waitFor();
  assert.ok(await page.getByRole('button', { name: 'Sign in' }).isVisible());
});
