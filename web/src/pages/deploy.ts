// Deploying from the browser: drop a .tar.gz or a folder on the page (or pick one), or deploy
// a starter or a git repository. Uploads go as multipart/form-data with a `source` part.

import { post, seg } from '../api';
import { field, h, onSubmit } from '../dom';
import { bytes } from '../format';
import { readEntry, skipped, stripTop, tarGz, type PackFile } from '../tar';
import type { Deployment } from '../types';
import { errorBox, outcome } from '../ui';

export function deployPanel(appName: string, onDeployed: (dep: Deployment) => void): HTMLElement {
  const base = `/v1/apps/${seg(appName)}/deployments`;
  const result = outcome();

  const send = async (archive: Blob, label: string) => {
    result.show(h('p', { class: 'info', role: 'status' }, `Uploading ${label} (${bytes(archive.size)})…`));
    const form = new FormData();
    form.append('source', archive, 'source.tar.gz');
    try {
      const dep = await post<Deployment>(base, form);
      result.show(h('p', { class: 'info', role: 'status' }, `Deployment ${dep.id} started.`));
      onDeployed(dep);
    } catch (e) {
      result.show(errorBox(e));
    }
  };

  const packAndSend = async (files: PackFile[], label: string) => {
    const kept = files.filter((f) => f.path && !skipped(f.path));
    if (kept.length === 0) {
      result.show(errorBox(new Error(`${label} has no files to deploy.`)));
      return;
    }
    result.show(h('p', { class: 'info', role: 'status' }, `Packing ${kept.length} files…`));
    try {
      await send(await tarGz(kept), `${label} (${kept.length} files)`);
    } catch (e) {
      result.show(errorBox(e));
    }
  };

  // One upload at a time: a second drop while one is on its way would start a second deploy.
  let busy = false;
  const once = async (work: () => Promise<void>) => {
    if (busy) {
      result.show(errorBox(new Error('An upload is still on its way: wait until its deployment starts, then drop again.')));
      return;
    }
    busy = true;
    try {
      await work();
    } finally {
      busy = false;
    }
  };
  const upload = (archive: Blob, label: string) => once(() => send(archive, label));
  const deployFiles = (files: PackFile[], label: string) => once(() => packAndSend(files, label));

  const isArchive = (f: File) => /\.(tar\.gz|tgz)$/i.test(f.name);

  // File picker for an archive.
  const archiveInput = h('input', { type: 'file', accept: '.tar.gz,.tgz,application/gzip', class: 'file-input' });
  archiveInput.addEventListener('change', () => {
    const f = archiveInput.files?.[0];
    if (f) {
      if (!isArchive(f)) {
        result.show(errorBox(new Error(`${f.name} is not a .tar.gz: pick a .tar.gz or .tgz archive, or a folder.`)));
      } else {
        upload(f, f.name);
      }
      archiveInput.value = '';
    }
  });
  // Folder picker.
  const folderInput = h('input', { type: 'file', class: 'file-input', webkitdirectory: true, multiple: true });
  folderInput.addEventListener('change', () => {
    const picked = Array.from(folderInput.files ?? []);
    if (picked.length > 0) {
      const top = picked[0].webkitRelativePath.split('/')[0] || 'folder';
      deployFiles(stripTop(picked.map((f) => ({ path: f.webkitRelativePath || f.name, file: f }))), top);
      folderInput.value = '';
    }
  });

  const zone = h(
    'div',
    { class: 'dropzone', 'data-testid': 'dropzone' },
    h('p', { class: 'dropzone-title' }, 'Drop a .tar.gz or a folder here to deploy it'),
    h(
      'p',
      { class: 'dropzone-pick' },
      h('label', { class: 'button' }, 'Choose a .tar.gz', archiveInput),
      h('label', { class: 'button' }, 'Choose a folder', folderInput),
    ),
    h('p', { class: 'hint' }, 'node_modules and .git are left out; the build installs dependencies again.'),
  );
  zone.addEventListener('dragover', (e) => {
    e.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', async (e) => {
    e.preventDefault();
    zone.classList.remove('dragging');
    const dt = e.dataTransfer;
    if (!dt) {
      return;
    }
    const entries = Array.from(dt.items ?? [])
      .map((item) => (item.kind === 'file' ? item.webkitGetAsEntry?.() : null))
      .filter((x): x is FileSystemEntry => Boolean(x));
    const dir = entries.find((en) => en.isDirectory);
    if (dir) {
      try {
        deployFiles(stripTop(await readEntry(dir)), dir.name);
      } catch (err) {
        result.show(errorBox(err));
      }
      return;
    }
    const file = dt.files?.[0];
    if (!file) {
      return;
    }
    if (!isArchive(file)) {
      result.show(errorBox(new Error(`${file.name} is not a .tar.gz: drop a .tar.gz or .tgz archive, or a folder.`)));
      return;
    }
    upload(file, file.name);
  });

  // Starter or git.
  const starter = h(
    'select',
    { name: 'starter' },
    h('option', { value: '' }, '—'),
    ['hello', 'node', 'python', 'static'].map((s) => h('option', { value: s }, s)),
  );
  const repo = h('input', { name: 'repo', type: 'url', placeholder: 'https://github.com/you/app.git', spellcheck: 'false', autocomplete: 'off' });
  const ref = h('input', { name: 'ref', placeholder: 'main', spellcheck: 'false', autocomplete: 'off' });
  const submit = h('button', { type: 'submit' }, 'Deploy');
  const form = h(
    'form',
    { class: 'form-grid', 'aria-label': 'Deploy a starter or a git repository' },
    field('Starter', starter, 'a small app shipped with Kiln'),
    field('or git repository', repo),
    field('Ref', ref, 'branch, tag or commit (default: the default branch)'),
    h('div', { class: 'form-actions' }, submit),
  );
  onSubmit(form, async () => {
    let source: unknown;
    if (repo.value.trim()) {
      source = { git: { repo: repo.value.trim(), ...(ref.value.trim() ? { ref: ref.value.trim() } : {}) } };
    } else if (starter.value) {
      source = { template: starter.value };
    } else {
      result.show(errorBox(new Error('Pick a starter or enter a git repository.')));
      return;
    }
    try {
      const dep = await post<Deployment>(base, { source });
      result.clear();
      onDeployed(dep);
    } catch (err) {
      result.show(errorBox(err));
    }
  });

  return h('div', { class: 'deploy-panel' }, zone, h('details', { class: 'more' }, h('summary', null, 'Deploy a starter or a git repository'), form), result);
}

// The whole page accepts a drop too, not just the zone: a drop outside it goes to it.
export function forwardDrops(zoneHolder: HTMLElement, onDispose: (fn: () => void) => void): void {
  const over = (e: DragEvent) => {
    if (e.dataTransfer?.types.includes('Files')) {
      e.preventDefault();
    }
  };
  const drop = (e: DragEvent) => {
    const zone = zoneHolder.querySelector('.dropzone');
    if (!zone || zone.contains(e.target as Node) || !e.dataTransfer?.types.includes('Files')) {
      return;
    }
    e.preventDefault();
    zone.dispatchEvent(new DragEvent('drop', { dataTransfer: e.dataTransfer, bubbles: false, cancelable: true }));
  };
  document.addEventListener('dragover', over);
  document.addEventListener('drop', drop);
  onDispose(() => {
    document.removeEventListener('dragover', over);
    document.removeEventListener('drop', drop);
  });
}
