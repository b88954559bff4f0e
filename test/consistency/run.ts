// One consistency run, shared by the in-suite test and the soak benchmark: boots a guest, starts
// the host agent (QMP, guest helper over a hot-plugged channel, image mapper, FUSE mount) and the
// WebHDFS gateway over the agent's store, runs the workload inside the guest and the readers on the
// host, fetches the guest's log as it grows and checks reads online; restarts the agent mid-run
// (the second time with its journal damaged). docs/consistency.md.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { buildSync } from 'esbuild';
import { LocalNamespace } from '../../src/hdfs/namespace.js';
import { startGateway, type Gateway } from '../../src/hdfs/server.js';
import type { CompositionSource, SourceEvent } from '../../src/hdfs/index.js';
import type { CompositionStore } from '../../src/fs/index.js';
import { HostAgent } from '../../src/host/agent.js';
import { parseConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { compositionName, unescapePath } from '../../src/host/naming.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';
import { Checker, formatViolation, type Report } from './checker.js';
import { clockFrom, type ClockSample, type GuestOp } from './history.js';
import { hostNow, startReaders, type Readers } from './readers.js';
import { pattern } from './pattern.js';
import { REVOKE_NAME, workloadPaths, type WorkloadConfig } from './workload.js';

export interface RunOptions {
  durationMs: number;
  seed?: number;
  /** documented visibility window W, ms (docs/consistency.md) */
  windowMs?: number;
  readerPauseMs?: number;
  workloadPauseMs?: number;
  /** progress lines */
  log?: (line: string) => void;
  name?: string;
  /** the workload's rotation size (default 8 MiB) */
  rotateBytes?: number;
  /** stops the run early; it cleans up (guest, agent, mount, readers) as when it fails */
  signal?: AbortSignal;
  /** guest boot timeout (default 180 s: a loaded 2-core machine boots a TCG guest slowly) */
  bootTimeoutMs?: number;
  /** agent restarts, evenly spread over the workload (case 3; default 2); every second one damages the journal first (case 5) */
  restarts?: number;
  /** a third data disk that is a window (raw offset/size) of a larger raw file, other bytes around it (case 7; default on) */
  rawWindow?: boolean;
  /** a data disk with discard=unmap and detect-zeroes=unmap, and the workload's discards on it (case 6; default on) */
  discard?: boolean;
}

export interface RunResult {
  report: Report;
  clock: ClockSample[];
  readers: { mmapRestarts: number; errors: number; errorSamples: string[]; holdEnded: number };
  guestOps: number;
  wallMs: number;
}

const HERE = dirname(fileURLToPath(import.meta.url));
const VM = 'vm1';
const GLOG = '/root/cons-ops.jsonl';
const GDONE = '/root/cons-done';

/** Bundles workload.ts into one file the guest's node runs. */
export function bundleWorkload(outfile: string): void {
  buildSync({ entryPoints: [join(HERE, 'workload.ts')], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error' });
}

const MiB = 1 << 20;
/** the raw window: 8 MiB of another tenant's bytes, the guest's 128 MiB, 8 MiB more */
const WIN = { offset: 8 * MiB, size: 128 * MiB, after: 8 * MiB };
/** whose pattern the bytes around the window are (no workload key is this large) */
export const TENANT_KEY = 0x7e4a47;

/**
 * QEMU arguments and images for the extra data disks: `rwin`, a raw window of a larger file
 * (ext4 inside the window, another tenant's pattern around it), and `trim`, a qcow2 disk whose
 * discards free clusters (discard=unmap, and zeros written become discards: detect-zeroes=unmap).
 */
function extraDisks(dir: string, o: RunOptions): { args: string[]; dirs: { disk: string; dir: string; trim?: boolean }[] } {
  const args: string[] = [];
  const dirs: { disk: string; dir: string; trim?: boolean }[] = [];
  const mkfs = (file: string, bytes: number, label: string, offset = 0) =>
    execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-m', '0', '-L', label, '-E', `lazy_itable_init=0,lazy_journal_init=0,nodiscard${offset ? `,offset=${offset}` : ''}`, file, String(bytes / 4096)], { stdio: ['ignore', 'pipe', 'pipe'] });
  if (o.rawWindow ?? true) {
    const f = join(dir, 'rwin.raw');
    const fd = openSync(f, 'w');
    try {
      for (let at = 0; at < WIN.offset; at += MiB) writeSync(fd, pattern(TENANT_KEY, 0, at, MiB), 0, MiB, at);
      const tail = WIN.offset + WIN.size;
      for (let at = tail; at < tail + WIN.after; at += MiB) writeSync(fd, pattern(TENANT_KEY, 0, at, MiB), 0, MiB, at);
    } finally { closeSync(fd); }
    mkfs(f, WIN.size, 'rwin', WIN.offset);
    args.push(
      '-blockdev', `driver=file,filename=${f},node-name=rwin-file,cache.direct=off`,
      '-blockdev', `driver=raw,file=rwin-file,offset=${WIN.offset},size=${WIN.size},node-name=rwin-fmt`,
      '-device', 'virtio-blk-pci,drive=rwin-fmt,id=vd-rwin,serial=rwin',
    );
    dirs.push({ disk: 'rwin', dir: '/mnt/rwin/cons' });
  }
  if (o.discard ?? true) {
    const raw = join(dir, 'trim.raw');
    const f = join(dir, 'trim.qcow2');
    execFileSync('truncate', ['-s', String(256 * MiB), raw]);
    mkfs(raw, 256 * MiB, 'trim');
    execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, f]);
    rmSync(raw);
    args.push(
      '-blockdev', `driver=file,filename=${f},node-name=trim-file,cache.direct=off,discard=unmap`,
      '-blockdev', `driver=qcow2,file=trim-file,node-name=trim-fmt,discard=unmap,detect-zeroes=unmap`,
      '-device', 'virtio-blk-pci,drive=trim-fmt,id=vd-trim,serial=trim',
    );
    dirs.push({ disk: 'trim', dir: '/mnt/trim/cons', trim: true });
  }
  return { args, dirs };
}

/** Flips one byte in the middle of the agent's journal (case 5): the agent must notice, keep a copy and trust none of it. */
function damageJournal(stateDir: string): number {
  const f = join(stateDir, 'compositions.journal');
  const size = statSync(f).size;
  if (size < 64) throw new Error(`the journal is too short to damage (${size} B)`);
  const at = Math.floor(size / 2);
  const fd = openSync(f, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, at);
    b[0] = b[0]! ^ 0x5a;
    writeSync(fd, b, 0, 1, at);
  } finally { closeSync(fd); }
  return at;
}

/**
 * The gateway's source over whichever agent runs now: across a restart it follows the new agent's
 * store, and the old store's files end (removed) for it as they do for the mount.
 */
class AgentSource implements CompositionSource {
  private store?: CompositionStore;
  private readonly listeners = new Set<(ev: SourceEvent) => void>();
  private readonly onChange = (name: string) => { for (const l of this.listeners) l({ type: 'change', name }); };
  private readonly onRemove = (name: string) => { for (const l of this.listeners) l({ type: 'remove', name }); };
  names(): string[] { return this.store?.list().map((c) => c.name) ?? []; }
  get(name: string) { return this.store?.get(name); }
  subscribe(listener: (ev: SourceEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  use(store: CompositionStore | undefined): void {
    if (this.store) {
      this.store.off('change', this.onChange);
      this.store.off('remove', this.onRemove);
      for (const n of this.names()) this.onRemove(n);
    }
    this.store = store;
    store?.on('change', this.onChange);
    store?.on('remove', this.onRemove);
  }
}

const CLK_REQ = '/root/cons-clock.req';
const CLK_RSP = '/root/cons-clock.rsp';

/** guest − host clock, asked of the workload's clock server over the control channel; the best of `n` round trips. */
export async function sampleClock(vm: GuestVm, n = 5): Promise<ClockSample> {
  let best: ClockSample | undefined;
  for (let i = 0; i < n; i++) {
    const h0 = hostNow();
    const g = Number((await vm.sh(`echo > ${CLK_REQ}; cat ${CLK_RSP}`, { timeoutMs: 10_000 })).trim());
    const h1 = hostNow();
    const s = { t: (h0 + h1) / 2, offset: g - (h0 + h1) / 2, err: (h1 - h0) / 2 };
    if (!best || s.err < best.err) best = s;
  }
  return best!;
}

export async function runConsistency(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? (() => {});
  const seed = o.seed ?? 1;
  const t0 = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'livemr-consistency-'));
  let vm: GuestVm | undefined;
  let agent: HostAgent | undefined;
  let gw: Gateway | undefined;
  let readers: Readers | undefined;
  const agentLogs: string[] = [];
  try {
    bundleWorkload(join(dir, 'workload.mjs'));
    const extra = extraDisks(dir, o);
    vm = await bootGuest({ name: o.name ?? 'consistency', channel: false, memoryMb: 768, bootTimeoutMs: o.bootTimeoutMs ?? 180_000, extraArgs: extra.args });
    const dirs = [{ disk: 'data', dir: '/mnt/data/cons' }, { disk: 'pdata', dir: '/mnt/pdata/cons' }, ...extra.dirs];
    for (const d of extra.dirs) await vm.sh(`grep -q ' /mnt/${d.disk} ' /proc/mounts`); // the guest's init mounted it
    const cfgW: WorkloadConfig = { seed, durationMs: o.durationMs, log: GLOG, done: GDONE, dirs, pauseMs: o.workloadPauseMs ?? 5, rotateBytes: o.rotateBytes };
    writeFileSync(join(dir, 'cons.json'), JSON.stringify(cfgW));
    await vm.put(join(dir, 'workload.mjs'), '/root/cons-workload.mjs');
    await vm.put(join(dir, 'cons.json'), '/root/cons.json');
    await vm.sh(`mkdir -p ${dirs.map((d) => d.dir).join(' ')}; rm -f ${GLOG} ${GDONE} ${CLK_REQ} ${CLK_RSP} ${CLK_REQ}.ready; mkfifo ${CLK_REQ} ${CLK_RSP}`);
    await vm.sh(`(node /root/cons-workload.mjs --clock ${CLK_REQ} ${CLK_RSP}) > /root/cons-clock.out 2>&1 &`);
    await until('the guest clock server', async () => (await vm!.exec(`test -e ${CLK_REQ}.ready`)).code === 0, 120_000, 500);
    const cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null,
      vms: [{ name: VM, qmp: vm.qmpSocket, share: workloadPaths(dirs) }],
    });
    const logger = createLogger({ level: 'info', sink: (l) => { agentLogs.push(l); if (agentLogs.length > 4000) agentLogs.shift(); } });
    agent = await HostAgent.start(cfg, logger);
    await until('the guest channel', async () => (await vm!.sh('cat /sys/class/virtio-ports/*/name')).includes('org.livemr.0'), 60_000, 200);
    const source = new AgentSource();
    source.use(agent.store);
    const ns = new LocalNamespace(source, { host: 'kvm-local', addr: '', url: '' });
    gw = await startGateway({ namespace: ns, blockSize: 1 << 20 });
    ns.location = { host: 'kvm-local', addr: `127.0.0.1:${gw.port}`, url: gw.url };

    const samples: ClockSample[] = [await sampleClock(vm)];
    // the bytes around the raw window are another tenant's: named if they ever show (case 7)
    const outside = (o.rawWindow ?? true) ? [{ name: 'outside the raw window', key: TENANT_KEY, gen: 0, max: WIN.offset + WIN.size + WIN.after }] : [];
    const checker = new Checker({ windowMs: o.windowMs ?? 2000, outside }, clockFrom(samples));
    // what the host published, by guest path: a name shown, shrunk, removed, each with the guest
    // inode it is about. A name that begins to show another guest file (a rename over it) is
    // removed first (docs/host.md, "Names"), so its removal is the event, and a composition shows
    // one inode all its life: the inode is looked up (agent status) once, when the name appears,
    // not on every change. These listeners run after the mount's (added when it mounted): the time
    // is after the cut.
    const shown = new Map<string, { size: number; ino?: number }>();
    const prefix = `${VM}_`;
    const follow = (store: CompositionStore) => {
      shown.clear();
      store.on('change', (name) => {
        if (!name.startsWith(prefix)) return;
        const t = hostNow();
        const path = unescapePath(name.slice(prefix.length));
        const size = store.get(name)?.segments.size ?? 0;
        const last = shown.get(name);
        if (!last) {
          const ino = agent?.status().vms.flatMap((v) => v.files).find((f) => f.name === name)?.inode;
          shown.set(name, { size, ino });
          checker.addHostEvent({ t, path, kind: 'show', size, ino });
          return;
        }
        if (size < last.size) checker.addHostEvent({ t, path, kind: 'shrink', size, ino: last.ino });
        last.size = size;
      });
      store.on('remove', (name) => {
        if (!name.startsWith(prefix)) return;
        const ino = shown.get(name)?.ino;
        shown.delete(name);
        const path = unescapePath(name.slice(prefix.length));
        checker.addHostEvent({ t: hostNow(), path, kind: 'remove', size: 0, ino });
        // a revoked file's name is asked for again, as a user would (the guest keeps a revoked path
        // denied until the host asks): the workload creates it again with consent
        if (path.endsWith(`/${REVOKE_NAME}`)) setImmediate(() => { try { agent?.requestShare(VM, path); } catch { /* restarting */ } });
      });
    };
    follow(agent.store);
    // case 3 (and 5): the agent stopped and started again mid-run on the same state, the guest writing on
    const restarts = o.restarts ?? 2;
    let restarted = 0;
    let wStart = Date.now();
    const restartAt = (i: number) => wStart + ((i + 1) * o.durationMs) / (restarts + 1);
    const restartAgent = async () => {
      const damaged = restarted % 2 === 1;
      restarted++;
      // in production a restart is a process exit, which ends the FUSE session; in-process, stop()
      // leaves the session to descriptors still open unless fusectl can abort it (not mounted on
      // every host): the held descriptors are closed first, as the exit would end them
      await readers!.quiet(true);
      const down = hostNow();
      source.use(undefined); // the gateway goes down with the agent: its streams end now
      await agent!.stop();
      agent = undefined;
      const at = damaged ? damageJournal(cfg.stateDir) : undefined;
      agent = await HostAgent.start(cfg, logger);
      follow(agent.store);
      source.use(agent.store);
      const up = hostNow();
      checker.addHostEvent({ t: up, path: '*', kind: 'restart', size: 0 });
      void readers!.quiet(false);
      log(`[consistency] agent restarted${at !== undefined ? ` with its journal damaged at byte ${at}` : ''}: down ${(up - down).toFixed(0)} ms${agent.store.damage ? `, it withheld ${agent.store.damage.withheld.length} file(s) and kept a copy in ${agent.store.damage.copy}` : ''}`);
      if (damaged && !agent.store.damage) throw new Error('the agent did not notice its damaged journal');
    };

    await vm.sh(`(node /root/cons-workload.mjs /root/cons.json) > /root/cons-workload.out 2>&1 &`);
    wStart = Date.now();
    log(`[consistency] workload started for ${(o.durationMs / 1000).toFixed(0)} s; clock offset ${samples[0]!.offset.toFixed(1)} ± ${samples[0]!.err.toFixed(1)} ms`);
    readers = startReaders({
      mount: cfg.mountpoint, vm: VM, gateway: gw.url.replace(/\/+$/, ''), seed, pauseMs: o.readerPauseMs ?? 20,
      tailPaths: dirs.map((d) => `${d.dir}/app.log`),
      record: (r) => checker.addRead(r),
      busy: () => checker.backlog > 400,
    });

    // follow the guest's log; check what it covers
    let pos = 0;
    let rest = '';
    let ended = false;
    let lastSample = hostNow();
    let lastProgress = hostNow();
    const fetchLog = async () => {
      const r = await vm!.exec(`tail -c +${pos + 1} ${GLOG} 2>/dev/null`);
      pos += r.stdout.length;
      const text = rest + r.stdout.toString('utf8');
      const lines = text.split('\n');
      rest = lines.pop()!;
      const ops = lines.filter((l) => l).map((l) => JSON.parse(l) as GuestOp);
      checker.addOps(ops);
      if (ops.some((x) => x.op === 'end')) ended = true;
    };
    const deadline = Date.now() + o.durationMs + 300_000;
    let printed = 0;
    // the agent, FUSE, the gateway, the readers and the checker share this event loop: a stall shows here
    const loop = monitorEventLoopDelay({ resolution: 20 });
    loop.enable();
    while (!ended) {
      o.signal?.throwIfAborted();
      if (Date.now() > deadline) throw new Error(`the workload did not end: ${(await vm.exec('cat /root/cons-workload.out')).stdout.toString()}`);
      await new Promise((r) => setTimeout(r, 2000));
      if (hostNow() - lastSample > 10_000) {
        samples.push(await sampleClock(vm, 3));
        checker.setClock(clockFrom(samples));
        lastSample = hostNow();
      }
      if (restarted < restarts && Date.now() > restartAt(restarted)) await restartAgent();
      await fetchLog();
      await checker.drainYielding(readers.lowWater());
      // each violation as it is found, with what the agent logged about that file: the soak's diagnosis
      for (const v of checker.report.evidence.slice(printed)) {
        const name = compositionName(VM, v.path);
        log(`[consistency] ${formatViolation(v).trim()}\n${agentLogs.filter((l) => l.includes(`"${name}"`)).slice(-6).join('\n')}`);
      }
      printed = checker.report.evidence.length;
      if (hostNow() - lastProgress > 30_000) {
        const rep = checker.report;
        log(`[consistency] ${((Date.now() - t0) / 1000).toFixed(0)} s: ${rep.reads} reads, ${rep.ops} ops, violations ${Object.values(rep.violations).reduce((a, b) => a + b, 0)} ${JSON.stringify(rep.violations)}, event loop delay max ${(loop.max / 1e6).toFixed(0)} ms, backlog ${checker.backlog}, reader errors ${readers.stats().errors} ${readers.stats().errorSamples.slice(-2).join(' | ')}`);
        loop.reset();
        lastProgress = hostNow();
      }
    }
    const out = (await vm.exec('cat /root/cons-workload.out')).stdout.toString().trim();
    if (out) log(`[consistency] workload said: ${out.slice(0, 500)}`);
    // readers keep going a moment so the last writes are read after they settle
    await new Promise((r) => setTimeout(r, 3000));
    await readers.stop();
    if (restarted < restarts) throw new Error(`only ${restarted} of ${restarts} agent restarts happened`);
    samples.push(await sampleClock(vm, 3));
    checker.setClock(clockFrom(samples));
    const report = checker.finish();
    const stats = readers.stats();
    readers = undefined;
    return { report, clock: samples, readers: stats, guestOps: report.ops, wallMs: Date.now() - t0 };
  } catch (e) {
    if (agentLogs.length && !o.signal?.aborted) log(agentLogs.slice(-30).join('\n'));
    throw e;
  } finally {
    await readers?.stop().catch(() => {});
    await gw?.close().catch(() => {});
    // agent may be undefined between a restart's stop and start
    await agent?.stop().catch(() => {});
    await vm?.shutdown().catch(() => {});
    try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  }
}
