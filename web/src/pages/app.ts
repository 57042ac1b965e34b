// One app: overview (status, URL, release, resources, usage), lifecycle buttons, redeploy,
// deploy by upload, the current deployment with its live log, the deployment history with
// rollback, runtime logs (followed), environment variables, and delete.

import { ApiError, del, get, list, patch, post, seg } from '../api';
import { actionButton, field, h, onSubmit, replace } from '../dom';
import { badge, bytes, duration, shortId, timeEl } from '../format';
import { logView } from '../logview';
import { navigate, type PageContext } from '../router';
import { follow, type Stream } from '../sse';
import type { App, Deployment, LogLine } from '../types';
import { empty, errorBox, every, follows, notify, notifyError, outcome, section, table } from '../ui';
import { urlLink } from './apps';
import { deployPanel, forwardDrops } from './deploy';
import { deploymentView, sourceText, type DeploymentView } from './deployment';
import { envEditor } from './env';
import { accessPanel } from './access';
import { statsPanel } from '../charts';

type Action = 'start' | 'stop' | 'restart' | 'sleep' | 'wake';

// Which lifecycle buttons make sense in each status.
const kActions: Record<string, Action[]> = {
  created: ['start'],
  running: ['stop', 'restart', 'sleep'],
  stopped: ['start'],
  sleeping: ['wake', 'stop'],
  crashed: ['start', 'restart', 'stop'],
};

const kActionLabels: Record<Action, string> = {
  start: 'Start',
  stop: 'Stop',
  restart: 'Restart',
  sleep: 'Sleep',
  wake: 'Wake',
};

export async function appPage(ctx: PageContext): Promise<Node> {
  const name = ctx.params.name;
  const base = `/v1/apps/${seg(name)}`;
  let app = await get<App>(base);
  let deployments = (await list<Deployment>(`${base}/deployments`, { query: { limit: 50 } })).data;
  if (ctx.disposed) {
    return h('div');
  }
  document.title = `${app.name} · Kiln`;

  const overview = h('div', { class: 'overview' });
  const plots = statsPanel(app.name, ctx.onDispose);
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Lifecycle' });
  const actionResult = outcome();
  const currentHolder = h('div');
  const historyHolder = h('div');
  let current: DeploymentView | null = null;

  // Forms that show the app's settings follow each refresh (a change made elsewhere).
  const followers: ((a: App) => void)[] = [];
  const refresh = async () => {
    const [a, d] = await Promise.all([
      get<App>(base),
      list<Deployment>(`${base}/deployments`, { query: { limit: 50 } }),
    ]);
    if (ctx.disposed) {
      return;
    }
    app = a;
    deployments = d.data;
    followers.forEach((f) => f(a));
    render();
  };

  // The deployment shown in detail: the one asked for, else the newest.
  let pinned: string | null = null;
  const showDeployment = (dep: Deployment | undefined) => {
    if (!dep) {
      current?.dispose();
      current = null;
      replace(currentHolder, empty('No deployments yet. Drop a .tar.gz or a folder above, or deploy a starter.'));
      return;
    }
    if (current && current.id === dep.id) {
      return;
    }
    current?.dispose();
    current = deploymentView(dep, () => {
      refresh().catch(() => {});
    });
    replace(currentHolder, current.el);
  };
  ctx.onDispose(() => current?.dispose());

  const lifecycle = async (action: Action) => {
    try {
      await post(`${base}/${action}`);
      actionResult.clear();
      notify(`${kActionLabels[action]}: done`);
    } catch (e) {
      actionResult.show(errorBox(e));
    }
    await Promise.all([refresh().catch(() => {}), plots.update().catch(() => {})]);
  };

  const onDeployed = (dep: Deployment) => {
    pinned = null;
    deployments = [dep, ...deployments.filter((d) => d.id !== dep.id)];
    renderHistory();
    showDeployment(dep);
    currentHolder.scrollIntoView({ block: 'nearest' });
  };

  // Redeploy: build the newest deployment's source again when it can be fetched again (a
  // starter, git or a URL); otherwise start the release serving now on a new instance.
  const redeploy = async () => {
    const latest = deployments.find((d) => d.kind === 'deploy');
    try {
      let dep: Deployment;
      const s = latest?.source;
      if (latest && s && (s.type === 'template' || s.type === 'git' || s.type === 'url')) {
        const source =
          s.type === 'template' ? { template: s.template } : s.type === 'git' ? { git: { repo: s.repo, ...(s.ref ? { ref: s.ref } : {}) } } : { url: s.url };
        dep = await post<Deployment>(`${base}/deployments`, { ...latest.config, source });
      } else if (app.release) {
        dep = await post<Deployment>(`${base}/rollback`, { deploymentId: app.release.deploymentId });
      } else {
        throw new ApiError(0, 'NOTHING_TO_REDEPLOY', 'this app has no deployment to repeat', 'deploy code to it first');
      }
      actionResult.clear();
      onDeployed(dep);
    } catch (e) {
      actionResult.show(errorBox(e));
    }
  };

  const rollback = async (dep: Deployment) => {
    if (!window.confirm(`Roll ${app.name} back to the release of ${dep.id}?`)) {
      return;
    }
    try {
      const back = await post<Deployment>(`${base}/rollback`, { deploymentId: dep.id });
      notify(`Rolled back to ${shortId(dep.release)}`);
      onDeployed(back);
      await refresh();
    } catch (e) {
      notifyError(e);
    }
  };

  const renderOverview = () => {
    const s = app.stats;
    const rows: [string, Node | string][] = [
      ['Status', badge(app.status)],
      ['URL', app.release ? urlLink(app.url) : h('span', { class: 'muted' }, `${app.url} (after the first deploy)`)],
      [
        'Release',
        app.release
          ? h('span', null, h('code', { title: app.release.id }, app.release.id), app.release.runtime ? ` · ${app.release.runtime}` : '', ' · ', timeEl(app.release.createdAt))
          : 'none yet',
      ],
      ['Access', app.accessPolicy],
      ['Resources', `${app.resources.memoryMb} MiB · ${app.resources.cpus} CPU · port ${app.port}`],
    ];
    if (s) {
      rows.push(['Memory in use', `${bytes(s.memoryBytes)}${s.memoryLimitBytes ? ` of ${bytes(s.memoryLimitBytes)}` : ''}`]);
      rows.push(['CPU time', s.cpuSeconds !== undefined ? duration(s.cpuSeconds * 1000) : '—']);
    }
    if (app.requests && app.requests.total !== undefined) {
      rows.push(['Requests', String(app.requests.total)]);
    }
    if (app.restarts) {
      rows.push(['Restarts', String(app.restarts)]);
    }
    if (app.data) {
      rows.push(['/data', `${bytes(app.data.usedBytes)} of ${bytes(app.data.quotaBytes)}`]);
    }
    replace(overview, h('dl', { class: 'facts' }, rows.map(([k, v]) => [h('dt', null, k), h('dd', null, v)])));
    // Nothing to start before the first release; nothing to redeploy before a deployment.
    const available = app.release ? (kActions[app.status] ?? []) : [];
    replace(
      actions,
      (['start', 'stop', 'restart', 'sleep', 'wake'] as Action[])
        .filter((a) => available.includes(a))
        .map((a) => actionButton(kActionLabels[a], () => lifecycle(a))),
      app.release || deployments.length > 0 ? actionButton('Redeploy', redeploy, { class: 'primary' }) : null,
    );
  };

  const renderHistory = () => {
    if (deployments.length === 0) {
      replace(historyHolder, empty('No deployments yet.'));
      return;
    }
    replace(
      historyHolder,
      table(
        ['Deployment', 'Status', 'Source', 'Steps', 'Started', ''],
        deployments.map((d) => {
          const live = app.release && d.release === app.release.id && d.status === 'live';
          const canRollback = d.release && !live && (d.status === 'live' || d.status === 'superseded') && d.release !== app.release?.id;
          return [
            h('span', null, h('code', { title: d.id }, shortId(d.id)), d.kind === 'rollback' ? h('span', { class: 'tag' }, 'rollback') : null),
            badge(d.status),
            h('span', { class: 'source' }, sourceText(d)),
            h(
              'span',
              { class: 'step-summary' },
              d.steps
                .filter((s) => s.status !== 'pending' && s.status !== 'skipped')
                .map((s) => h('span', { class: `mini-step step-${s.status.replace(/[^a-z]/g, '')}`, title: `${s.name}: ${s.status}` }, `${s.name}${s.durationMs !== undefined ? ` ${duration(s.durationMs)}` : ''}`)),
            ),
            timeEl(d.createdAt),
            h(
              'span',
              { class: 'row-actions' },
              h(
                'button',
                {
                  type: 'button',
                  class: 'small',
                  'aria-label': `Show deployment ${d.id}`,
                  onclick: () => {
                    pinned = d.id;
                    showDeployment(d);
                    currentHolder.scrollIntoView({ block: 'nearest' });
                  },
                },
                'Show',
              ),
              canRollback
                ? actionButton('Roll back to this', () => rollback(d), { class: 'small', 'aria-label': `Roll back to deployment ${d.id}` })
                : null,
            ),
          ];
        }),
        { 'aria-label': 'Deployments' },
      ),
    );
  };

  const render = () => {
    renderOverview();
    renderHistory();
    const shown = (pinned && deployments.find((d) => d.id === pinned)) || deployments[0];
    showDeployment(shown);
  };

  // ---- Runtime logs ----
  const runtimeLog = logView(`Runtime log of ${app.name}`, { empty: 'The app has not written anything yet.' });
  let runtimeStream: Stream | null = null;
  // The button names what it does (Follow / Pause); a toggle whose name changes must not be
  // aria-pressed too ("Pause, pressed" reads as the opposite of what happens).
  const followButton = h('button', { type: 'button' }, 'Follow');
  const startRuntime = () => {
    runtimeStream = follow(`${base}/logs?follow=true&lines=200`, {
      open: () => runtimeLog.clear(),
      state: (s) => {
        if (s === 'open') {
          runtimeLog.setStatus('Following: new lines appear as the app writes them.');
        } else if (s === 'reconnecting') {
          runtimeLog.setStatus('Connection lost; reconnecting…');
        } else if (s === 'closed') {
          runtimeLog.setStatus('Paused.');
        }
      },
      failed: (e) => {
        stopRuntime();
        runtimeLog.setStatus(`The log stream failed: ${e.message}`);
      },
      events: {
        log: (d) => runtimeLog.add(d as LogLine),
        // Sent only when the app is gone: reconnecting would replay nothing, again and again.
        end: () => {
          stopRuntime();
          runtimeLog.setStatus('The log stream ended.');
        },
      },
    });
    followButton.textContent = 'Pause';
  };
  const stopRuntime = () => {
    runtimeStream?.close();
    runtimeStream = null;
    followButton.textContent = 'Follow';
  };
  followButton.addEventListener('click', () => (runtimeStream ? stopRuntime() : startRuntime()));
  ctx.onDispose(stopRuntime);
  startRuntime();

  // ---- Resources ----
  const memory = h('input', { type: 'number', min: '16', inputmode: 'numeric' });
  const cpus = h('input', { type: 'number', min: '0.05', step: '0.05', inputmode: 'decimal' });
  const followMemory = follows(memory, String(app.resources.memoryMb));
  const followCpus = follows(cpus, String(app.resources.cpus));
  followers.push((a) => {
    followMemory(String(a.resources.memoryMb));
    followCpus(String(a.resources.cpus));
  });
  const resizeResult = outcome();
  const resizeForm = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Resources' },
    field('Memory (MiB)', memory),
    field('CPUs', cpus),
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Resize')),
    resizeResult,
  );
  onSubmit(resizeForm, async () => {
    try {
      await patch(`${base}/resources`, { memoryMb: Number(memory.value), cpus: Number(cpus.value) });
      resizeResult.clear();
      notify('Resources changed');
      await refresh();
    } catch (err) {
      resizeResult.show(errorBox(err));
    }
  });

  // ---- Delete ----
  const confirmInput = h('input', { autocomplete: 'off', spellcheck: 'false', class: 'mono' });
  const deleteButton = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Delete this app');
  const deleteResult = outcome();
  confirmInput.addEventListener('input', () => {
    deleteButton.disabled = confirmInput.value !== app.name;
  });
  const deleteForm = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Delete the app' },
    h('p', null, 'Deleting stops the app and removes its releases, deployments, environment and /data volume. It cannot be undone.'),
    field(`Type ${app.name} to confirm`, confirmInput),
    h('div', { class: 'form-actions' }, deleteButton),
    deleteResult,
  );
  onSubmit(deleteForm, async () => {
    if (confirmInput.value !== app.name) {
      return;
    }
    try {
      await del(base, { query: { confirm: confirmInput.value } });
      notify(`Deleted ${app.name}`);
      navigate('/apps');
    } catch (err) {
      deleteResult.show(errorBox(err));
    }
  });

  const env = envEditor(app.name);
  env.load();

  render();
  // While the deployment shown is followed live, its stream refreshes the page when it ends.
  // Any other time the page polls, also while a deployment runs that is not the one shown (a
  // pinned older one is shown, or a deploy started elsewhere): nothing else would notice it end.
  every(5000, async () => {
    if (!current?.following()) {
      await refresh();
    }
  }, ctx.onDispose);

  const deploySection = section('Deploy', deployPanel(app.name, onDeployed));
  const access = accessPanel(app, () => refresh().catch(() => {}));
  followers.push(access.update);
  forwardDrops(deploySection, ctx.onDispose);

  return h(
    'div',
    { class: 'page' },
    h('p', { class: 'crumbs' }, h('a', { href: '/apps' }, 'Apps'), ' / '),
    h('div', { class: 'page-head' }, h('h1', null, app.name), actions),
    actionResult,
    section('Overview', overview, plots.el),
    deploySection,
    section('Current deployment', currentHolder),
    section('Deployments', historyHolder),
    section('Runtime logs', h('div', { class: 'toolbar' }, followButton), runtimeLog.el),
    section('Environment', env.el),
    section('Access and domains', access.el),
    section('Resources', resizeForm),
    h('section', { class: 'card danger-zone', 'aria-labelledby': 's-delete' }, h('h2', { id: 's-delete' }, 'Delete'), deleteForm),
  );
}
