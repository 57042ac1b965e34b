// The activity feed: what happened in the workspace, newest first, with who did it.

import { list } from '../api';
import { h, replace, type Child } from '../dom';
import { shortId, timeEl } from '../format';
import type { PageContext } from '../router';
import type { App, Event, Key } from '../types';
import { empty, errorBox } from '../ui';
import { appLink } from './apps';
import { sandboxLink } from './sandboxes';

// Names for the ids events carry: apps and keys of the workspace (the first pages; an id
// not found is shown as it is).
interface Names {
  apps: Map<string, string>;
  keys: Map<string, string>;
}

async function loadNames(): Promise<Names> {
  const [apps, keys] = await Promise.all([
    list<App>('/v1/apps', { query: { limit: 100 } }).catch(() => null),
    list<Key>('/v1/keys', { query: { limit: 100 } }).catch(() => null), // admin scope only
  ]);
  return {
    apps: new Map((apps?.data ?? []).map((a) => [a.id, a.name])),
    keys: new Map((keys?.data ?? []).map((k) => [k.id, k.name])),
  };
}

function scalars(d: Record<string, unknown>, skip: string[]): string {
  return Object.entries(d)
    .filter(([k, v]) => !skip.includes(k) && (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean'))
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
}

function appRef(id: string, names: Names, fallback = ''): Node {
  const name = names.apps.get(id) ?? fallback;
  return name ? h('a', { href: appLink(name) }, name) : h('span', { class: 'mono' }, id);
}

function describe(e: Event, names: Names): Child {
  const d = e.data ?? {};
  const name = typeof d.name === 'string' ? d.name : '';
  if (e.type.startsWith('app.')) {
    const rest = scalars(d, ['name']);
    return [appRef(e.subject, names, name), rest ? ` · ${rest}` : ''];
  }
  if (e.type.startsWith('deployment.') && typeof d.app === 'string') {
    const rest = scalars(d, ['app']);
    return [appRef(d.app, names), ' · ', h('code', null, shortId(e.subject)), rest ? ` · ${rest}` : ''];
  }
  if (e.subject.startsWith('sbx_')) {
    const rest = scalars(d, []);
    return [h('a', { href: sandboxLink(e.subject), class: 'mono' }, e.subject), rest ? ` · ${rest}` : ''];
  }
  if (e.type.startsWith('key.') && name) {
    return [h('a', { href: '/keys' }, name), ' · ', h('code', null, e.subject)];
  }
  const rest = scalars(d, []);
  return `${e.subject}${rest ? ` · ${rest}` : ''}`;
}

function actor(id: string | null, names: Names): string {
  if (!id) {
    return '';
  }
  const name = names.keys.get(id);
  return name ? `by ${name}` : `by ${shortId(id)}`;
}

export async function activityPage(ctx: PageContext): Promise<Node> {
  document.title = 'Activity · Kiln';
  const feed = h('ol', { class: 'feed', 'aria-label': 'Activity' });
  const more = h('button', { type: 'button' }, 'Load more');
  const status = h('div');
  let cursor: string | null = null;
  const names = await loadNames();

  // `focusNew`: after "Load more", focus goes to the first event it brought. The button may
  // hide itself (the last page), which would otherwise drop focus to the document.
  const load = async (focusNew = false) => {
    more.disabled = true;
    try {
      const page = await list<Event>('/v1/events', { query: { limit: 50, cursor } });
      if (ctx.disposed) {
        return;
      }
      let first: HTMLElement | null = null;
      for (const e of page.data) {
        const item = h(
          'li',
          { class: 'feed-item' },
          h('span', { class: 'feed-type' }, e.type),
          h('span', { class: 'feed-what' }, describe(e, names)),
          h('span', { class: 'feed-who muted', title: e.actor ?? '' }, actor(e.actor, names)),
          timeEl(e.createdAt),
        );
        if (!first) {
          first = item;
        }
        feed.appendChild(item);
      }
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
      if (focusNew && first) {
        first.tabIndex = -1;
        first.focus();
      }
      replace(status, feed.childElementCount === 0 ? empty('Nothing has happened yet.') : null);
    } catch (e) {
      replace(status, errorBox(e));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', () => void load(true));
  await load();
  return h('div', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', null, 'Activity')), status, feed, more);
}
