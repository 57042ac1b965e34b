// An app's environment variables: the list (secret values masked: the server never sends
// them, and the form never sends one back unless the user types a new value), add or
// change one, remove one.

import { del, get, post, put, seg } from '../api';
import { actionButton, checkbox, field, h, onSubmit, replace } from '../dom';
import { timeEl } from '../format';
import type { Env, EnvVar } from '../types';
import { empty, errorBox, notify, notifyError, outcome, table } from '../ui';

const kKeyPattern = /^[A-Z_][A-Z0-9_]*$/;

export function envEditor(appName: string): { el: HTMLElement; load(): Promise<void> } {
  const base = `/v1/apps/${seg(appName)}/env`;
  const holder = h('div');
  const restartNote = h('div', { 'aria-live': 'polite' });

  const key = h('input', {
    name: 'key',
    autocomplete: 'off',
    spellcheck: 'false',
    pattern: '[A-Z_][A-Z0-9_]*',
    placeholder: 'DATABASE_URL',
    class: 'mono',
  });
  const value = h('input', { name: 'value', autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const [secretLabel, secret] = checkbox('Secret (stored encrypted, never shown again, masked in logs)');
  const [buildLabel, build] = checkbox('Also at build time (install and build steps)');
  const result = outcome();
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Save variable');
  const form = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Set an environment variable' },
    field('Key', key, 'capital letters, digits and _'),
    field('Value', value),
    h('div', { class: 'field checks' }, secretLabel, buildLabel),
    h('div', { class: 'form-actions' }, submit),
    result,
  );

  // Secret values are write-only: a secret's value field starts empty and shows a password
  // field, so what is typed is not shown either.
  secret.addEventListener('change', () => {
    value.type = secret.checked ? 'password' : 'text';
  });

  const showRestartNote = (env: Env) => {
    if (!env.restartRequired) {
      replace(restartNote);
      return;
    }
    replace(
      restartNote,
      h(
        'div',
        { class: 'info-box' },
        h('p', null, env.note || 'Changes apply on the next deploy or restart.'),
        actionButton('Restart now', async () => {
          try {
            await post(`/v1/apps/${seg(appName)}/restart`);
            notify('Restarting the app with the new environment');
            replace(restartNote);
          } catch (e) {
            replace(restartNote, errorBox(e));
          }
        }),
      ),
    );
  };

  const render = (env: Env) => {
    const vars = env.vars ?? [];
    replace(
      holder,
      vars.length === 0
        ? empty('No variables yet.')
        : table(
            ['Key', 'Value', 'Kind', 'Updated', ''],
            vars.map((v: EnvVar) => [
              h('code', null, v.key),
              v.secret || v.value === null
                ? h('span', { class: 'masked', title: 'secret: the value is never shown' }, h('span', { 'aria-hidden': 'true' }, '••••••••'), h('span', { class: 'visually-hidden' }, 'hidden secret value'))
                : h('code', { class: 'env-value' }, v.value),
              [v.secret ? h('span', { class: 'tag' }, 'secret') : null, v.build ? h('span', { class: 'tag' }, 'build') : null],
              timeEl(v.updatedAt),
              h(
                'span',
                { class: 'row-actions' },
                h(
                  'button',
                  {
                    type: 'button',
                    class: 'small',
                    'aria-label': `${v.secret ? 'Replace' : 'Edit'} ${v.key}`,
                    onclick: () => {
                      key.value = v.key;
                      secret.checked = v.secret;
                      build.checked = Boolean(v.build);
                      value.type = v.secret ? 'password' : 'text';
                      value.value = v.secret ? '' : (v.value ?? '');
                      value.focus();
                    },
                  },
                  v.secret ? 'Replace' : 'Edit',
                ),
                actionButton(
                  'Remove',
                  async () => {
                    if (!window.confirm(`Remove ${v.key} from ${appName}?`)) {
                      return;
                    }
                    try {
                      await del(`${base}/${seg(v.key)}`);
                      notify(`Removed ${v.key}`);
                      await load();
                    } catch (e) {
                      notifyError(e);
                    }
                  },
                  { class: 'small danger', 'aria-label': `Remove ${v.key}` },
                ),
              ),
            ]),
            { 'aria-label': 'Environment variables' },
          ),
    );
  };

  const load = async () => {
    try {
      const env = await get<Env>(base);
      render(env);
    } catch (e) {
      replace(holder, errorBox(e));
    }
  };

  onSubmit(form, async () => {
    const k = key.value.trim();
    if (!kKeyPattern.test(k)) {
      result.show(errorBox(new Error(`${k || 'The key'} is not a valid name: use capital letters, digits and _, not starting with a digit.`)));
      key.focus();
      return;
    }
    try {
      const env = await put<Env>(base, {
        vars: { [k]: value.value },
        ...(secret.checked ? { secret: [k] } : {}),
        ...(build.checked ? { build: [k] } : {}),
      });
      result.clear();
      notify(`Saved ${k}`);
      key.value = '';
      value.value = '';
      secret.checked = false;
      build.checked = false;
      value.type = 'text';
      render(env);
      showRestartNote(env);
    } catch (e) {
      result.show(errorBox(e));
    }
  });

  return { el: h('div', null, holder, restartNote, form), load };
}
