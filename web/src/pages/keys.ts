// API keys: the list (metadata only), mint (the secret is shown once, with a copy button),
// and revoke.

import { del, list, post, seg } from '../api';
import { actionButton, checkbox, field, h, onSubmit, replace } from '../dom';
import { badge, timeEl } from '../format';
import type { PageContext } from '../router';
import type { Key } from '../types';
import { copyRow, empty, errorBox, notify, notifyError, outcome, section, table } from '../ui';

const kScopes = ['read', 'write', 'exec', 'admin'];

export async function keysPage(ctx: PageContext): Promise<Node> {
  document.title = 'Keys · Kiln';
  const holder = h('div');
  const minted = h('div', { 'aria-live': 'polite' });

  const render = (keys: Key[]) => {
    replace(
      holder,
      keys.length === 0
        ? empty('No keys.')
        : table(
            ['Name', 'Key', 'Scopes', 'Status', 'Created', 'Last used', ''],
            keys.map((k) => [
              h('strong', null, k.name),
              h('code', { title: k.id }, `${k.prefix}…`),
              k.scopes.join(', '),
              badge(k.status),
              timeEl(k.createdAt),
              timeEl(k.lastUsedAt),
              k.status === 'active'
                ? actionButton(
                    'Revoke',
                    async () => {
                      if (!window.confirm(`Revoke key ${k.name} (${k.prefix}…)? Programs using it stop working at once.`)) {
                        return;
                      }
                      try {
                        await del(`/v1/keys/${seg(k.id)}`, { query: { confirm: k.id } });
                        notify(`Revoked ${k.name}`);
                        await load();
                      } catch (e) {
                        notifyError(e);
                      }
                    },
                    { class: 'small danger', 'aria-label': `Revoke key ${k.name}` },
                  )
                : '',
            ]),
            { 'aria-label': 'API keys' },
          ),
    );
  };
  const load = async () => {
    const page = await list<Key>('/v1/keys', { query: { limit: 100 } });
    if (!ctx.disposed) {
      render(page.data);
    }
  };
  await load();

  const name = h('input', { required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'ci-deployer' });
  const boxes = kScopes.map((s) => checkbox(s, { value: s, checked: s !== 'admin' }));
  const result = outcome();
  const form = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Mint a key' },
    field('Name', name),
    h('fieldset', { class: 'field checks' }, h('legend', null, 'Scopes'), boxes.map(([label]) => label)),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Mint key')),
    result,
  );
  onSubmit(form, async () => {
    try {
      const key = await post<Key>('/v1/keys', {
        name: name.value.trim(),
        scopes: boxes.filter(([, input]) => input.checked).map(([, input]) => input.value),
      });
      result.clear();
      name.value = '';
      const secret = copyRow(`Secret of key ${key.name}`, key.secret ?? '');
      replace(
        minted,
        h(
          'div',
          { class: 'info-box' },
          h('p', null, h('strong', null, `Key ${key.name} minted.`), ' Copy it now: it is shown only once.'),
          secret.el,
          // The box goes with the focus in it: the focus goes back to the form.
          h('button', {
            type: 'button',
            class: 'small',
            onclick: () => {
              replace(minted);
              name.focus();
            },
          }, 'Done'),
        ),
      );
      secret.input.focus();
      secret.input.select();
      await load();
    } catch (err) {
      result.show(errorBox(err));
    }
  });

  return h(
    'div',
    { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'API keys')),
    minted,
    holder,
    section('Mint a key', form),
  );
}
