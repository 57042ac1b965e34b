// Templates: the list with status and size, a build form, and a build's live log.

import { del, list, post, seg } from '../api';
import { actionButton, field, h, onSubmit, replace } from '../dom';
import { badge, bytes, timeEl } from '../format';
import { logView } from '../logview';
import type { PageContext } from '../router';
import { follow, type Stream } from '../sse';
import type { LogLine, Template } from '../types';
import { empty, errorBox, every, notify, notifyError, outcome, section, table } from '../ui';

export async function templatesPage(ctx: PageContext): Promise<Node> {
  document.title = 'Templates · Kiln';
  const holder = h('div');
  const logHolder = h('div');
  let stream: Stream | null = null;
  ctx.onDispose(() => stream?.close());

  const showLog = (name: string) => {
    stream?.close();
    const log = logView(`Build log of ${name}`, { empty: 'No build output yet.' });
    replace(logHolder, h('h3', null, 'Build log of ', h('code', null, name)), log.el);
    const onLine = (d: unknown) => {
      const l = (typeof d === 'object' && d ? d : {}) as Partial<LogLine> & { text?: string };
      log.add({ time: l.time ?? '', line: l.text ?? l.line ?? String(d) });
    };
    stream = follow(`/v1/templates/${seg(name)}/logs?follow=true`, {
      open: () => log.clear(),
      state: (s) => log.setStatus(s === 'reconnecting' ? 'Connection lost; reconnecting…' : s === 'open' ? 'Following the build.' : ''),
      failed: (e) => {
        stream = null;
        log.setStatus(`The log stream failed: ${e.message}`);
      },
      events: {
        line: onLine,
        end: (d) => {
          stream?.close();
          stream = null;
          const t = d as Partial<Template>;
          log.setStatus(t.status ? `Build ended: ${t.status}${t.error ? ` — ${t.error}` : ''}` : 'Build ended.');
          load().catch(() => {});
        },
      },
    });
  };

  const render = (items: Template[]) => {
    replace(
      holder,
      items.length === 0
        ? empty('No templates.')
        : table(
            ['Name', 'Status', 'Based on', 'Size', 'Built', ''],
            items.map((t) => [
              h('span', null, h('strong', null, t.name), t.builtin ? h('span', { class: 'tag' }, 'built-in') : null, t.description ? h('small', { class: 'muted block' }, t.description) : null),
              h('span', null, badge(t.status), t.error ? h('small', { class: 'error-inline block' }, t.error) : null),
              t.base ?? '—',
              h('span', { class: 'inline' }, bytes(t.size)),
              timeEl(t.builtAt),
              h(
                'span',
                { class: 'row-actions' },
                t.builtin
                  ? null
                  : h('button', { type: 'button', class: 'small', onclick: () => showLog(t.name), 'aria-label': `Show the build log of ${t.name}` }, 'Log'),
                t.builtin
                  ? null
                  : actionButton(
                      'Delete',
                      async () => {
                        if (!window.confirm(`Delete template ${t.name}?`)) {
                          return;
                        }
                        try {
                          await del(`/v1/templates/${seg(t.name)}`, { query: { confirm: t.name } });
                          notify(`Deleted ${t.name}`);
                          await load();
                        } catch (e) {
                          notifyError(e);
                        }
                      },
                      { class: 'small danger', 'aria-label': `Delete template ${t.name}` },
                    ),
              ),
            ]),
            { 'aria-label': 'Templates' },
          ),
    );
  };
  const load = async () => {
    const page = await list<Template>('/v1/templates');
    if (!ctx.disposed) {
      render(page.data);
    }
  };
  await load();
  every(10000, load, ctx.onDispose);

  const name = h('input', { required: true, spellcheck: 'false', autocomplete: 'off', placeholder: 'py-data' });
  const from = h('input', { value: 'base', spellcheck: 'false', autocomplete: 'off' });
  const steps = h('textarea', { rows: '4', class: 'mono', spellcheck: 'false', placeholder: 'pip install pandas' });
  const result = outcome();
  const form = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Build a template' },
    field('Name', name),
    field('Based on', from, 'a template name: base, debian or one of yours'),
    field('Steps', steps, 'one shell command per line, run in order'),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Build template')),
    result,
  );
  onSubmit(form, async () => {
    try {
      const t = await post<Template>('/v1/templates', {
        name: name.value.trim(),
        from: from.value.trim() || 'base',
        steps: steps.value
          .split('\n')
          .map((s) => s.trim())
          .filter(Boolean)
          .map((run) => ({ run })),
      });
      result.clear();
      name.value = '';
      steps.value = '';
      notify(`Building ${t.name}`);
      await load();
      showLog(t.name);
    } catch (err) {
      result.show(errorBox(err));
    }
  });

  return h(
    'div',
    { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Templates')),
    holder,
    logHolder,
    section('Build a template', form),
  );
}
