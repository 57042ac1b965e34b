// The dashboard's entry: checks the sign-in session, then shows the layout (header with the
// workspace name, navigation, sign out) around the page the URL names, or the sign-in form.

import { ApiError, getSession, onSessionExpired, signIn, signOut, type Session } from './api';
import { h, replace } from './dom';
import { makeContext, match, onNavigate, route, startRouter } from './router';
import { errorBox, loading, notify, outcome, setNoticeArea } from './ui';
import { appsPage } from './pages/apps';
import { appPage } from './pages/app';
import { sandboxesPage, sandboxPage } from './pages/sandboxes';
import { templatesPage } from './pages/templates';
import { keysPage } from './pages/keys';
import { activityPage } from './pages/activity';

const root = document.getElementById('app') as HTMLElement;
let session: Session | null = null;
let current: ReturnType<typeof makeContext> | null = null;

const kNav: [string, string][] = [
  ['apps', 'Apps'],
  ['sandboxes', 'Sandboxes'],
  ['templates', 'Templates'],
  ['keys', 'Keys'],
  ['activity', 'Activity'],
];

route('/apps', 'apps', appsPage);
route('/apps/:name', 'apps', appPage);
route('/sandboxes', 'sandboxes', sandboxesPage);
route('/sandboxes/:id', 'sandboxes', sandboxPage);
route('/templates', 'templates', templatesPage);
route('/keys', 'keys', keysPage);
route('/activity', 'activity', activityPage);

function leavePage(): void {
  current?.dispose();
  current = null;
}

function notices(): HTMLElement {
  const el = h('div', { class: 'notices', 'aria-live': 'polite' });
  setNoticeArea(el);
  return el;
}

// ---- Sign-in ----

function showSignIn(reason: 'none' | 'expired' | 'signed-out'): void {
  leavePage();
  session = null;
  document.title = 'Sign in · Kiln';
  const key = h('input', {
    id: 'api-key',
    name: 'apiKey',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    placeholder: 'kiln_sk_…',
    'aria-describedby': 'api-key-help',
  });
  const result = outcome();
  if (reason === 'expired') {
    result.show(h('p', { class: 'info', role: 'status' }, 'Your session expired. Sign in again.'));
  } else if (reason === 'signed-out') {
    result.show(h('p', { class: 'info', role: 'status' }, 'You are signed out.'));
  }
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin-form', novalidate: true },
    h('h1', null, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Sign in to Kiln'),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'api-key' }, 'API key'),
      key,
      h(
        'small',
        { class: 'hint', id: 'api-key-help' },
        'The first admin key is in the server’s data directory (admin.key); mint more with ',
        h('code', null, 'kiln keys create'),
        '.',
      ),
    ),
    submit,
    result,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = key.value.trim();
    if (!value) {
      result.show(errorBox(new Error('Enter an API key.')));
      key.focus();
      return;
    }
    submit.disabled = true;
    submit.setAttribute('aria-busy', 'true');
    try {
      session = await signIn(value);
      key.value = '';
      showLayout();
    } catch (e) {
      result.show(errorBox(e));
      key.select();
      key.focus();
    } finally {
      submit.disabled = false;
      submit.removeAttribute('aria-busy');
    }
  });
  replace(root, h('main', { id: 'main', class: 'signin' }, form), notices());
  key.focus();
}

// ---- Layout and pages ----

let mainEl: HTMLElement | null = null;
let navLinks = new Map<string, HTMLAnchorElement>();

function showLayout(): void {
  if (!session) {
    return;
  }
  navLinks = new Map();
  const nav = h(
    'nav',
    { class: 'nav', 'aria-label': 'Main' },
    h(
      'ul',
      null,
      kNav.map(([id, label]) => {
        const a = h('a', { href: `/${id}` }, label);
        navLinks.set(id, a);
        return h('li', null, a);
      }),
    ),
  );
  const signOutButton = h('button', { type: 'button', class: 'signout' }, 'Sign out');
  signOutButton.addEventListener('click', async () => {
    signOutButton.disabled = true;
    try {
      await signOut();
      showSignIn('signed-out');
    } catch (e) {
      signOutButton.disabled = false;
      notify(e instanceof Error ? `Sign out failed: ${e.message}` : 'Sign out failed', 'error');
    }
  });
  const ws = session.workspace;
  mainEl = h('main', { id: 'main', tabindex: '-1' });
  replace(
    root,
    h('a', { class: 'skip', href: '#main' }, 'Skip to content'),
    h(
      'header',
      { class: 'top' },
      h(
        'div',
        { class: 'top-row' },
        h('a', { class: 'brand', href: '/apps' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }), 'Kiln'),
        h(
          'span',
          { class: 'workspace', title: `workspace ${ws.slug} (${ws.id})` },
          h('span', { class: 'visually-hidden' }, 'Workspace: '),
          ws.name || ws.slug,
        ),
        h('span', { class: 'key-name', title: `signed in with key ${session.key.id}` }, session.key.name),
        signOutButton,
      ),
      nav,
    ),
    mainEl,
    notices(),
  );
  renderRoute(false);
}

async function renderRoute(focus = true): Promise<void> {
  if (!session || !mainEl) {
    return;
  }
  if (location.pathname === '/' || location.pathname === '') {
    history.replaceState(null, '', '/apps');
  }
  leavePage();
  const found = match(location.pathname);
  for (const [id, a] of navLinks) {
    if (found && found.nav === id) {
      a.setAttribute('aria-current', 'page');
    } else {
      a.removeAttribute('aria-current');
    }
  }
  const main = mainEl;
  if (!found) {
    document.title = 'Not found · Kiln';
    replace(
      main,
      h('h1', null, 'Page not found'),
      h('p', null, 'Nothing lives at ', h('code', null, location.pathname), '. ', h('a', { href: '/apps' }, 'Go to your apps'), '.'),
    );
    if (focus) {
      main.focus({ preventScroll: true });
    }
    return;
  }
  const ctx = makeContext(found.params);
  current = ctx;
  replace(main, loading());
  try {
    const page = await found.page(ctx);
    if (ctx.disposed) {
      return;
    }
    replace(main, page);
  } catch (e) {
    if (ctx.disposed) {
      return;
    }
    if (e instanceof ApiError && e.status === 401) {
      return; // the expired handler shows sign-in
    }
    replace(main, h('h1', null, 'Something went wrong'), errorBox(e));
  }
  if (focus) {
    main.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }
}

async function boot(): Promise<void> {
  replace(root, h('main', { id: 'main' }, loading('Loading Kiln…')));
  startRouter();
  onNavigate(() => {
    if (session) {
      renderRoute();
    }
  });
  onSessionExpired(() => {
    if (session) {
      showSignIn('expired');
    }
  });
  for (;;) {
    try {
      session = await getSession();
      showLayout();
      return;
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        showSignIn('none');
        return;
      }
      const retry = h('button', { type: 'button', class: 'primary' }, 'Try again');
      replace(
        root,
        h('main', { id: 'main', class: 'signin' }, h('div', { class: 'signin-form' }, h('h1', null, 'Kiln'), errorBox(e), retry)),
      );
      await new Promise<void>((resolve) => retry.addEventListener('click', () => resolve(), { once: true }));
      replace(root, h('main', { id: 'main' }, loading('Loading Kiln…')));
    }
  }
}

boot();
