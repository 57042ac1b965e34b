// Packs files picked or dropped in the browser into a .tar.gz (ustar, with a pax header for
// names that ustar cannot hold) for an upload deploy, gzipped with CompressionStream.

export interface PackFile {
  path: string; // relative, / between names
  file: Blob;
}

const enc = new TextEncoder();

function octal(n: number, width: number): string {
  return n.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, type: string, prefix = ''): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(512);
  const put = (s: string | Uint8Array, at: number, max: number) => {
    const bytes = typeof s === 'string' ? enc.encode(s) : s;
    b.set(bytes.subarray(0, max), at);
  };
  put(name, 0, 100);
  put(octal(0o644, 8), 100, 8);
  put(octal(0, 8), 108, 8);
  put(octal(0, 8), 116, 8);
  put(octal(size, 12), 124, 12);
  put(octal(Math.floor(Date.now() / 1000), 12), 136, 12);
  put('        ', 148, 8);
  put(type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put(prefix, 345, 155);
  let sum = 0;
  for (const x of b) {
    sum += x;
  }
  put(octal(sum, 7) + ' ', 148, 8);
  return b;
}

function pad(n: number): Uint8Array<ArrayBuffer> {
  return new Uint8Array((512 - (n % 512)) % 512);
}

// A pax record "LEN key=value\n" whose LEN counts itself.
function paxRecord(key: string, value: string): Uint8Array<ArrayBuffer> {
  const body = enc.encode(` ${key}=${value}\n`);
  let len = body.length + 1;
  while (String(len).length + body.length > len) {
    len += 1;
  }
  return enc.encode(`${len} ${key}=${value}\n`);
}

// Splits `path` into ustar's (prefix, name) when it is ASCII and fits; null when it does not.
function ustarName(path: string): [string, string] | null {
  if (!/^[\x20-\x7e]*$/.test(path)) {
    return null;
  }
  if (path.length <= 100) {
    return ['', path];
  }
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    if (i <= 155 && path.length - i - 1 <= 100) {
      return [path.slice(0, i), path.slice(i + 1)];
    }
  }
  return null;
}

export async function tarGz(files: PackFile[]): Promise<Blob> {
  const parts: BlobPart[] = [];
  for (const f of files) {
    const names = ustarName(f.path);
    if (names) {
      parts.push(header(names[1], f.file.size, '0', names[0]));
    } else {
      const pax = paxRecord('path', f.path);
      parts.push(header('PaxHeader', pax.length, 'x'), pax, pad(pax.length));
      parts.push(header(f.path.slice(-100).replace(/[^\x20-\x7e]/g, '_'), f.file.size, '0'));
    }
    parts.push(f.file, pad(f.file.size));
  }
  parts.push(new Uint8Array(1024));
  const tar = new Blob(parts);
  const gz = tar.stream().pipeThrough(new CompressionStream('gzip'));
  return new Response(gz).blob();
}

// Folders a dropped or picked tree leaves out: dependencies the build installs again, and
// version control.
const kSkip = new Set(['node_modules', '.git', '.venv', '__pycache__']);

export function skipped(path: string): boolean {
  return path.split('/').some((part) => kSkip.has(part));
}

// Reads a dropped directory entry's files (recursively), paths relative to the entry.
export async function readEntry(entry: FileSystemEntry, prefix = ''): Promise<PackFile[]> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) =>
      (entry as FileSystemFileEntry).file(resolve, reject),
    );
    return [{ path: prefix + entry.name, file }];
  }
  if (!entry.isDirectory || kSkip.has(entry.name)) {
    return [];
  }
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const out: PackFile[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) =>
      reader.readEntries(resolve, reject),
    );
    if (batch.length === 0) {
      break;
    }
    for (const child of batch) {
      out.push(...(await readEntry(child, `${prefix}${entry.name}/`)));
    }
  }
  return out;
}

// Strips the picked or dropped folder's own name from each path ("site/index.html" →
// "index.html"), so the folder's contents are the app's root.
export function stripTop(files: PackFile[]): PackFile[] {
  return files.map((f) => ({ path: f.path.slice(f.path.indexOf('/') + 1), file: f.file }));
}
