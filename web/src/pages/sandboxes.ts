// Sandboxes: the list with filters and the create form; one sandbox with its lifecycle
// (pause, resume, extend, kill), an exec console and a file browser.

import { ApiError, del, get, list, post, send, seg } from '../api';
import { actionButton, field, h, onSubmit, replace } from '../dom';
import { ago, badge, bytes, timeEl } from '../format';
import { navigate, type PageContext } from '../router';
import { postStream, streamError } from '../sse';
import type { FileEntry, Sandbox, Template } from '../types';
import { empty, errorBox, every, notify, outcome, section, table } from '../ui';

export function sandboxLink(id: string): string {
  return `/sandboxes/${encodeURIComponent(id)}`;
}

function metadataText(m: Record<string, string> | undefined): string {
  return Object.entries(m ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

function sandboxRows(items: Sandbox[]): HTMLElement {
  if (items.length === 0) {
    return empty('No sandboxes match.');
  }
  return table(
    ['Sandbox', 'Status', 'Template', 'Started', 'Expires', 'Metadata'],
    items.map((s) => [
      h('a', { href: sandboxLink(s.id), class: 'strong mono' }, s.id),
      badge(s.status),
      s.template,
      timeEl(s.startedAt),
      s.status === 'running' || s.status === 'paused' ? timeEl(s.expiresAt) : h('span', { class: 'muted' }, s.endReason ?? s.status),
      h('span', { class: 'mono small-text' }, metadataText(s.metadata)),
    ]),
    { 'aria-label': 'Sandboxes' },
  );
}

// "key=value key2=value2" → {key: value, key2: value2}
function parseMetadata(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(/[\s,]+/).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) {
      throw new Error(`metadata "${part}" is not KEY=VALUE`);
    }
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

export async function sandboxesPage(ctx: PageContext): Promise<Node> {
  document.title = 'Sandboxes · Kiln';
  const status = h(
    'select',
    { name: 'status' },
    h('option', { value: '' }, 'live (running and paused)'),
    ['running', 'paused', 'killed', 'expired', 'failed', 'all'].map((s) => h('option', { value: s }, s)),
  );
  const meta = h('input', {
    name: 'metadata',
    placeholder: 'KEY=VALUE …',
    title: 'labels given at create, KEY=VALUE, space-separated',
    spellcheck: 'false',
    autocomplete: 'off',
    class: 'mono',
  });
  status.value = ctx.query.get('status') ?? '';
  const holder = h('div');
  const load = async () => {
    const query: Record<string, string | number> = { limit: 100 };
    if (status.value) {
      query.status = status.value;
    }
    for (const [k, v] of Object.entries(parseMetadata(meta.value))) {
      query[`metadata.${k}`] = v;
    }
    const page = await list<Sandbox>('/v1/sandboxes', { query });
    if (!ctx.disposed) {
      replace(holder, sandboxRows(page.data));
    }
  };
  const filters = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter sandboxes' },
    field('Status', status),
    field('Metadata', meta),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Filter')),
  );
  const run = async () => {
    try {
      await load();
    } catch (e) {
      replace(holder, errorBox(e));
    }
  };
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    run();
  });
  status.addEventListener('change', run);
  await run();
  every(5000, load, ctx.onDispose);

  // Create.
  const templates = await list<Template>('/v1/templates').catch(() => ({ data: [] as Template[] }));
  const template = h(
    'select',
    { name: 'template' },
    (templates.data.length ? templates.data : [{ name: 'base', status: 'ready' } as Template]).map((t) =>
      h('option', { value: t.name }, t.status === 'ready' ? t.name : `${t.name} (${t.status.replace('_', ' ')})`),
    ),
  );
  const timeout = h('input', { type: 'number', min: '1', max: '86400', value: '300', inputmode: 'numeric' });
  const network = h('select', null, h('option', { value: 'none' }, 'none (loopback only)'), h('option', { value: 'egress' }, 'egress (outbound internet)'));
  const createMeta = h('input', { placeholder: 'owner=me', spellcheck: 'false', autocomplete: 'off', class: 'mono' });
  const result = outcome();
  const create = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Create a sandbox' },
    field('Template', template),
    field('Timeout (seconds)', timeout),
    field('Network', network),
    field('Metadata', createMeta, 'KEY=VALUE labels, space-separated'),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create sandbox')),
    result,
  );
  onSubmit(create, async () => {
    result.show(h('p', { class: 'info', role: 'status' }, 'Starting…'));
    try {
      const sbx = await post<Sandbox>('/v1/sandboxes', {
        template: template.value,
        timeout: Number(timeout.value) || 300,
        network: network.value,
        metadata: parseMetadata(createMeta.value),
      });
      navigate(sandboxLink(sbx.id));
    } catch (err) {
      result.show(errorBox(err));
    }
  });

  return h(
    'div',
    { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Sandboxes')),
    filters,
    holder,
    section('Create a sandbox', create),
  );
}

// ---- One sandbox ----

// Commands stop streaming when `signal` aborts (the page is left, or the sandbox ended).
function execConsole(base: string, signal: AbortSignal): HTMLElement {
  const output = h('div', { class: 'log console', role: 'log', 'aria-live': 'polite', 'aria-label': 'Console output', tabindex: '0' });
  const command = h('input', {
    name: 'command',
    class: 'mono',
    autocomplete: 'off',
    spellcheck: 'false',
    autocapitalize: 'off',
    placeholder: 'ls -la /',
  });
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run');
  const history: string[] = [];
  let back = 0;
  const print = (text: string, cls: string) => {
    const atEnd = output.scrollHeight - output.scrollTop - output.clientHeight < 24;
    output.appendChild(h('span', { class: cls }, text));
    if (atEnd) {
      output.scrollTop = output.scrollHeight;
    }
  };
  const form = h(
    'form',
    { class: 'console-form', 'aria-label': 'Run a command' },
    h('label', { for: 'console-command', class: 'prompt' }, '$'),
    command,
    run,
  );
  command.id = 'console-command';
  command.setAttribute('aria-label', 'Command');
  command.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowUp' && history.length > 0) {
      back = Math.min(history.length, back + 1);
      command.value = history[history.length - back];
      e.preventDefault();
    } else if (e.key === 'ArrowDown') {
      back = Math.max(0, back - 1);
      command.value = back ? history[history.length - back] : '';
      e.preventDefault();
    }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = command.value.trim();
    if (!text) {
      return;
    }
    history.push(text);
    back = 0;
    command.value = '';
    run.disabled = true;
    print(`$ ${text}\n`, 'console-cmd');
    let ended = false;
    try {
      await postStream(`${base}/exec`, { command: text }, (name, data) => {
        const d = data as { data?: string; exitCode?: number; durationMs?: number; timedOut?: boolean; truncated?: boolean };
        if (name === 'stdout' || name === 'stderr') {
          print(d.data ?? '', name === 'stderr' ? 'log-stderr' : 'console-out');
        } else if (name === 'exit') {
          ended = true;
          const notes = [d.timedOut ? 'timed out' : '', d.truncated ? 'output truncated' : ''].filter(Boolean).join(', ');
          print(`[exit ${d.exitCode ?? '?'} · ${d.durationMs ?? 0} ms${notes ? ` · ${notes}` : ''}]\n`, d.exitCode === 0 ? 'console-exit' : 'console-exit console-fail');
        } else if (name === 'error') {
          // The exec failed after its stream began (the sandbox was killed under it, say).
          ended = true;
          const e = streamError(data);
          print(`error: ${e.message}${e.hint ? ` (${e.hint})` : ''}\n`, 'log-stderr');
        }
      }, { signal });
      if (!ended) {
        print('[the connection ended before the command did]\n', 'console-exit console-fail');
      }
    } catch (err) {
      const msg = err instanceof ApiError ? `${err.message}${err.hint ? ` (${err.hint})` : ''}` : String(err);
      print(`error: ${msg}\n`, 'log-stderr');
    } finally {
      run.disabled = false;
      command.focus();
    }
  });
  return h('div', { class: 'console-wrap' }, output, form);
}

function parentOf(path: string): string {
  const trimmed = path.replace(/\/+$/, '');
  const i = trimmed.lastIndexOf('/');
  return i <= 0 ? '/' : trimmed.slice(0, i);
}

function joinPath(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}

function fileBrowser(base: string): { el: HTMLElement; load(path: string): Promise<void> } {
  let dir = '/root';
  const pathInput = h('input', { class: 'mono', value: dir, spellcheck: 'false', autocomplete: 'off' });
  const listing = h('div');
  const viewer = h('div');
  const result = outcome();

  const view = async (entry: FileEntry) => {
    try {
      const response = await send('GET', `${base}/files`, { query: { path: entry.path }, headers: { Accept: '*/*' } });
      const blob = await response.blob();
      const head = new Uint8Array(await blob.slice(0, 8192).arrayBuffer());
      const binary = head.includes(0);
      const text = binary ? '' : await blob.slice(0, 1024 * 1024).text();
      replace(
        viewer,
        h(
          'div',
          { class: 'file-view' },
          h('h3', null, h('code', null, entry.path), ' ', h('span', { class: 'muted' }, bytes(blob.size))),
          binary
            ? h('p', { class: 'muted' }, 'A binary file: not shown.')
            : h('pre', { class: 'file-text', tabindex: '0', 'aria-label': `Contents of ${entry.path}` }, text, blob.size > 1024 * 1024 ? '\n… (first 1 MiB shown)' : ''),
        ),
      );
    } catch (e) {
      replace(viewer, errorBox(e));
    }
  };

  // Folders opened quickly one after another answer in any order: only the last one asked
  // for is shown.
  let asked = 0;
  const load = async (path: string) => {
    const mine = ++asked;
    try {
      const data = await get<{ path: string; entries: FileEntry[] }>(`${base}/files/list`, { query: { path, depth: 1 } });
      if (mine !== asked) {
        return;
      }
      dir = data.path || path;
      pathInput.value = dir;
      const entries = [...(data.entries ?? [])].sort((a, b) =>
        a.type === b.type ? a.name.localeCompare(b.name) : a.type === 'directory' ? -1 : 1,
      );
      const up = dir !== '/'
        ? [[h('button', { type: 'button', class: 'link', onclick: () => load(parentOf(dir)) }, '..'), 'directory', '', '', '']]
        : [];
      replace(
        listing,
        table(
          ['Name', 'Type', 'Size', 'Modified', ''],
          [
            ...up,
            ...entries.map((f) => [
              f.type === 'directory'
                ? h('button', { type: 'button', class: 'link', onclick: () => load(f.path), 'aria-label': `Open folder ${f.name}` }, `${f.name}/`)
                : h('button', { type: 'button', class: 'link', onclick: () => view(f), 'aria-label': `View ${f.name}` }, f.name),
              f.type,
              f.type === 'directory' ? '' : bytes(f.size),
              f.mtime ? h('span', { title: f.mtime }, ago(f.mtime)) : '',
              actionButton(
                'Delete',
                async () => {
                  if (!window.confirm(`Delete ${f.path}?`)) {
                    return;
                  }
                  try {
                    await del(`${base}/files`, { query: { path: f.path } });
                    notify(`Deleted ${f.path}`);
                    await load(dir);
                  } catch (e) {
                    result.show(errorBox(e));
                  }
                },
                { class: 'small danger', 'aria-label': `Delete ${f.name}` },
              ),
            ]),
          ],
          { 'aria-label': `Files in ${dir}` },
        ),
        entries.length === 0 ? empty('This folder is empty.') : null,
      );
    } catch (e) {
      if (mine === asked) {
        replace(listing, errorBox(e));
      }
    }
  };

  const go = h('form', { class: 'path-form', 'aria-label': 'Go to a folder' }, field('Folder', pathInput), h('button', { type: 'submit' }, 'Open'));
  onSubmit(go, () => load(pathInput.value.trim() || '/'));

  const upload = h('input', { type: 'file', multiple: true, class: 'file-input' });
  upload.addEventListener('change', async () => {
    const files = Array.from(upload.files ?? []);
    upload.value = '';
    for (const f of files) {
      try {
        await send('PUT', `${base}/files`, { query: { path: joinPath(dir, f.name) }, body: f, headers: { 'Content-Type': 'application/octet-stream' } });
        notify(`Uploaded ${f.name}`);
      } catch (e) {
        result.show(errorBox(e));
      }
    }
    await load(dir);
  });

  return {
    el: h(
      'div',
      { class: 'files' },
      h('div', { class: 'toolbar' }, go, h('label', { class: 'button' }, 'Upload files', upload)),
      result,
      listing,
      viewer,
    ),
    load,
  };
}

export async function sandboxPage(ctx: PageContext): Promise<Node> {
  const id = ctx.params.id;
  const base = `/v1/sandboxes/${seg(id)}`;
  let sbx = await get<Sandbox>(base);
  if (ctx.disposed) {
    return h('div');
  }
  document.title = `${sbx.id} · Kiln`;
  const facts = h('div');
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Lifecycle' });
  const result = outcome();

  const refresh = async () => {
    sbx = await get<Sandbox>(base);
    if (!ctx.disposed) {
      render();
    }
  };
  const act = async (what: () => Promise<unknown>, done: string) => {
    try {
      await what();
      result.clear();
      notify(done);
    } catch (e) {
      result.show(errorBox(e));
    }
    await refresh().catch(() => {});
  };
  const live = () => sbx.status === 'running' || sbx.status === 'paused';

  // The console and the files, while the sandbox lives. When it ends (killed here or
  // elsewhere, expired), they give way to a note and a command still streaming stops.
  const wasLive = live();
  const stop = new AbortController();
  ctx.onDispose(() => stop.abort());
  const files = fileBrowser(base);
  const consoleHolder = h('div', null, execConsole(base, stop.signal));
  const filesHolder = h('div', null, files.el);
  let ended = !wasLive;
  const showEnded = () => {
    if (ended || live()) {
      return;
    }
    ended = true;
    stop.abort();
    const note = `The sandbox is ${sbx.status}: nothing runs in it any more.`;
    replace(consoleHolder, empty(note));
    replace(filesHolder, empty(note));
  };

  const render = () => {
    const u = sbx.usage;
    replace(
      facts,
      h(
        'dl',
        { class: 'facts' },
        h('dt', null, 'Status'),
        h('dd', null, badge(sbx.status), sbx.endReason ? ` (${sbx.endReason})` : ''),
        h('dt', null, 'Template'),
        h('dd', null, sbx.template),
        h('dt', null, 'Started'),
        h('dd', null, timeEl(sbx.startedAt)),
        h('dt', null, live() ? 'Expires' : 'Ended'),
        h('dd', null, timeEl(live() ? sbx.expiresAt : sbx.endedAt)),
        h('dt', null, 'Network'),
        h('dd', null, sbx.network),
        h('dt', null, 'Resources'),
        h('dd', null, `${sbx.resources.memoryMb} MiB · ${sbx.resources.cpus} CPU${sbx.resources.pids ? ` · ${sbx.resources.pids} processes` : ''}`),
        u && u.memoryBytes !== undefined ? [h('dt', null, 'Memory in use'), h('dd', null, bytes(u.memoryBytes))] : null,
        Object.keys(sbx.metadata ?? {}).length ? [h('dt', null, 'Metadata'), h('dd', { class: 'mono' }, metadataText(sbx.metadata))] : null,
      ),
    );
    replace(
      actions,
      sbx.status === 'running' ? actionButton('Pause', () => act(() => post(`${base}/pause`), 'Paused')) : null,
      sbx.status === 'paused' ? actionButton('Resume', () => act(() => post(`${base}/resume`), 'Resumed')) : null,
      live() ? actionButton('Extend 10 min', () => act(() => post(`${base}/timeout`, { timeout: 600 }), 'Expires in 10 minutes')) : null,
      live()
        ? actionButton(
            'Kill',
            async () => {
              if (window.confirm(`Kill sandbox ${sbx.id}? Its files are removed.`)) {
                await act(() => del(base), 'Killed');
              }
            },
            { class: 'danger' },
          )
        : null,
    );
    showEnded();
  };
  render();
  every(5000, refresh, ctx.onDispose);
  if (wasLive) {
    files.load('/root');
  }

  return h(
    'div',
    { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '/sandboxes' }, 'Sandboxes'), ' / '),
    h('div', { class: 'page-head' }, h('h1', { class: 'mono' }, sbx.id), actions),
    result,
    section('Overview', facts),
    wasLive ? section('Console', consoleHolder) : null,
    wasLive ? section('Files', filesHolder) : null,
  );
}
