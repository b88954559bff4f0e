// Benchmark P3: append throughput inside a booted guest with the LiveMR helper running (the host
// connected, the file shared, every extent reported and checked) versus without it, in one run.
// Buffered appends end with fsync (throughput to durable data); O_DIRECT appends bypass the page cache.
// The helper is a long-running daemon, so each configuration is started once and warmed up; "without"
// runs freeze it (SIGSTOP: no CPU at all) and write a file it does not watch. Runs alternate
// (without/with, order swapped every round) so drift hits both; the ratio is the median of the
// per-round ratios (bench/guest-common.ts, shared with the Debian guest's bench/guest-cost.ts). A TCG guest on a shared host is noisy, so the helper's own CPU time during each
// run (utime + stime from /proc) is printed too: its share of the run is what it takes from the writer.
// Measured: the batched defaults, the helper unbatched (T = 0, S = 0; the paper saw up to 36% slowdown
// unbatched), and batched without the disk flush before each report (--no-disk-flush; the host's
// mapper then waits for QEMU's metadata itself). The host view is checked after a `flush` either way.
//   node --import tsx bench/guest-append.ts [MiB per run] [rounds]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { GuestSession } from '../src/guest/host-session.js';
import { bootGuest, type GuestVm } from '../test/harness/vm.js';
import { APPEND_BS as BS, ddAppend, guestCpuSeconds, median, pairedRounds } from './guest-common.js';

const MIB = Number(process.argv[2] ?? 48);
const ROUNDS = Number(process.argv[3] ?? 7);
const FILE = '/mnt/data/bench-append.bin';
const FILE_OFF = '/mnt/data/bench-unwatched.bin';

type Config = 'batched' | 'unbatched' | 'batched-no-disk-flush';
const ARGS: Record<Config, string> = { batched: '', unbatched: '--batch-ms 0 --batch-bytes 0', 'batched-no-disk-flush': '--no-disk-flush' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Restarts the helper with a configuration and connects a fresh host session to it. */
async function startHelper(vm: GuestVm, config: Config, old?: GuestSession): Promise<GuestSession> {
  old?.close(); // QEMU serves one client at a time
  await vm.sh(`echo 'LIVEMR_GUEST_ARGS="${ARGS[config]}"' > /etc/livemr/guest.conf; ` +
    'old=$(cat /run/livemr-guest.pid); kill $old; while [ "$(cat /run/livemr-guest.pid 2>/dev/null)" = "$old" ] || [ ! -f /run/livemr-guest.pid ]; do sleep 0.1; done');
  const s = connect(vm.channelSocket);
  await new Promise<void>((res, rej) => { s.once('connect', res); s.once('error', rej); });
  const session = new GuestSession(s, { hostId: 'bench', helloIntervalMs: 200 });
  await session.synced();
  return session;
}

const helperPid = async (vm: GuestVm) => Number((await vm.sh('cat /run/livemr-guest.pid')).trim());

/** One append run; returns MB/s as dd measured it inside the guest, and the helper's CPU seconds. */
async function appendRun(vm: GuestVm, session: GuestSession | undefined, direct: boolean, mib = MIB): Promise<{ mbps: number; seconds: number; helperCpu: number }> {
  const file = session ? FILE : FILE_OFF;
  await vm.sh(`rm -f ${FILE} ${FILE_OFF}; : > ${file}; setfattr -n user.livemr.share -v 1 ${file}; sync`);
  if (session) {
    session.share(FILE);
    for (let i = 0; i < 200 && ![...session.files.values()].some((f) => f.path === FILE); i++) await sleep(25);
    if (![...session.files.values()].some((f) => f.path === FILE)) throw new Error('file was not shared');
  }
  const pid = session ? await helperPid(vm) : 0;
  const t0 = session ? await guestCpuSeconds(vm, pid) : 0;
  const { mbps, seconds } = await ddAppend(vm, file, mib, direct);
  const helperCpu = session ? await guestCpuSeconds(vm, pid) - t0 : 0;
  if (session) {
    // the helper must have reported the whole file: the result counts only if it did its job
    await session.flush(60_000);
    const f = [...session.files.values()].find((x) => x.path === FILE);
    const covered = f ? f.extents.reduce((s, x) => s + x.length, 0) : 0;
    if (!f || f.size !== mib << 20 || covered < f.size) throw new Error(`host view incomplete: size ${f?.size}, covered ${covered}`);
  }
  return { mbps, seconds, helperCpu };
}

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/build-native-guest.sh'], { stdio: 'inherit' });
  const vm = await bootGuest({ name: 'bench-guest-append' });
  let session: GuestSession | undefined;
  try {
    const rate: Record<string, number[]> = {};
    const ratio: Record<string, number[]> = {};
    const cpuShare: Record<string, number[]> = {};
    for (const direct of [false, true]) {
      const kind = direct ? 'direct' : 'buffered';
      for (const config of Object.keys(ARGS) as Config[]) {
        session = await startHelper(vm, config, session);
        await appendRun(vm, session, direct, 8); // warm-up: the daemon's code paths run once
        const r = await pairedRounds(ROUNDS, async (withHelper, round) => {
          if (!withHelper) await vm.sh('kill -STOP $(cat /run/livemr-guest.pid)');
          const x = await appendRun(vm, withHelper ? session : undefined, direct);
          if (!withHelper) await vm.sh('kill -CONT $(cat /run/livemr-guest.pid)');
          const key = `${kind}/${withHelper ? config : `off(${config})`}`;
          (rate[key] ??= []).push(x.mbps);
          if (withHelper) (cpuShare[key] ??= []).push(x.helperCpu / x.seconds);
          process.stderr.write(`${key} round ${round + 1}: ${x.mbps.toFixed(1)} MB/s${withHelper ? `, helper CPU ${(x.helperCpu * 1000).toFixed(0)} ms` : ''}\n`);
          return x.mbps;
        });
        ratio[`${kind}/${config}`] = r.ratio;
      }
    }
    console.log(`P3 guest append, ${MIB} MiB per run in ${BS / 1024} KiB writes, ${ROUNDS} rounds, ${vm.accel.toUpperCase()} guest, host load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}:`);
    for (const kind of ['buffered', 'direct']) {
      const line = (mode: Config) => `${median(rate[`${kind}/${mode}`]!).toFixed(1)} MB/s vs ${median(rate[`${kind}/off(${mode})`]!).toFixed(1)} without, ratio ${median(ratio[`${kind}/${mode}`]!).toFixed(3)}` +
        ` (per round ${ratio[`${kind}/${mode}`]!.map((x) => x.toFixed(2)).join(' ')}), helper CPU ${(100 * median(cpuShare[`${kind}/${mode}`]!)).toFixed(1)}% of the run`;
      console.log(`  ${kind}:`);
      console.log(`    with helper (batched) ${line('batched')}   [goal ratio >= 0.97]`);
      console.log(`    with helper unbatched ${line('unbatched')}`);
      console.log(`    with helper batched, no disk flush (host resolves late mappings itself) ${line('batched-no-disk-flush')}`);
    }
  } finally {
    session?.close();
    await vm.shutdown();
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
