// Apps: the list (status, URL, release serving now, last deploy) and the create form.

import { list, post, type Page } from '../api';
import { field, h, onSubmit, replace } from '../dom';
import { badge, shortId, timeEl } from '../format';
import { navigate, type PageContext } from '../router';
import { empty, errorBox, every, outcome, section, table } from '../ui';
import type { App } from '../types';
import { accessPolicySelect } from './access';

export function appLink(name: string): string {
  return `/apps/${encodeURIComponent(name)}`;
}

export function urlLink(url: string): HTMLElement | string {
  return url ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer', class: 'url' }, url) : '—';
}

function appRows(apps: App[]): HTMLElement {
  if (apps.length === 0) {
    return empty('No apps yet. Create one below, then deploy code to it.');
  }
  return table(
    ['Name', 'Status', 'URL', 'Release', 'Last deploy'],
    apps.map((app) => [
      h('a', { href: appLink(app.name), class: 'strong' }, app.name),
      badge(app.status),
      app.release ? urlLink(app.url) : h('span', { class: 'muted' }, 'not deployed'),
      app.release
        ? h('span', null, h('code', { title: app.release.id }, shortId(app.release.id)), app.release.runtime ? ` · ${app.release.runtime}` : '')
        : '—',
      app.deployment
        ? h('span', { class: 'inline' }, badge(app.deployment.status), ' ', timeEl(app.deployment.createdAt))
        : '—',
    ]),
    { 'aria-label': 'Apps' },
  );
}

function createForm(): HTMLElement {
  const name = h('input', {
    name: 'name',
    required: true,
    maxlength: '63',
    pattern: '[a-z0-9]([a-z0-9\\-]*[a-z0-9])?',
    autocomplete: 'off',
    spellcheck: 'false',
    placeholder: 'my-app',
  });
  const port = h('input', { name: 'port', type: 'number', min: '1', max: '65535', value: '3000', inputmode: 'numeric' });
  const access = accessPolicySelect();
  const result = outcome();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create app');
  const form = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Create an app' },
    field('Name', name, 'lower-case letters, digits and dashes; it becomes the URL'),
    field('Port', port, 'the port your process listens on ($PORT)'),
    field('Access', access, 'who can open the URL; change it later'),
    h('div', { class: 'form-actions' }, submit),
    result,
  );
  onSubmit(form, async () => {
    try {
      const app = await post<App>('/v1/apps', {
        name: name.value.trim(),
        port: Number(port.value) || 3000,
        accessPolicy: access.value,
      });
      navigate(appLink(app.name));
    } catch (e) {
      result.show(errorBox(e));
    }
  });
  return form;
}

export async function appsPage(ctx: PageContext): Promise<Node> {
  document.title = 'Apps · Kiln';
  const load = () => list<App>('/v1/apps', { query: { limit: 100 } });
  const first: Page<App> = await load();
  const holder = h('div', null, appRows(first.data));
  every(5000, async () => {
    const page = await load();
    if (!ctx.disposed) {
      replace(holder, appRows(page.data));
    }
  }, ctx.onDispose);
  return h(
    'div',
    { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Apps')),
    holder,
    first.has_more ? h('p', { class: 'muted' }, 'Showing the first 100 apps.') : null,
    section('Create an app', createForm()),
  );
}
