// The panel's web UI: plain DOM over the REST API (/api/v1) and its event stream. Everything the
// server sends is rendered through textContent / el(), never as HTML.
import type { CacheView } from '../cache-view.js';
import type { ComposedView, Inventory, ShareView } from '../inventory.js';
import type { JobRecord } from '../jobs.js';

const API = '/api/v1';
let inv: Inventory | undefined;
let jobs: JobRecord[] = [];
let selectedComposed: string | undefined;
let selectedJob: string | undefined;
let examples: Record<string, { summary: string; extraArgs?: string }> = {};

type Child = Node | string | number | null | undefined | false;
function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...kids: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  // styles through the CSSOM: the CSP forbids inline style attributes
  for (const [k, v] of Object.entries(attrs)) if (k === 'style') e.style.cssText = v; else e.setAttribute(k, v);
  for (const k of kids) if (k !== null && k !== undefined && k !== false) e.append(typeof k === 'number' ? String(k) : k);
  return e;
}
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const u = ['KiB', 'MiB', 'GiB', 'TiB'];
  let i = -1;
  do { n /= 1024; i++; } while (n >= 1024 && i < u.length - 1);
  return `${n.toFixed(n < 10 ? 1 : 0)} ${u[i]}`;
}
const rate = (n: number) => (n > 0 ? `${bytes(Math.round(n))}/s` : '—');
const lag = (ms: number) => (ms <= 0 ? '—' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);
function ago(ms: number): string {
  if (!ms) return '—';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 5 ? 'just now' : s < 60 ? `${s} s ago` : s < 3600 ? `${Math.floor(s / 60)} min ago` : new Date(ms).toLocaleString();
}
const dur = (a?: number, b?: number) => (a ? `${Math.round(((b ?? Date.now()) - a) / 1000)} s` : '—');
const badge = (state: string, text = state) => el('span', { class: `badge ${state}`, 'data-state': state }, text);

async function api<T>(method: string, path: string, body?: unknown, type = 'application/json'): Promise<T> {
  const init: RequestInit = { method, headers: {} };
  if (body !== undefined) {
    (init.headers as Record<string, string>)['content-type'] = type;
    init.body = type === 'application/json' ? JSON.stringify(body) : (body as BodyInit);
  }
  const r = await fetch(API + path, init);
  if (r.status === 401) location.reload();
  const j = (await r.json()) as T & { error?: { message: string } };
  if (!r.ok) throw new Error(j.error?.message ?? `HTTP ${r.status}`);
  return j;
}

function say(id: string, text: string, ok = true): void {
  const m = $(id);
  m.textContent = text;
  m.className = `msg ${ok ? 'ok' : 'error'}`;
}

// ---- tabs
function showTab(): void {
  const name = location.hash.slice(1) || 'files';
  for (const a of document.querySelectorAll<HTMLAnchorElement>('#tabs a')) a.classList.toggle('active', a.dataset.tab === name);
  for (const s of document.querySelectorAll<HTMLElement>('.tab')) s.classList.toggle('active', s.id === `tab-${name}`);
}

// ---- files: requests, consent, shared files
function renderFiles(): void {
  if (!inv) return;
  const vmSel = $<HTMLSelectElement>('req-vm');
  const names = inv.vms.map((v) => v.name);
  if ([...vmSel.options].map((o) => o.value).join() !== names.join()) vmSel.replaceChildren(...names.map((n) => el('option', { value: n }, n)));
  $('host').textContent = inv.host;
  const rows: { share?: ShareView; vm: string; path: string }[] = [];
  for (const v of inv.vms) {
    for (const s of v.shares) rows.push({ share: s, vm: v.name, path: s.path });
    for (const f of v.files) if (!v.shares.some((s) => s.path === f.path)) rows.push({ vm: v.name, path: f.path });
  }
  const tbody = $('shares-table').querySelector('tbody')!;
  tbody.replaceChildren(...rows.map((r) => {
    const v = inv!.vms.find((x) => x.name === r.vm)!;
    const f = v.files.find((x) => x.path === r.path);
    const state = r.share?.state ?? 'granted';
    return el('tr', { 'data-vm': r.vm, 'data-path': r.path, 'data-size': f ? String(f.servedSize) : '' },
      el('td', {}, r.vm), el('td', { class: 'mono' }, r.path),
      el('td', { title: r.share?.message ?? '' }, badge(state), ' ', el('span', { class: 'muted' }, state === 'pending' ? 'waiting for the owner' : r.share && state !== 'granted' ? r.share.message : '')),
      el('td', { class: 'num' }, f ? bytes(f.servedSize) : '—'),
      el('td', { class: 'num' }, f ? rate(f.growthBytesPerSec) : '—'),
      el('td', { class: 'num' }, f ? lag(f.freshnessLagMs) : '—'),
      el('td', { class: 'num' }, f ? f.pendingRanges : '—'),
      el('td', { class: 'muted' }, ago(r.share?.updatedMs ?? f?.lastUpdateMs ?? 0)));
  }));
  $('shares-empty').hidden = rows.length > 0;
  const files = inv.vms.flatMap((v) => v.files);
  const pending = inv.vms.flatMap((v) => v.shares).filter((s) => s.state === 'pending').length;
  $('file-stats').replaceChildren(
    el('div', { class: 'stat' }, el('b', {}, files.length), el('span', {}, 'shared files')),
    el('div', { class: 'stat' }, el('b', {}, pending), el('span', {}, 'waiting for consent')),
    el('div', { class: 'stat' }, el('b', {}, bytes(files.reduce((a, f) => a + f.servedSize, 0))), el('span', {}, 'served to Hadoop')));
}

// ---- compose
function pathsBlock(c: ComposedView): HTMLElement {
  const copy = (text: string) => {
    const b = el('button', { class: 'small', type: 'button' }, 'copy');
    b.addEventListener('click', (e) => { e.stopPropagation(); void navigator.clipboard?.writeText(text); b.textContent = 'copied'; });
    return b;
  };
  return el('div', { class: 'paths' },
    el('div', {}, el('code', { 'data-kind': 'webhdfs' }, c.webhdfs), copy(c.webhdfs)),
    el('div', {}, el('code', { class: 'muted', 'data-kind': 'mount' }, c.mountPath), copy(c.mountPath)));
}

function renderCompose(): void {
  if (!inv) return;
  const granted = inv.vms.flatMap((v) => v.files.filter((f) => !f.refused));
  const box = $('compose-sources');
  const checked = new Set([...box.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value));
  box.replaceChildren(...granted.map((f) => {
    const key = `${f.vm}:${f.path}`;
    const cb = el('input', { type: 'checkbox', value: key, 'data-vm': f.vm, 'data-path': f.path });
    cb.checked = checked.has(key);
    return el('label', {}, cb, el('span', { class: 'mono' }, key), el('span', { class: 'muted' }, bytes(f.servedSize)));
  }));
  $('compose-empty').hidden = granted.length > 0;
  const composed = inv.composed.filter((c) => c.kind === 'composed');
  $('composed-table').querySelector('tbody')!.replaceChildren(...composed.map((c) => {
    const tr = el('tr', { class: `clickable${c.name === selectedComposed ? ' selected' : ''}`, 'data-name': c.name },
      el('td', {}, el('b', {}, c.fileName)),
      el('td', { class: 'mono' }, c.sources.map((s) => `${s.vm}:${s.path}`).join(', ')),
      el('td', { class: 'num' }, bytes(c.size)), el('td', { class: 'num' }, c.segments), el('td', {}, pathsBlock(c)));
    tr.addEventListener('click', () => { selectedComposed = c.name; renderCompose(); void showComposed(c.name); });
    return tr;
  }));
  $('composed-empty').hidden = composed.length > 0;
  renderJobInputs();
}

async function showComposed(name: string): Promise<void> {
  const d = await api<ComposedView & { segmentList: { at: number; file: string | null; offset: number; length: number }[]; segmentListTruncated: boolean }>('GET', `/composed/${encodeURIComponent(name)}`);
  $('composed-detail').replaceChildren(
    el('h2', {}, d.fileName),
    el('dl', { class: 'kv' }, el('dt', {}, 'Size'), el('dd', {}, bytes(d.size)), el('dt', {}, 'Segments'), el('dd', {}, d.segments),
      el('dt', {}, 'Made of'), el('dd', { class: 'mono' }, d.sources.map((s) => `${s.vm}:${s.path}`).join(', '))),
    pathsBlock(d),
    el('div', { class: 'scroll' }, el('table', { class: 'list' },
      el('thead', {}, el('tr', {}, el('th', { class: 'num' }, 'At'), el('th', { class: 'num' }, 'Length'), el('th', {}, 'Image file'), el('th', { class: 'num' }, 'Offset'))),
      el('tbody', {}, ...d.segmentList.map((s) => el('tr', {}, el('td', { class: 'num' }, bytes(s.at)), el('td', { class: 'num' }, bytes(s.length)),
        el('td', { class: 'mono' }, s.file ? s.file.split('/').pop()! : '(zeros)'), el('td', { class: 'num' }, s.file ? s.offset : '')))))),
  );
}

// ---- jobs
function renderJobInputs(): void {
  if (!inv) return;
  const box = $('job-inputs');
  const checked = new Set([...box.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value));
  const composed = inv.composed.filter((c) => c.kind === 'composed' || inv!.composed.length < 20);
  box.replaceChildren(...composed.map((c) => {
    const cb = el('input', { type: 'checkbox', value: c.name, 'data-name': c.name });
    cb.checked = checked.has(c.name);
    return el('label', {}, cb, el('span', {}, c.fileName), el('span', { class: 'muted' }, bytes(c.size)));
  }));
  $('job-inputs-empty').hidden = composed.length > 0;
}

function renderJobs(): void {
  $('jobs-table').querySelector('tbody')!.replaceChildren(...jobs.map((j) => {
    const pct = Math.round((j.progress.map + j.progress.reduce) / 2);
    const tr = el('tr', { class: `clickable${j.id === selectedJob ? ' selected' : ''}`, 'data-id': j.id },
      el('td', { class: 'mono' }, j.id), el('td', {}, j.program === 'jar' ? 'uploaded jar' : j.program),
      el('td', {}, j.inputs.map((i) => i.name).join(', ')), el('td', {}, badge(j.state)),
      el('td', {}, el('div', { class: 'bar', title: `map ${j.progress.map}% · reduce ${j.progress.reduce}%` }, el('div', { style: `width:${pct}%` }))),
      el('td', { class: 'muted' }, ago(j.submittedMs)), el('td', { class: 'num' }, dur(j.startedMs, j.finishedMs)));
    tr.addEventListener('click', () => { selectedJob = j.id; renderJobs(); void showJob(j.id); });
    return tr;
  }));
  $('jobs-empty').hidden = jobs.length > 0;
  if (selectedJob) void showJob(selectedJob);
}

let jobSeq = 0;
async function showJob(id: string): Promise<void> {
  const seq = ++jobSeq;
  const j = await api<JobRecord & { log: string[] }>('GET', `/jobs/${id}`);
  const out = j.state === 'succeeded' ? await api<{ files: { name: string; size: number }[]; preview: string; truncated: boolean }>('GET', `/jobs/${id}/output`) : undefined;
  if (seq !== jobSeq) return;
  const kids: Child[] = [
    el('h2', {}, `${j.program === 'jar' ? 'Uploaded jar' : j.program} `, badge(j.state)),
    el('dl', { class: 'kv' },
      el('dt', {}, 'Inputs'), el('dd', { class: 'mono' }, j.inputs.map((i) => i.uri).join(', ')),
      el('dt', {}, 'Output'), el('dd', { class: 'mono', 'data-kind': 'output' }, j.output),
      el('dt', {}, 'Runner'), el('dd', {}, j.runner, j.hadoopJobId ? ` · ${j.hadoopJobId}` : ''),
      el('dt', {}, 'Progress'), el('dd', {}, `map ${j.progress.map}% · reduce ${j.progress.reduce}%`,
        el('div', { class: 'bar' }, el('div', { style: `width:${Math.round((j.progress.map + j.progress.reduce) / 2)}%` }))),
      el('dt', {}, 'Time'), el('dd', {}, j.startedMs ? `${dur(j.startedMs, j.finishedMs)}${j.finishedMs ? '' : ' so far'}` : 'waiting for the job before it'),
      j.message ? el('dt', {}, 'Result') : null, j.message ? el('dd', { class: j.state === 'failed' ? 'error' : '' }, j.message) : null),
  ];
  if (out) {
    const rows = out.preview.split('\n').filter(Boolean).map((l) => l.split('\t'));
    const numeric = rows.length > 0 && rows.every((r) => r.length === 2 && /^-?\d+(\.\d+)?$/.test(r[1]!));
    if (numeric) rows.sort((a, b) => Number(b[1]) - Number(a[1]));
    kids.push(el('p', { class: 'muted' }, `${rows.length} result lines${numeric ? ', largest first' : ''}${out.truncated ? ' (first 256 KiB)' : ''} · `,
      out.files.map((f) => `${f.name} ${bytes(f.size)}`).join(', ')));
    kids.push(el('div', { class: 'scroll' }, el('table', { class: 'list', id: 'job-output' },
      el('tbody', {}, ...rows.slice(0, 200).map((r) => el('tr', {}, ...r.map((c, i) => el('td', { class: i > 0 && numeric ? 'num' : 'mono' }, c)),
        numeric ? el('td', { class: 'barcell' }, el('div', { class: 'bar thin' }, el('div', { style: `width:${(100 * Number(r[1])) / Math.max(1, Number(rows[0]![1]))}%` }))) : null))))));
  } else if (j.log.some((l) => l.trim())) {
    kids.push(el('pre', { class: 'log' }, j.log.filter((l) => l.trim()).slice(-30).join('\n')));
  }
  if (j.state === 'running' || j.state === 'queued') {
    const b = el('button', { type: 'button' }, 'Cancel');
    b.addEventListener('click', () => void api('POST', `/jobs/${id}/cancel`, {}));
    kids.push(el('div', { class: 'row' }, b));
  }
  $('job-detail').replaceChildren(...kids.filter((k): k is Node => k instanceof Node));
}

// ---- hosts & VMs
function renderHosts(): void {
  if (!inv) return;
  $('vm-cards').replaceChildren(...inv.vms.map((v) => el('div', { class: 'card', 'data-vm': v.name },
    el('h2', {}, v.name, ' ', badge(v.runState === 'running' ? 'running-vm' : 'none', v.runState ?? 'unknown')),
    el('dl', { class: 'kv' },
      el('dt', {}, 'QMP'), el('dd', {}, badge(v.qmp)),
      el('dt', {}, 'Guest channel'), el('dd', {}, badge(v.channel), v.guest ? el('span', { class: 'muted' }, ` ${v.guest.software}`) : ''),
      el('dt', {}, 'Shared files'), el('dd', {}, v.files.length),
      el('dt', {}, 'Freshness lag'), el('dd', {}, lag(v.freshnessLagMs)),
      el('dt', {}, 'Pending ranges'), el('dd', {}, v.pendingRanges),
      v.lastError ? el('dt', {}, 'Last error') : null, v.lastError ? el('dd', { class: 'error' }, v.lastError) : null),
    el('table', { class: 'list' }, el('thead', {}, el('tr', {}, el('th', {}, 'Disk'), el('th', {}, 'Format'), el('th', {}, 'Image (top of chain)'), el('th', { class: 'num' }, 'Layers'))),
      el('tbody', {}, ...v.disks.map((d) => el('tr', {}, el('td', {}, d.serial ?? '—'), el('td', {}, d.format), el('td', { class: 'mono' }, d.file.split('/').pop()!), el('td', { class: 'num' }, d.chain.length))))),
  )));
  if (!inv.vms.length) $('vm-cards').replaceChildren(el('p', { class: 'empty' }, 'No VMs configured for this host agent.'));
}

// ---- cache
function renderCache(c: CacheView): void {
  const chart = $('cache-chart');
  const rows = c.weights?.rows ?? [];
  if (!rows.length) chart.replaceChildren(el('p', { class: 'empty' }, c.empty ?? 'No weights yet.'));
  else {
    const ns = 'http://www.w3.org/2000/svg';
    const s = (tag: string, a: Record<string, string | number>, text?: string) => {
      const e = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(a)) e.setAttribute(k, String(v));
      if (text !== undefined) e.textContent = text;
      return e;
    };
    const W = 760, rowH = 34, left = 130, H = rows.length * rowH + 30;
    const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, width: '100%', role: 'img', 'aria-label': 'cache and IOPS weights per VM' });
    for (const t of [0, 0.25, 0.5, 0.75, 1]) {
      const x = left + t * (W - left - 60);
      svg.append(s('line', { x1: x, x2: x, y1: 0, y2: H - 20, class: 'axis' }), s('text', { x, y: H - 4, 'text-anchor': 'middle' }, `${t * 100}%`));
    }
    rows.forEach((r, i) => {
      const y = i * rowH + 6;
      const w = (v: number) => Math.max(1, v * (W - left - 60));
      svg.append(s('text', { x: left - 10, y: y + 17, 'text-anchor': 'end' }, r.name));
      svg.append(s('rect', { x: left, y, width: w(r.ws), height: 11, rx: 2, fill: '#2f6fde' }), s('text', { x: left + w(r.ws) + 6, y: y + 10 }, `${(r.ws * 100).toFixed(1)}%`));
      svg.append(s('rect', { x: left, y: y + 13, width: w(r.wi), height: 11, rx: 2, fill: '#1f9d55' }), s('text', { x: left + w(r.wi) + 6, y: y + 23 }, `${(r.wi * 100).toFixed(1)}%`));
    });
    chart.replaceChildren(
      el('div', { class: 'legend' }, el('span', {}, el('i', { style: 'background:#2f6fde' }), 'SSD cache space (ws)'), el('span', {}, el('i', { style: 'background:#1f9d55' }), 'IOPS (wi)'),
        el('span', {}, `plan of ${new Date(c.weights!.at).toLocaleTimeString()} · ${c.weights!.solver} · fitness ${c.weights!.fitness.toFixed(3)}`)),
      svg);
  }
  $('cache-table').querySelector('tbody')!.replaceChildren(...c.decisions.map((d) => el('tr', {},
    el('td', { class: 'muted' }, new Date(d.at).toLocaleTimeString()), el('td', { class: 'num' }, d.step), el('td', {}, badge(d.action)),
    el('td', { class: 'num' }, d.move === undefined || d.move < 0 ? '—' : d.move.toFixed(3)), el('td', {}, d.reason))));
  $('cache-empty').textContent = c.decisions.length ? '' : c.empty ?? 'No decisions yet.';
}

// ---- forms
function wireForms(): void {
  $('request-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const vm = $<HTMLSelectElement>('req-vm').value;
    const path = $<HTMLInputElement>('req-path').value.trim();
    api<ShareView>('POST', '/shares', { vm, path })
      .then(() => { say('req-msg', `Asked ${vm} for ${path}; waiting for the owner.`); $<HTMLInputElement>('req-path').value = ''; })
      .catch((err: Error) => say('req-msg', err.message, false));
  });
  $('compose-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const sources = [...$('compose-sources').querySelectorAll<HTMLInputElement>('input:checked')].map((i) => ({ vm: i.dataset.vm!, path: i.dataset.path! }));
    const name = $<HTMLInputElement>('compose-name').value.trim();
    if (!sources.length) return say('compose-msg', 'Pick at least one granted file.', false);
    api<ComposedView>('POST', '/composed', { name, sources })
      .then((c) => { say('compose-msg', `Composed ${c.fileName}.`); selectedComposed = c.name; void showComposed(c.name); })
      .catch((err: Error) => say('compose-msg', err.message, false));
  });
  const prog = $<HTMLSelectElement>('job-program');
  prog.addEventListener('change', () => {
    $('job-jar-row').hidden = prog.value !== 'jar';
    $('job-args-row').hidden = !(prog.value === 'jar' || examples[prog.value]?.extraArgs);
  });
  $('job-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void (async () => {
      try {
        const inputs = [...$('job-inputs').querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value);
        if (!inputs.length) throw new Error('Pick at least one input.');
        const argsText = $<HTMLInputElement>('job-args').value.trim();
        const body: Record<string, unknown> = { program: prog.value, inputs, args: argsText && !$('job-args-row').hidden ? argsText.split(/\s+/) : [] };
        if (prog.value === 'jar') {
          const f = $<HTMLInputElement>('job-jar').files?.[0];
          if (!f) throw new Error('Choose a jar to upload.');
          body.jar = (await api<{ id: string }>('POST', '/jars', f, 'application/java-archive')).id;
        }
        const j = await api<JobRecord>('POST', '/jobs', body);
        selectedJob = j.id;
        say('job-msg', `Submitted ${j.id}.`);
      } catch (err) {
        say('job-msg', (err as Error).message, false);
      }
    })();
  });
}

async function start(): Promise<void> {
  showTab();
  window.addEventListener('hashchange', showTab);
  wireForms();
  const p = await api<{ examples: typeof examples; runner: string }>('GET', '/programs');
  examples = p.examples;
  $('job-program').replaceChildren(...Object.entries(examples).map(([n, x]) => el('option', { value: n }, `${n} — ${x.summary}`)), el('option', { value: 'jar' }, 'upload a jar…'));
  $('job-runner').textContent = `runs on: ${p.runner === 'local' ? 'local job runner' : p.runner}`;
  const es = new EventSource(`${API}/events`);
  es.addEventListener('open', () => $('live').classList.remove('off'));
  es.addEventListener('error', () => $('live').classList.add('off'));
  es.addEventListener('inventory', (e) => { inv = JSON.parse((e as MessageEvent<string>).data) as Inventory; renderFiles(); renderCompose(); renderHosts(); });
  es.addEventListener('jobs', (e) => { jobs = JSON.parse((e as MessageEvent<string>).data) as JobRecord[]; renderJobs(); });
  es.addEventListener('cache', (e) => renderCache(JSON.parse((e as MessageEvent<string>).data) as CacheView));
}

void start();
