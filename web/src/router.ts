// Client-side routing with the History API. Pages are real <a href> links: a click on a
// same-origin link without a modifier key is turned into pushState + render, anything else
// (new tab, another origin, download) is left to the browser.

export interface PageContext {
  readonly params: Record<string, string>;
  readonly query: URLSearchParams;
  readonly path: string;
  // Runs `fn` when the page is left (close streams, stop timers).
  onDispose(fn: () => void): void;
  // Whether the page was left (an async render that finishes late must not touch the DOM).
  readonly disposed: boolean;
}

export type PageFn = (ctx: PageContext) => Node | Promise<Node>;

interface Route {
  pattern: RegExp;
  names: string[];
  page: PageFn;
  nav: string; // which nav entry is current on this page
}

const routes: Route[] = [];

export function route(path: string, nav: string, page: PageFn): void {
  const names: string[] = [];
  const pattern = new RegExp(
    '^' +
      path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\/:(\w+)/g, (_m, name: string) => {
        names.push(name);
        return '/([^/]+)';
      }) +
      '/?$',
  );
  routes.push({ pattern, names, page, nav });
}

export interface Match {
  page: PageFn;
  params: Record<string, string>;
  nav: string;
}

export function match(pathname: string): Match | null {
  for (const r of routes) {
    const m = r.pattern.exec(pathname);
    if (m) {
      const params: Record<string, string> = {};
      r.names.forEach((name, i) => {
        try {
          params[name] = decodeURIComponent(m[i + 1]);
        } catch {
          params[name] = m[i + 1];
        }
      });
      return { page: r.page, params, nav: r.nav };
    }
  }
  return null;
}

type Listener = () => void;
let listener: Listener = () => {};
let shown = ''; // the path and query of the page shown

export function onNavigate(fn: Listener): void {
  listener = fn;
}

export function navigate(path: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) {
    history.replaceState(null, '', path);
  } else if (path !== location.pathname + location.search) {
    history.pushState(null, '', path);
  }
  shown = location.pathname + location.search;
  listener();
}

// Makes a context whose dispose() runs the page's clean-ups.
export function makeContext(
  params: Record<string, string>,
): PageContext & { dispose(): void } {
  const cleanups: (() => void)[] = [];
  let disposed = false;
  return {
    params,
    query: new URLSearchParams(location.search),
    path: location.pathname,
    onDispose(fn) {
      if (disposed) {
        fn();
      } else {
        cleanups.push(fn);
      }
    },
    get disposed() {
      return disposed;
    },
    dispose() {
      disposed = true;
      for (const fn of cleanups.splice(0)) {
        try {
          fn();
        } catch (e) {
          console.error(e);
        }
      }
    },
  };
}

export function startRouter(): void {
  shown = location.pathname + location.search;
  window.addEventListener('popstate', () => {
    // A change of the #fragment only (the skip link) is not a new page.
    if (location.pathname + location.search !== shown) {
      shown = location.pathname + location.search;
      listener();
    }
  });
  document.addEventListener('click', (event) => {
    if (event.defaultPrevented || event.button !== 0) {
      return;
    }
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    const target = event.target as Element | null;
    const a = target?.closest?.('a');
    if (!a || !a.href || a.hasAttribute('download')) {
      return;
    }
    if (a.target && a.target !== '_self') {
      return;
    }
    const url = new URL(a.href);
    if (url.origin !== location.origin || url.pathname.startsWith('/v1/')) {
      return;
    }
    if (url.hash && url.pathname === location.pathname && url.search === location.search) {
      return; // an in-page anchor
    }
    event.preventDefault();
    navigate(url.pathname + url.search);
  });
}
