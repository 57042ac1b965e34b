// One deployment in detail: its steps with status and duration, the failure (step, message,
// hint) when it failed, and its log — live over SSE while it runs, the lines so far after.

import { ApiError, get, post, seg } from '../api';
import { actionButton, h, replace } from '../dom';
import { badge, duration, shortId, timeEl } from '../format';
import { logView } from '../logview';
import { follow, type Stream } from '../sse';
import type { Deployment, LogLine, Step } from '../types';
import { errorBox, notify, notifyError } from '../ui';

export function isRunning(status: string): boolean {
  return status === 'queued' || status === 'building' || status === 'deploying';
}

export function stepsList(steps: Step[]): HTMLElement {
  return h(
    'ol',
    { class: 'steps', 'aria-label': 'Steps' },
    steps.map((s) =>
      h(
        'li',
        { class: `step step-${s.status.replace(/[^a-z]/g, '')}`, title: s.error ?? null },
        h('span', { class: 'step-name' }, s.name),
        badge(s.status),
        s.durationMs !== undefined ? h('span', { class: 'step-time' }, duration(s.durationMs)) : null,
      ),
    ),
  );
}

export function sourceText(dep: Deployment): string {
  const s = dep.source ?? { type: '' };
  switch (s.type) {
    case 'template':
      return `starter ${String(s.template ?? '')}`;
    case 'git':
      return `git ${String(s.repo ?? '')}${s.ref ? `@${String(s.ref)}` : ''}`;
    case 'url':
      return `${String(s.url ?? '')}`;
    case 'upload':
      return 'upload';
    case 'files':
      return `${String(s.count ?? '')} files`;
    case 'release':
      return `release ${shortId(String(s.release ?? ''))}`;
    default:
      return s.type ?? '';
  }
}

function endText(dep: Deployment): string {
  switch (dep.status) {
    case 'live':
      return 'Deployed: the release is live.';
    case 'superseded':
      return 'Deployed, since replaced by a newer release.';
    case 'failed':
      return dep.error?.step ? `Failed: the log ends where step ${dep.error.step} failed.` : 'Failed.';
    default:
      return `Ended: ${dep.status}.`;
  }
}

export interface DeploymentView {
  el: HTMLElement;
  id: string;
  // Whether it follows the deployment live (it runs; onEnd is still to come).
  following(): boolean;
  dispose(): void;
}

// Shows `initial` and keeps it current; `onEnd` runs once when a running deployment ends.
export function deploymentView(initial: Deployment, onEnd: (dep: Deployment) => void): DeploymentView {
  let dep = initial;
  let stream: Stream | null = null;
  let disposed = false;
  const steps = new Map<string, Step>(dep.steps.map((s) => [s.name, { ...s }]));
  const head = h('div', { class: 'dep-head' });
  const stepsHolder = h('div');
  const failure = h('div');
  const log = logView(`Log of deployment ${dep.id}`, { empty: 'No log lines yet.' });
  const actions = h('div', { class: 'actions' });

  const renderHead = () => {
    replace(
      head,
      h('h3', null, dep.kind === 'rollback' ? 'Rollback ' : 'Deployment ', h('code', null, dep.id)),
      h('span', { class: 'inline' }, badge(dep.status), ' started ', timeEl(dep.createdAt)),
      dep.finishedAt
        ? h('span', { class: 'muted' }, ` · took ${duration(Date.parse(dep.finishedAt) - Date.parse(dep.createdAt))}`)
        : null,
      h('span', { class: 'muted' }, ` · ${sourceText(dep)}`),
    );
    replace(stepsHolder, stepsList(Array.from(steps.values())));
    if (dep.status === 'failed' && dep.error) {
      replace(
        failure,
        h('p', { class: 'failed-step' }, 'Failed at step ', h('strong', null, dep.error.step ?? '?'), ':'),
        errorBox(
          new ApiError(0, dep.error.code ?? '', dep.error.message ?? 'the deployment failed', dep.error.hint ?? ''),
        ),
      );
    } else {
      replace(failure);
    }
    replace(
      actions,
      isRunning(dep.status)
        ? actionButton('Cancel deployment', async () => {
            try {
              await post(`/v1/deployments/${seg(dep.id)}/cancel`);
              notify('Cancelling the deployment');
            } catch (e) {
              notifyError(e);
            }
          }, { class: 'danger' })
        : null,
    );
  };

  const addLine = (l: LogLine) => log.add(l);

  const loadLines = async () => {
    try {
      const data = await get<{ lines: LogLine[]; status: string }>(`/v1/deployments/${seg(dep.id)}/logs`);
      if (disposed) {
        return;
      }
      log.clear();
      for (const l of data.lines ?? []) {
        addLine(l);
      }
      log.setStatus(endText(dep));
    } catch (e) {
      replace(failure, errorBox(e));
    }
  };

  const startFollowing = () => {
    stream = follow(`/v1/deployments/${seg(dep.id)}/logs?follow=true`, {
      open: () => log.clear(),
      state: (s) => {
        if (s === 'open' || s === 'connecting') {
          log.setStatus('Live: following the log as it is written.');
        } else if (s === 'reconnecting') {
          log.setStatus('Connection lost; reconnecting…');
        }
      },
      failed: (e) => {
        stream = null;
        log.setStatus(`The log stream failed: ${e.message}`);
        onEnd(dep);
      },
      events: {
        log: (d) => addLine(d as LogLine),
        step: (d) => {
          const s = d as Step;
          steps.set(s.name, { ...(steps.get(s.name) ?? {}), ...s });
          if (dep.status === 'queued') {
            dep = { ...dep, status: 'building' };
          }
          renderHead();
        },
        end: (d) => {
          stream?.close();
          stream = null;
          dep = d as Deployment;
          for (const s of dep.steps ?? []) {
            steps.set(s.name, s);
          }
          log.setStatus(endText(dep));
          renderHead();
          // The stored log is the whole record: a line written as the stream ended shows too.
          loadLines();
          onEnd(dep);
        },
      },
    });
  };

  renderHead();
  if (isRunning(dep.status)) {
    startFollowing();
  } else {
    loadLines();
  }
  const el = h('div', { class: 'deployment' }, head, stepsHolder, failure, actions, log.el);
  return {
    el,
    id: dep.id,
    following: () => stream !== null,
    dispose() {
      disposed = true;
      stream?.close();
    },
  };
}
