// Benchmark: what the guest helper costs its guest, measured on the Debian 12 distribution guest
// (issue 17) — systemd, Debian's Node 18 and the helper installed from the project's .deb, as users
// run it — with the real host agent and its FUSE mount on the other end. One boot; for each helper
// configuration, in this order:
//  - a sporadic writer (a 200-byte line every 100 ms) and a streaming one (1000 lines/s, 200 kB/s),
//    the guest's Node writing lines on a schedule (bench/host-common.ts GUEST_WRITER_SCRIPT):
//    * disk requests: from QMP query-blockstats on the data disk, flush_operations, wr_operations
//      and wr_bytes per MiB appended, with vs without the helper; each run ends with `sync` in the
//      guest (both ways: the window ends with the data durable) and the "with" window also holds the
//      host catching up. The qcow2 clusters newly allocated in the data overlay during the run
//      (qemu-img map -U after the sync) that hold the file's blocks (filefrag) bound the flushes a
//      "flush only for new clusters" rule would need;
//    * P2 freshness: the guest's write() returning → the bytes readable on the host mount (a host
//      worker preads the composed file every 0.2 ms), every line of the sporadic writer and every
//      50th of the streaming one, the guest clock mapped to the host's NTP-style before each run;
//  - P3: dd appends (MiB in 64 KiB writes), buffered ending with fsync and O_DIRECT, with vs without
//    the helper, alternating (bench/guest-common.ts); ratio = median of the per-round ratios.
// "With": the file has consent and the host agent shares it, the helper running. "Without": a file in
// a directory the helper does not watch, without consent, and the helper frozen (SIGSTOP: the helper
// stopped, without paying Node's restart under TCG each round).
// Configurations: the defaults (a disk flush before each report that has new blocks) and
// --no-disk-flush (none from the helper; the host asks for a flush only when a reported range lies in
// a qcow2 cluster whose metadata QEMU has not written yet: flush only for new clusters, host-driven).
//   node --import tsx bench/guest-cost.ts [P3 MiB] [P3 rounds] [sporadic s] [streaming s] [line rounds] [configs]
//   (defaults 32 5 40 15 2 default,no-disk-flush)
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { describeVm, QmpClient, queryBlockstats } from '../src/qmp/index.js';
import { bootGuest, type GuestVm } from '../test/harness/vm.js';
import { ddAppend, guestCpuSeconds, median, pairedRounds } from './guest-common.js';
import {
  BenchPort, benchDir, benchLine, clockOffset, composedPath, connectUnix, GUEST_WRITER_SCRIPT, guestPortDev, hostNow, LINE_POLLER,
  percentile, serialPorts, startAgent, table, until, type RunningAgent,
} from './host-common.js';

const MIB = Number(process.argv[2] ?? 32);
const P3_ROUNDS = Number(process.argv[3] ?? 5);
const LINE_ROUNDS = Number(process.argv[6] ?? 2);
const CONFIG_ARGS: Record<string, string> = { default: '', 'no-disk-flush': '--no-disk-flush' };
const CONFIGS = (process.argv[7] ?? 'default,no-disk-flush').split(',');
for (const c of CONFIGS) if (!(c in CONFIG_ARGS)) throw new Error(`unknown configuration '${c}' (${Object.keys(CONFIG_ARGS).join(', ')})`);
const LINE = 200;
type Writer = 'sporadic' | 'streaming';
const WRITERS: Record<Writer, { gapMs: number; every: number; seconds: number; what: string }> = {
  sporadic: { gapMs: 100, every: 1, seconds: Number(process.argv[4] ?? 40), what: `a ${LINE} B line every 100 ms` },
  streaming: { gapMs: 1, every: 50, seconds: Number(process.argv[5] ?? 15), what: `1000 lines/s (${LINE} kB/s)` },
};
const ON = '/mnt/data/on'; // shared files (their directory is watched)
const OFF = '/mnt/data/off'; // the same writers without the helper: no consent, not watched
const MiB = 1 << 20;

interface Io { flush: number; wr: number; bytes: number }
const ioDelta = (a: Io, b: Io): Io => ({ flush: b.flush - a.flush, wr: b.wr - a.wr, bytes: b.bytes - a.bytes });
/** disk figures of a set of runs: totals and MiB appended */
interface IoSum extends Io { appended: number; newClusters: number }
const addIo = (s: IoSum | undefined, d: Io, appended: number, newClusters = 0): IoSum =>
  ({ flush: (s?.flush ?? 0) + d.flush, wr: (s?.wr ?? 0) + d.wr, bytes: (s?.bytes ?? 0) + d.bytes, appended: (s?.appended ?? 0) + appended, newClusters: (s?.newClusters ?? 0) + newClusters });

/** The packaged helper (systemd unit livemr-guest) in the Debian guest. */
class PackagedHelper {
  pid = 0;
  constructor(private readonly vm: GuestVm) {}

  /** Restarts the unit with daemon options and waits for its hello to the host (a full resync). */
  async configure(args: string): Promise<void> {
    const since = (await this.vm.sh('date +%s')).trim();
    await this.vm.sh(`printf 'LIVEMR_GUEST_ARGS="%s"\\n' '${args}' > /etc/default/livemr-guest; systemctl restart livemr-guest; ` +
      `i=0; until journalctl -u livemr-guest --since @${since} -o cat | grep -q 'full resync'; do i=$((i+1)); [ $i -gt 360 ] && exit 1; sleep 0.5; done`,
    { timeoutMs: 240_000 });
    this.pid = Number((await this.vm.sh('systemctl show -p MainPID --value livemr-guest')).trim());
    if (!this.pid) throw new Error('livemr-guest.service has no main process');
  }

  freeze(): Promise<string> { return this.vm.sh(`kill -STOP ${this.pid}`); }
  thaw(): Promise<string> { return this.vm.sh(`kill -CONT ${this.pid}`); }
  cpu(): Promise<number> { return guestCpuSeconds(this.vm, this.pid); }
}

async function main(): Promise<void> {
  const bd = benchDir('guest-cost');
  const benchSock = join(bd.dir, 'bench.sock');
  let vm: GuestVm | undefined;
  let ra: RunningAgent | undefined;
  let worker: Worker | undefined;
  let port: Socket | undefined;
  let qmp: QmpClient | undefined;
  const loadStart = execFileSync('uptime', { encoding: 'utf8' }).trim();
  try {
    vm = await bootGuest({
      image: 'debian', name: 'bench-guest-cost', cpus: 2, memoryMb: 512,
      extraArgs: serialPorts([{ name: 'org.livemr.bench', socket: benchSock }]),
    });
    const g = vm;
    process.stderr.write(`[guest-cost] Debian guest up in ${(g.bootMs / 1000).toFixed(0)} s (${g.accel})\n`);
    // the data disk (ext4 on the whole disk, serial data) is not in the Debian image's fstab
    await g.sh(`set -e; d=$(for s in /sys/block/vd*/serial; do if [ "$(cat $s)" = data ]; then echo /dev/$(basename $(dirname $s)); fi; done)
mkdir -p /mnt/data; mount $d /mnt/data; mkdir -p ${ON} ${OFF}
for f in append.bin sporadic.log streaming.log; do : > ${ON}/$f; setfattr -n user.livemr.share -v 1 ${ON}/$f; done; sync`);
    const shared = [`${ON}/append.bin`, `${ON}/sporadic.log`, `${ON}/streaming.log`];
    ra = await startAgent(g, bd.dir, bd.mountpoint, shared);
    const agent = ra.agent;
    const files = () => agent.status().vms[0]?.files ?? [];
    const helper = new PackagedHelper(g);

    qmp = await QmpClient.connect(g.testQmpSocket);
    const q = qmp;
    const qom = (await describeVm(q)).disks.find((d) => d.serial === 'data')?.qomPath;
    if (!qom) throw new Error('no data disk in the VM model');
    const io = async (): Promise<Io> => {
      const s = (await queryBlockstats(q)).find((x) => x.qdev === qom)!;
      return { flush: s.flushOperations, wr: s.wrOperations, bytes: s.wrBytes };
    };
    const overlay = g.disks.find((d) => d.serial === 'data')!.overlay;
    const clusterBytes = (JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', overlay], { encoding: 'utf8' })) as { 'cluster-size': number })['cluster-size'];
    /** clusters allocated in the data overlay itself, as its on-disk metadata says (indexes) */
    const allocated = (): Set<number> => {
      const map = JSON.parse(execFileSync('qemu-img', ['map', '-U', '-f', 'qcow2', '--output=json', overlay], { encoding: 'utf8', maxBuffer: 64 << 20 })) as
        { start: number; depth: number; data: boolean; length: number }[];
      const set = new Set<number>();
      for (const x of map) if (x.depth === 0 && x.data) for (let c = x.start / clusterBytes; c < (x.start + x.length) / clusterBytes; c++) set.add(c);
      return set;
    };
    /** the disk clusters holding a guest file's blocks (filefrag; ext4 on the whole data disk) */
    const fileClusters = async (path: string): Promise<Set<number>> => {
      const set = new Set<number>();
      for (const m of (await g.sh(`filefrag -e -b4096 ${path}`)).matchAll(/^\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+)\.\.\s*(\d+):/gm)) {
        for (let c = Math.floor(Number(m[1]) * 4096 / clusterBytes); c <= Math.floor(Number(m[2]) * 4096 / clusterBytes); c++) set.add(c);
      }
      return set;
    };

    /** Replaces `path` by a new empty file; with consent, waits until the host agent shares the new inode. */
    const recreate = async (path: string, consent: boolean): Promise<number> => {
      const prev = files().find((f) => f.path === path)?.fileId;
      await g.sh(`rm -f ${path}; : > ${path}${consent ? `; setfattr -n user.livemr.share -v 1 ${path}` : ''}`);
      if (!consent) return 0;
      return (await until(`${path} shared anew`, () => files().find((f) => f.path === path && f.fileId !== prev), 120_000, 50)).fileId;
    };
    /** Waits until the host serves `bytes` of the file with nothing pending; returns when (host clock). */
    const caughtUp = async (fileId: number, bytes: number): Promise<number> => {
      await until(`host serving ${bytes} B of file ${fileId}`, () => {
        const f = files().find((x) => x.fileId === fileId);
        return !!f && f.servedSize >= bytes && f.pendingRanges === 0;
      }, 120_000, 5);
      return hostNow();
    };

    // the guest writer and the host poller (P2)
    writeFileSync(join(bd.dir, 'writer.js'), GUEST_WRITER_SCRIPT);
    await g.put(join(bd.dir, 'writer.js'), '/root/writer.js');
    port = await connectUnix(benchSock);
    const bp = new BenchPort(port);
    g.exec(`node /root/writer.js ${guestPortDev('org.livemr.bench')} ${ON}/sporadic.log ${LINE} >/tmp/writer.out 2>&1`, { timeoutMs: 4 * 3600_000 }).catch(() => {});
    let k = 0; // request numbers on the bench port
    await until('the guest writer script', async () => { try { await bp.ask('ping', k++, 'pong', 2000); return true; } catch { return false; } }, 180_000, 0);
    worker = new Worker(LINE_POLLER, { eval: true });
    let onSeen: ((i: number, t: number, wrong: number) => void) | undefined;
    worker.on('message', ({ i, t, wrong }: { i: number; t: number; wrong: number }) => onSeen?.(i, t, wrong));

    let lineRuns = 0;
    /** One line-writer run; with the helper also the freshness of every marked line. */
    const lineRun = async (w: Writer, withHelper: boolean) => {
      const W = WRITERS[w];
      const n = Math.round(W.seconds * 1000 / W.gapMs);
      const path = `${withHelper ? ON : OFF}/${w}.log`;
      // numbered apart from every earlier run's lines: bytes of an earlier file at the name would be wrong bytes
      const i0 = ++lineRuns * 1_000_000;
      if (!withHelper) await helper.freeze();
      try {
        const id = await recreate(path, withHelper);
        await bp.ask('file', k++, 'filed', 30_000, path);
        const clock = await clockOffset(bp, (k += 100));
        const hostFile = composedPath(bd.mountpoint, path);
        const marks = new Map<number, number>(); // line → write() returned (host clock)
        const fresh: number[] = [];
        let failed: number | undefined;
        let wrong = 0;
        onSeen = (i, t, bad) => {
          wrong += bad;
          if (t < 0) failed ??= i;
          else fresh.push(t - marks.get(i)!);
        };
        bp.onUnsolicited = (parts) => {
          if (parts[0] !== 'mark' || !withHelper) return;
          const i = Number(parts[1]);
          marks.set(i, Number(parts[2]) - clock.offset);
          worker!.postMessage({ i, file: hostFile, at: (i - i0) * LINE, want: benchLine(i, LINE) });
        };
        const a0 = allocated();
        const s0 = await io();
        const c0 = withHelper ? await helper.cpu() : 0;
        await bp.ask('lines', k++, 'lined', (W.seconds + 120) * 1000, `${i0} ${n} ${W.gapMs} ${W.every}`);
        if (withHelper) {
          await caughtUp(id, n * LINE);
          await until('every marked line seen on the host', () => fresh.length === marks.size || failed !== undefined, 60_000, 5);
          if (failed !== undefined) throw new Error(`line ${failed} of ${path} never became readable on the host`);
        }
        const cpu = withHelper ? await helper.cpu() - c0 : 0;
        await g.sh('sync');
        const d = ioDelta(s0, await io());
        const a1 = allocated();
        const added = [...a1].filter((c) => !a0.has(c));
        const mine = await fileClusters(path);
        // the new clusters that hold the file's data: a "flush only for new clusters" rule needs at most one flush each
        const newClusters = added.filter((c) => mine.has(c)).length;
        bp.onUnsolicited = undefined;
        onSeen = undefined;
        process.stderr.write(`[guest-cost] ${w} ${withHelper ? 'with' : 'without'}: ${n} lines, flushes ${d.flush}, writes ${d.wr}, ${(d.bytes / 1024).toFixed(0)} KiB written, ` +
          `new clusters ${added.length} (of the file's ${mine.size}: ${newClusters})${withHelper ? `, helper CPU ${cpu.toFixed(2)} s, fresh p50 ${percentile(fresh, 50).toFixed(0)} ms (clock RTT ${clock.rtt.toFixed(1)} ms), wrong reads ${wrong}` : ''}\n`);
        return { d, appended: n * LINE / MiB, newClusters, cpu, fresh, rtt: clock.rtt, wrong };
      } finally {
        if (!withHelper) await helper.thaw();
      }
    };

    /** One P3 run: dd's MB/s; with the helper also its CPU and the host catching up. */
    const p3Run = async (direct: boolean, withHelper: boolean) => {
      const path = `${withHelper ? ON : OFF}/append.bin`;
      if (!withHelper) await helper.freeze();
      try {
        const id = await recreate(path, withHelper);
        const s0 = await io();
        const c0 = withHelper ? await helper.cpu() : 0;
        const r = await ddAppend(g, path, MIB, direct);
        const done = hostNow();
        const catchUp = withHelper ? await caughtUp(id, MIB * MiB) - done : 0;
        const cpu = withHelper ? await helper.cpu() - c0 : 0;
        return { ...r, d: ioDelta(s0, await io()), cpu, catchUp };
      } finally {
        if (!withHelper) await helper.thaw();
      }
    };

    interface ConfigResult {
      io: Record<string, { on?: IoSum; off?: IoSum }>; fresh: Record<Writer, number[]>; rtt: number[]; wrong: number;
      p3: Record<string, { on: number[]; off: number[]; ratio: number[]; cpuShare: number[]; catchUp: number[] }>;
    }
    const results: Record<string, ConfigResult> = {};
    for (const config of CONFIGS) {
      await helper.configure(CONFIG_ARGS[config]!);
      const R: ConfigResult = { io: {}, fresh: { sporadic: [], streaming: [] }, rtt: [], wrong: 0, p3: {} };
      results[config] = R;
      await lineRun('streaming', true); // warm-up: the restarted daemon's code paths run once
      for (const w of ['sporadic', 'streaming'] as const) {
        for (let round = 0; round < LINE_ROUNDS; round++) {
          for (const withHelper of round % 2 ? [true, false] : [false, true]) {
            const r = await lineRun(w, withHelper);
            const slot = (R.io[w] ??= {});
            slot[withHelper ? 'on' : 'off'] = addIo(slot[withHelper ? 'on' : 'off'], r.d, r.appended, r.newClusters);
            if (withHelper) { R.fresh[w].push(...r.fresh); R.rtt.push(r.rtt); R.wrong += r.wrong; }
          }
        }
      }
      for (const direct of [false, true]) {
        const kind = direct ? 'dd O_DIRECT' : 'dd buffered';
        await p3Run(direct, true); // warm-up
        const cpuShare: number[] = [];
        const catchUp: number[] = [];
        const slot = (R.io[kind] ??= {});
        const pr = await pairedRounds(P3_ROUNDS, async (withHelper, round) => {
          const r = await p3Run(direct, withHelper);
          slot[withHelper ? 'on' : 'off'] = addIo(slot[withHelper ? 'on' : 'off'], r.d, MIB);
          if (withHelper) { cpuShare.push(r.cpu / r.seconds); catchUp.push(r.catchUp); }
          process.stderr.write(`[guest-cost] ${config} ${kind} ${withHelper ? 'with' : 'without'} round ${round + 1}: ${r.mbps.toFixed(1)} MB/s` +
            `${withHelper ? `, helper CPU ${r.cpu.toFixed(2)} s, host caught up ${r.catchUp.toFixed(0)} ms after dd` : ''}\n`);
          return r.mbps;
        });
        R.p3[kind] = { ...pr, cpuShare, catchUp };
      }
    }
    bp.send('quit');

    const loadEnd = execFileSync('uptime', { encoding: 'utf8' }).trim();
    const f1 = (x: number) => x.toFixed(1);
    console.log(`\nGuest cost on the Debian 12 guest (${g.accel.toUpperCase()}, 2 vCPU, 512 MiB; helper from its .deb on Node 18; host agent + FUSE mount connected).`);
    console.log(`Host load: at the start "${loadStart}"; at the end "${loadEnd}". qcow2 cluster ${clusterBytes / 1024} KiB.`);
    for (const config of CONFIGS) {
      const R = results[config]!;
      console.log(`\n## helper configuration: ${config}${CONFIG_ARGS[config] ? ` (${CONFIG_ARGS[config]})` : ' (defaults)'}`);
      console.log(`\nP3 append throughput, ${MIB} MiB per run in 64 KiB writes, ${P3_ROUNDS} rounds:`);
      console.log(table(['dd', 'with (MB/s)', 'without (MB/s)', 'ratio', 'per-round ratios', 'helper CPU / dd time', 'host caught up after dd (ms, median)'],
        Object.entries(R.p3).map(([kind, p]) => [kind, f1(median(p.on)), f1(median(p.off)), median(p.ratio).toFixed(3),
          p.ratio.map((x) => x.toFixed(2)).join(' '), `${(100 * median(p.cpuShare)).toFixed(0)}%`, median(p.catchUp).toFixed(0)])));
      console.log('\nData disk requests per MiB appended (query-blockstats; the window ends with `sync`; with: host caught up):');
      const per = (s: IoSum | undefined, x: number) => (s ? x / s.appended : NaN);
      const ratioOf = (on: IoSum, off: IoSum, k: 'flush' | 'wr') => (off[k] ? ((on[k] / on.appended) / (off[k] / off.appended)).toFixed(2) : `${on[k]} vs 0`);
      console.log(table(['writer', 'flushes with', 'without', 'ratio', 'writes with', 'without', 'ratio', 'MiB written with', 'without', 'new qcow2 clusters of the file (with)'],
        Object.entries(R.io).map(([w, { on, off }]) => [
          w === 'sporadic' || w === 'streaming' ? `${w} (${WRITERS[w].what})` : `${w} (P3)`,
          f1(per(on, on?.flush ?? 0)), f1(per(off, off?.flush ?? 0)), ratioOf(on!, off!, 'flush'),
          f1(per(on, on?.wr ?? 0)), f1(per(off, off?.wr ?? 0)), ratioOf(on!, off!, 'wr'),
          (per(on, on?.bytes ?? 0) / MiB).toFixed(2), (per(off, off?.bytes ?? 0) / MiB).toFixed(2),
          w === 'sporadic' || w === 'streaming' ? f1(per(on, on?.newClusters ?? 0)) : '-',
        ])));
      console.log(`\nP2 freshness, the guest's write() returned → readable on the host mount (ms; clock offset RTT ≤ ${f1(Math.max(...R.rtt))} ms; ` +
        `reads that returned wrong bytes: ${R.wrong}):`);
      console.log(table(['writer', 'lines', 'p50', 'p90', 'p99', 'max'], (['sporadic', 'streaming'] as const).map((w) => {
        const xs = R.fresh[w];
        return [`${w} (${WRITERS[w].what})`, xs.length, f1(percentile(xs, 50)), f1(percentile(xs, 90)), f1(percentile(xs, 99)), f1(Math.max(...xs))];
      })));
    }
  } catch (e) {
    if (ra) console.error(ra.logs.slice(-30).join('\n'));
    throw e;
  } finally {
    port?.destroy();
    await worker?.terminate();
    await qmp?.close().catch(() => {});
    await ra?.agent.stop().catch(() => {});
    await vm?.shutdown();
    bd.cleanup();
  }
}

main().then(() => process.exit(0), (e: Error) => { console.error(`guest-cost: ${e.stack ?? e.message}`); process.exit(1); });
