// The dashboard's only way to make DOM: h(tag, attrs, ...children). Text always goes in as
// text nodes and attributes through setAttribute, never through innerHTML, so an app name,
// a log line, an env value or a file name cannot become markup or script. URL attributes
// (href, src, action) accept only http(s), same-origin paths and fragments, so a value such
// as `javascript:…` from the server cannot become a link that runs code.

export type Child = Node | string | number | null | undefined | false | Child[];
type Handler = (event: Event) => void;
export type Attrs = Record<string, string | number | boolean | null | undefined | Handler>;

const kUrlAttributes = new Set(['href', 'src', 'action', 'formaction']);

// Whether `url` is safe to put in a link: http:, https:, a path on this origin, or a fragment.
// A path may not start with // or /\ (browsers read a backslash as a slash in http URLs), which
// would name another host.
export function isSafeUrl(url: string): boolean {
  return /^(https?:\/\/|\/(?![\/\\])|#|\?)/i.test(url.trim());
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    if (Array.isArray(child)) {
      append(parent, ...child);
    } else if (child instanceof Node) {
      parent.appendChild(child);
    } else {
      parent.appendChild(document.createTextNode(String(child)));
    }
  }
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      if (!name.startsWith('on')) {
        throw new Error(`h: ${name} is a function but not an on* event`);
      }
      el.addEventListener(name.slice(2), value);
      continue;
    }
    if (name.startsWith('on')) {
      throw new Error(`h: event attribute ${name} must be a function`);
    }
    if (name === 'style') {
      throw new Error('h: style attributes are blocked by the CSP; use a class');
    }
    const text = value === true ? '' : String(value);
    if (kUrlAttributes.has(name) && !isSafeUrl(text)) {
      continue;
    }
    el.setAttribute(name, text);
  }
  append(el, ...children);
  return el;
}

function signature(el: Element): string {
  return `${el.tagName}|${el.getAttribute('aria-label') ?? ''}|${el.getAttribute('href') ?? ''}|${el.textContent ?? ''}`;
}

// Replaces everything in `parent` with `children`. When the focus was inside, it moves to
// the new element that looks the same (same tag, label, link and text), so a view that
// refreshes itself does not throw a keyboard user back to the top of the page.
export function replace(parent: Node, ...children: Child[]): void {
  const active = document.activeElement;
  const focused = active && active !== document.body && parent.contains(active) ? signature(active) : null;
  while (parent.firstChild) {
    parent.removeChild(parent.firstChild);
  }
  append(parent, ...children);
  if (focused && parent instanceof Element) {
    for (const el of Array.from(parent.querySelectorAll<HTMLElement>('a, button, input, select, textarea, [tabindex]'))) {
      if (signature(el) === focused) {
        el.focus({ preventScroll: true });
        break;
      }
    }
  }
}

// Disables `buttons` (aria-busy) while `action` runs. A disabled button loses the focus, so
// one that had it gets it back afterwards, when nothing else took it and it is still shown:
// a keyboard user stays where they were.
async function busyWhile(buttons: HTMLButtonElement[], action: () => Promise<unknown> | void): Promise<void> {
  const focused = buttons.find((b) => b === document.activeElement);
  for (const b of buttons) {
    b.disabled = true;
    b.setAttribute('aria-busy', 'true');
  }
  try {
    await action();
  } finally {
    for (const b of buttons) {
      b.disabled = false;
      b.removeAttribute('aria-busy');
    }
    const now = document.activeElement;
    if (focused && focused.isConnected && (!now || now === document.body)) {
      focused.focus();
    }
  }
}

// A button that runs `action` once at a time: disabled, with aria-busy, while it runs.
export function actionButton(
  label: string,
  action: () => Promise<unknown> | void,
  attrs: Attrs = {},
): HTMLButtonElement {
  const button = h('button', { type: 'button', ...attrs }, label);
  button.addEventListener('click', () => {
    if (!button.disabled) {
      busyWhile([button], action);
    }
  });
  return button;
}

// Runs `action` when `form` is submitted, once at a time: its enabled submit buttons are
// disabled while it runs, so a double click or a second Enter does not send it twice.
export function onSubmit(form: HTMLFormElement, action: () => Promise<unknown> | void): void {
  let running = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (running) {
      return;
    }
    running = true;
    const buttons = Array.from(form.querySelectorAll<HTMLButtonElement>('button[type="submit"]')).filter(
      (b) => !b.disabled,
    );
    try {
      await busyWhile(buttons, action);
    } finally {
      running = false;
    }
  });
}

let nextId = 0;
// A unique element id, for label `for` and aria-describedby.
export function uid(prefix = 'k'): string {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

// A labelled form field: <div class="field"><label for=id>label</label>control hint</div>.
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement,
  hint?: string,
): HTMLDivElement {
  if (!control.id) {
    control.id = uid('f');
  }
  let hintEl: HTMLElement | null = null;
  if (hint) {
    hintEl = h('small', { class: 'hint', id: uid('h') }, hint);
    control.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hintEl);
}

// A labelled checkbox: <label class="check"><input type=checkbox> text</label>.
export function checkbox(label: string, attrs: Attrs = {}): [HTMLLabelElement, HTMLInputElement] {
  const input = h('input', { type: 'checkbox', ...attrs });
  return [h('label', { class: 'check' }, input, ' ', label), input];
}
