// The activity feed: what happened in the workspace, newest first, with who did it.

import { list } from '../api';
import { h, replace } from '../dom';
import { shortId, timeEl } from '../format';
import type { PageContext } from '../router';
import type { Event } from '../types';
import { empty, errorBox } from '../ui';
import { appLink } from './apps';
import { sandboxLink } from './sandboxes';

function describe(e: Event): Node[] | string {
  const d = e.data ?? {};
  const name = typeof d.name === 'string' ? d.name : '';
  if (e.type.startsWith('app.') && name) {
    return [h('a', { href: appLink(name) }, name)];
  }
  if (e.subject.startsWith('sbx_')) {
    return [h('a', { href: sandboxLink(e.subject), class: 'mono' }, e.subject)];
  }
  const parts = Object.entries(d)
    .filter(([, v]) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean')
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return `${e.subject}${parts ? ` · ${parts}` : ''}`;
}

export async function activityPage(ctx: PageContext): Promise<Node> {
  document.title = 'Activity · Kiln';
  const feed = h('ol', { class: 'feed', 'aria-label': 'Activity' });
  const more = h('button', { type: 'button' }, 'Load more');
  const status = h('div');
  let cursor: string | null = null;

  const load = async () => {
    more.disabled = true;
    try {
      const page = await list<Event>('/v1/events', { query: { limit: 50, cursor } });
      if (ctx.disposed) {
        return;
      }
      for (const e of page.data) {
        feed.appendChild(
          h(
            'li',
            { class: 'feed-item' },
            h('span', { class: 'feed-type' }, e.type),
            h('span', { class: 'feed-what' }, describe(e)),
            h('span', { class: 'feed-who muted', title: e.actor ?? '' }, e.actor ? `by ${shortId(e.actor)}` : ''),
            timeEl(e.createdAt),
          ),
        );
      }
      cursor = page.next_cursor;
      more.hidden = !page.has_more;
      replace(status, feed.childElementCount === 0 ? empty('Nothing has happened yet.') : null);
    } catch (e) {
      replace(status, errorBox(e));
    } finally {
      more.disabled = false;
    }
  };
  more.addEventListener('click', load);
  await load();
  return h('div', { class: 'page' }, h('div', { class: 'page-head' }, h('h1', null, 'Activity')), status, feed, more);
}
