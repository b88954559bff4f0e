// One consistency run, shared by the in-suite test and the soak benchmark: boots a guest, starts
// the host agent (QMP, guest helper over a hot-plugged channel, image mapper, FUSE mount) and the
// WebHDFS gateway over the agent's store, runs the workload inside the guest and the readers on the
// host, fetches the guest's log as it grows and checks reads online. docs/consistency.md.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { buildSync } from 'esbuild';
import { LocalNamespace } from '../../src/hdfs/namespace.js';
import { startGateway, type Gateway } from '../../src/hdfs/server.js';
import { storeSource } from '../../src/hdfs/source.js';
import { HostAgent } from '../../src/host/agent.js';
import { parseConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { compositionName, unescapePath } from '../../src/host/naming.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';
import { Checker, formatViolation, type Report } from './checker.js';
import { clockFrom, type ClockSample, type GuestOp } from './history.js';
import { hostNow, startReaders, type Readers } from './readers.js';
import { workloadPaths, type WorkloadConfig } from './workload.js';

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
}

export interface RunResult {
  report: Report;
  clock: ClockSample[];
  readers: { mmapRestarts: number; errors: number; errorSamples: string[] };
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
    vm = await bootGuest({ name: o.name ?? 'consistency', channel: false, memoryMb: 768, bootTimeoutMs: o.bootTimeoutMs ?? 180_000 });
    const dirs = [{ disk: 'data', dir: '/mnt/data/cons' }, { disk: 'pdata', dir: '/mnt/pdata/cons' }];
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
    agent = await HostAgent.start(cfg, createLogger({ level: 'info', sink: (l) => { agentLogs.push(l); if (agentLogs.length > 4000) agentLogs.shift(); } }));
    await until('the guest channel', async () => (await vm!.sh('cat /sys/class/virtio-ports/*/name')).includes('org.livemr.0'), 60_000, 200);
    const ns = new LocalNamespace(storeSource(agent.store), { host: 'kvm-local', addr: '', url: '' });
    gw = await startGateway({ namespace: ns, blockSize: 1 << 20 });
    ns.location = { host: 'kvm-local', addr: `127.0.0.1:${gw.port}`, url: gw.url };

    const samples: ClockSample[] = [await sampleClock(vm)];
    const checker = new Checker({ windowMs: o.windowMs ?? 2000 }, clockFrom(samples));
    // what the host published: shrinks and removals, by guest path
    const sizes = new Map<string, number>();
    const prefix = `${VM}_`;
    // which guest file (the helper's fileId, and its inode) each name shows: a change of it is a
    // rename over the name, and each event names the inode whose window it ends
    const owners = new Map<string, { fileId: number; inode: number }>();
    agent.store.on('change', (name) => {
      if (!name.startsWith(prefix)) return;
      const t = hostNow();
      const path = unescapePath(name.slice(prefix.length));
      const size = agent!.store.get(name)?.segments.size ?? 0;
      const last = sizes.get(name) ?? 0;
      const file = agent!.status().vms.flatMap((v) => v.files).find((f) => f.name === name);
      const owner = file && { fileId: file.fileId, inode: file.inode };
      const before = owners.get(name);
      if (owner && before && owner.fileId !== before.fileId) checker.addHostEvent({ t, path, kind: 'replace', size, ino: before.inode });
      else if (size < last) checker.addHostEvent({ t, path, kind: 'shrink', size, ino: owner?.inode ?? before?.inode });
      if (owner) owners.set(name, owner);
      sizes.set(name, size);
    });
    agent.store.on('remove', (name) => {
      if (!name.startsWith(prefix)) return;
      sizes.delete(name);
      const was = owners.get(name);
      owners.delete(name);
      checker.addHostEvent({ t: hostNow(), path: unescapePath(name.slice(prefix.length)), kind: 'remove', size: 0, ino: was?.inode });
    });

    await vm.sh(`(node /root/cons-workload.mjs /root/cons.json) > /root/cons-workload.out 2>&1 &`);
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
    await agent?.stop().catch(() => {});
    await vm?.shutdown().catch(() => {});
    try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  }
}
