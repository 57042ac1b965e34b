// Small building blocks shared by the pages: error boxes, notices, sections, empty states.

import { ApiError } from './api';
import { h, replace, type Child } from './dom';

export function errorMessage(e: unknown): { message: string; hint: string; code: string; requestId: string } {
  if (e instanceof ApiError) {
    return { message: e.message, hint: e.hint, code: e.code, requestId: e.requestId };
  }
  return { message: e instanceof Error ? e.message : String(e), hint: '', code: '', requestId: '' };
}

// An error as the user reads it: the message, what to do (hint), and the code and request id
// for a bug report.
export function errorBox(e: unknown): HTMLElement {
  const { message, hint, code, requestId } = errorMessage(e);
  return h(
    'div',
    { class: 'error-box', role: 'alert' },
    h('p', { class: 'error-message' }, message),
    hint ? h('p', { class: 'error-hint' }, hint) : null,
    code || requestId
      ? h('p', { class: 'error-meta' }, [code, requestId].filter(Boolean).join(' · '))
      : null,
  );
}

// A place under a form where its outcome shows (replaced on each attempt).
export function outcome(): HTMLDivElement & { show(...children: Child[]): void; clear(): void } {
  const el = h('div', { class: 'outcome', 'aria-live': 'polite' }) as HTMLDivElement & {
    show(...children: Child[]): void;
    clear(): void;
  };
  el.show = (...children: Child[]) => replace(el, ...children);
  el.clear = () => replace(el);
  return el;
}

let noticeArea: HTMLElement | null = null;

export function setNoticeArea(el: HTMLElement): void {
  noticeArea = el;
}

// A short message that fades after a few seconds (announced to screen readers).
export function notify(message: string, kind: 'ok' | 'error' = 'ok'): void {
  if (!noticeArea) {
    return;
  }
  // A notice may cover a button (small screens): any click on it dismisses it at once.
  const el = h(
    'div',
    { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', null, message),
    h('button', { type: 'button', class: 'notice-close', 'aria-label': 'Dismiss' }, '×'),
  );
  el.addEventListener('click', () => el.remove());
  noticeArea.appendChild(el);
  window.setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

// An error as a notice: the message and what to do (hint).
export function notifyError(e: unknown): void {
  const { message, hint } = errorMessage(e);
  notify(hint ? `${message} — ${hint}` : message, 'error');
}

// A secret shown once (a minted key, a share link) in a read-only field, with a Copy button.
export function copyRow(label: string, value: string): { el: HTMLElement; input: HTMLInputElement } {
  const input = h('input', { readonly: true, value, class: 'mono secret-field', 'aria-label': label });
  const copy = h('button', { type: 'button' }, 'Copy');
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(value);
      copy.textContent = 'Copied';
    } catch {
      input.select();
      copy.textContent = 'Press Ctrl+C';
    }
  });
  return { el: h('div', { class: 'copy-row' }, input, copy), input };
}

export function section(title: string, ...children: Child[]): HTMLElement {
  const id = `s-${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return h(
    'section',
    { class: 'card', 'aria-labelledby': id },
    h('h2', { id }, title),
    ...children,
  );
}

export function empty(text: string, ...more: Child[]): HTMLElement {
  return h('p', { class: 'empty' }, text, ...more);
}

export function loading(text = 'Loading…'): HTMLElement {
  return h('p', { class: 'loading', role: 'status' }, text);
}

// A table with a header row; rows are arrays of cells. On narrow screens each cell shows
// its column's name before it (data-label, styled by CSS).
export function table(headers: string[], rows: Child[][], attrs: Record<string, string> = {}): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'table', ...attrs },
      h('thead', null, h('tr', null, headers.map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        null,
        rows.map((cells) =>
          h('tr', null, cells.map((c, i) => h('td', { 'data-label': headers[i] ?? '' }, c))),
        ),
      ),
    ),
  );
}

// Repeats `fn` every `ms` while the page is shown and the tab is visible.
// Sets a form control to a value from the server and answers a function that follows later
// refreshes of it: the control takes each new value unless the user has changed it (and not
// saved) or is in it, so a change made elsewhere shows without clobbering an edit.
export function follows(control: HTMLInputElement | HTMLSelectElement, value: string): (next: string) => void {
  let shown = value;
  control.value = value;
  return (next) => {
    if (control.value === shown && document.activeElement !== control) {
      control.value = next;
    }
    shown = next;
  };
}

export function every(ms: number, fn: () => void | Promise<void>, onDispose: (f: () => void) => void): void {
  let running = false;
  const timer = window.setInterval(async () => {
    if (running || document.hidden) {
      return;
    }
    running = true;
    try {
      await fn();
    } catch {
      // the next round tries again; a 401 already signed the page out
    } finally {
      running = false;
    }
  }, ms);
  onDispose(() => window.clearInterval(timer));
}
