// Who can open an app: its access policy, share links and bearer tokens, and its custom
// domains with the DNS records each needs.

import { del, get, patch, post, put, seg } from '../api';
import { actionButton, field, h, onSubmit, replace } from '../dom';
import { badge, timeEl } from '../format';
import type { App } from '../types';
import { copyRow, empty, errorBox, follows, notify, notifyError, outcome, table } from '../ui';

interface AccessToken {
  id: string;
  kind: 'share-url' | 'bearer';
  prefix: string;
  status: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  token?: string;
  url?: string;
  note?: string;
}

interface Domain {
  domain: string;
  dnsRecords: { type: string; name: string; value: string }[];
  certificate?: { source?: string; status?: string; error?: string | null };
}

// The choice of who can open an app (the create form and the access panel).
export function accessPolicySelect(): HTMLSelectElement {
  return h(
    'select',
    { name: 'accessPolicy' },
    h('option', { value: 'public' }, 'public'),
    h('option', { value: 'workspace' }, 'workspace members'),
    h('option', { value: 'token' }, 'token holders'),
  );
}

// The panel, and `update` to call with the app after each refresh of the page.
export function accessPanel(app: App, onChange: () => void): { el: HTMLElement; update(app: App): void } {
  const base = `/v1/apps/${seg(app.name)}`;

  // ---- Policy ----
  const policy = accessPolicySelect();
  const followPolicy = follows(policy, app.accessPolicy);
  const policyResult = outcome();
  const policyForm = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Access policy' },
    field('Who can open it', policy, 'public: anyone with the URL; workspace members: signed in to this workspace; token holders: share links and bearer tokens'),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Save')),
    policyResult,
  );
  onSubmit(policyForm, async () => {
    try {
      await patch(base, { accessPolicy: policy.value });
      policyResult.clear();
      notify(`Access: ${policy.value}`);
      onChange();
    } catch (err) {
      policyResult.show(errorBox(err));
    }
  });

  // ---- Share links and tokens ----
  const tokens = h('div');
  const minted = h('div', { 'aria-live': 'polite' });
  // The box goes with the focus in it (its Done button): the focus goes back to the form.
  const closeMinted = () => {
    replace(minted);
    kind.focus();
  };
  const loadTokens = async () => {
    try {
      const data = await get<{ tokens: AccessToken[] }>(`${base}/access-tokens`);
      const active = (data.tokens ?? []).filter((t) => t.status === 'active');
      replace(
        tokens,
        active.length === 0
          ? empty('No share links or tokens.')
          : table(
              ['Kind', 'Token', 'Status', 'Created', 'Expires', ''],
              active.map((t) => [
                t.kind,
                h('code', { title: t.id }, `${t.prefix}…`),
                badge(t.status),
                timeEl(t.createdAt),
                timeEl(t.expiresAt),
                actionButton(
                  'Revoke',
                  async () => {
                    try {
                      await del(`${base}/access-tokens/${seg(t.id)}`);
                      notify('Revoked');
                      await loadTokens();
                    } catch (err) {
                      notifyError(err);
                    }
                  },
                  { class: 'small danger', 'aria-label': `Revoke ${t.kind} ${t.prefix}` },
                ),
              ]),
              { 'aria-label': 'Share links and tokens' },
            ),
      );
    } catch (err) {
      replace(tokens, errorBox(err));
    }
  };
  const kind = h('select', null, h('option', { value: 'share-url' }, 'share link'), h('option', { value: 'bearer' }, 'bearer token'));
  const ttl = h(
    'select',
    null,
    h('option', { value: '3600' }, '1 hour'),
    h('option', { value: '86400' }, '1 day'),
    h('option', { value: '604800' }, '7 days'),
    h('option', { value: '2592000' }, '30 days'),
  );
  ttl.value = '86400';
  const tokenResult = outcome();
  const tokenForm = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Create a share link or token' },
    field('Kind', kind, 'a link opens the app in a browser; a bearer token is for programs'),
    field('Valid for', ttl),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Create')),
    tokenResult,
  );
  onSubmit(tokenForm, async () => {
    try {
      const t = await post<AccessToken>(`${base}/access-tokens`, { kind: kind.value, ttlSeconds: Number(ttl.value) });
      tokenResult.clear();
      replace(
        minted,
        h(
          'div',
          { class: 'info-box' },
          h('p', null, h('strong', null, t.kind === 'share-url' ? 'Share link created.' : 'Token created.'), ' Copy it now: it is shown only once.'),
          (t.kind === 'share-url' && t.url ? copyRow('Share link', t.url) : copyRow('Bearer token', t.token ?? '')).el,
          t.note ? h('p', { class: 'hint' }, t.note) : null,
          h('button', { type: 'button', class: 'small', onclick: () => closeMinted() }, 'Done'),
        ),
      );
      await loadTokens();
    } catch (err) {
      tokenResult.show(errorBox(err));
    }
  });

  // ---- Domains ----
  const domains = h('div');
  let current: string[] = [];
  const domainResult = outcome();
  const renderDomains = (list: Domain[], note?: string) => {
    current = list.map((d) => d.domain);
    replace(
      domains,
      list.length === 0
        ? empty('No custom domains. The app answers at ', h('code', null, app.url), '.')
        : table(
            ['Domain', 'DNS record to set', 'Certificate', ''],
            list.map((d) => [
              h('strong', null, d.domain),
              h(
                'span',
                null,
                d.dnsRecords.map((r) => h('code', { class: 'block' }, `${r.name}  ${r.type}  ${r.value}`)),
              ),
              d.certificate ? h('span', null, badge(d.certificate.status ?? ''), d.certificate.error ? h('small', { class: 'error-inline block' }, d.certificate.error) : null) : '—',
              actionButton('Remove', () => setDomains(current.filter((x) => x !== d.domain)), { class: 'small danger', 'aria-label': `Remove ${d.domain}` }),
            ]),
            { 'aria-label': 'Domains' },
          ),
      note ? h('p', { class: 'hint' }, note) : null,
    );
  };
  // Answers whether the server took the list.
  const setDomains = async (list: string[]): Promise<boolean> => {
    try {
      const data = await put<{ domains: Domain[]; note?: string }>(`${base}/domains`, { domains: list });
      domainResult.clear();
      renderDomains(data.domains ?? [], data.note);
      return true;
    } catch (err) {
      domainResult.show(errorBox(err));
      return false;
    }
  };
  const loadDomains = async () => {
    try {
      const data = await get<{ domains: Domain[]; note?: string }>(`${base}/domains`);
      renderDomains(data.domains ?? [], data.note);
    } catch (err) {
      replace(domains, errorBox(err));
    }
  };
  const domainInput = h('input', { placeholder: 'shop.example.com', spellcheck: 'false', autocomplete: 'off', inputmode: 'url' });
  const domainForm = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Add a domain' },
    field('Custom domain', domainInput),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Add domain')),
    domainResult,
  );
  onSubmit(domainForm, async () => {
    const d = domainInput.value.trim().toLowerCase();
    if (!d) {
      return;
    }
    // What was typed stays when the server refused it, to be corrected.
    if (await setDomains([...current.filter((x) => x !== d), d])) {
      domainInput.value = '';
    }
  });

  loadTokens();
  loadDomains();
  const el = h(
    'div',
    { class: 'access' },
    policyForm,
    h('h3', { class: 'sub' }, 'Share links and tokens'),
    minted,
    tokens,
    tokenForm,
    h('h3', { class: 'sub' }, 'Domains'),
    domains,
    domainForm,
  );
  return { el, update: (a: App) => followPolicy(a.accessPolicy) };
}
