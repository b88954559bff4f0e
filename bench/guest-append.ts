// Benchmark P3: append throughput inside a booted guest with the LiveMR helper running (and the host
// connected, the file shared, every extent reported) versus without the helper, in one run.
// Buffered appends end with fsync (throughput to durable data); O_DIRECT appends bypass the page cache.
// The modes run back to back in every round (order rotated each round) so drift hits all of them; the
// ratio is the median of the per-round ratios. A TCG guest on a shared host is noisy, so the helper's
// own CPU time during each run (utime + stime from /proc) is printed too: its share of the vCPU is
// what it takes away from the writer, and it does not depend on the host's load.
// Also measures the helper unbatched (T = 0, S = 0), the configuration the paper saw 36% slowdown in.
//   node --import tsx bench/guest-append.ts [MiB per run] [rounds]
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { GuestSession } from '../src/guest/host-session.js';
import { bootGuest, type GuestVm } from '../test/harness/vm.js';

const MIB = Number(process.argv[2] ?? 48);
const ROUNDS = Number(process.argv[3] ?? 9);
const FILE = '/mnt/data/bench-append.bin';
const BS = 64 * 1024;

type Mode = 'off' | 'batched' | 'unbatched';
const ARGS: Record<Exclude<Mode, 'off'>, string> = { batched: '', unbatched: '--batch-ms 0 --batch-bytes 0' };

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setHelper(vm: GuestVm, mode: Mode): Promise<void> {
  await vm.sh('touch /run/livemr-guest.disabled; [ -f /run/livemr-guest.pid ] && kill $(cat /run/livemr-guest.pid) 2>/dev/null; ' +
    'while [ -f /run/livemr-guest.pid ]; do sleep 0.1; done; true');
  if (mode === 'off') return;
  await vm.sh(`echo 'LIVEMR_GUEST_ARGS="${ARGS[mode]}"' > /etc/livemr/guest.conf; rm -f /run/livemr-guest.disabled; ` +
    'while [ ! -f /run/livemr-guest.pid ]; do sleep 0.1; done');
}

const helperTicks = async (vm: GuestVm) => {
  const f = (await vm.sh('cat /proc/$(cat /run/livemr-guest.pid)/stat')).split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, clock ticks
};

/** One append run; returns MB/s as dd measured it inside the guest, and the helper's CPU seconds. */
async function appendRun(vm: GuestVm, session: GuestSession | undefined, direct: boolean): Promise<{ mbps: number; seconds: number; helperCpu: number }> {
  await vm.sh(`rm -f ${FILE}; : > ${FILE}; setfattr -n user.livemr.share -v 1 ${FILE}; sync`);
  if (session) {
    session.share(FILE);
    for (let i = 0; i < 200 && ![...session.files.values()].some((f) => f.path === FILE); i++) await sleep(25);
    if (![...session.files.values()].some((f) => f.path === FILE)) throw new Error('file was not shared');
  }
  const flags = direct ? 'oflag=direct,append conv=notrunc' : 'oflag=append conv=notrunc,fsync';
  const t0 = session ? await helperTicks(vm) : 0;
  const out = await vm.sh(`/usr/bin/dd if=/dev/zero of=${FILE} bs=${BS} count=${(MIB << 20) / BS} ${flags} 2>&1`);
  const helperCpu = session ? (await helperTicks(vm) - t0) / 100 : 0; // USER_HZ = 100
  const m = /copied, ([\d.]+) s/.exec(out);
  if (!m) throw new Error(`unexpected dd output: ${out}`);
  const seconds = Number(m[1]);
  const mbps = MIB * 1.048576 / seconds;
  if (session) {
    // the helper must have reported the whole file: the result counts only if it did its job
    await session.flush(60_000);
    const f = [...session.files.values()].find((x) => x.path === FILE);
    const covered = f ? f.extents.reduce((s, x) => s + x.length, 0) : 0;
    if (!f || f.size !== MIB << 20 || covered < f.size) throw new Error(`host view incomplete: size ${f?.size}, covered ${covered}`);
  }
  return { mbps, seconds, helperCpu };
}

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/build-native-guest.sh'], { stdio: 'inherit' });
  const vm = await bootGuest({ name: 'bench-guest-append' });
  let session: GuestSession | undefined;
  try {
    const modes: Mode[] = ['off', 'batched', 'unbatched'];
    const rate: Record<string, number[]> = {};
    const ratio: Record<string, number[]> = {};
    const cpuShare: Record<string, number[]> = {};
    for (const direct of [false, true]) {
      const kind = direct ? 'direct' : 'buffered';
      for (let round = 0; round < ROUNDS; round++) {
        const order = modes.map((_, i) => modes[(i + round) % modes.length]!);
        const got: Partial<Record<Mode, number>> = {};
        for (const mode of order) {
          session?.close(); // QEMU serves one client at a time: each 'with' run starts a fresh session
          session = undefined;
          await setHelper(vm, mode);
          if (mode !== 'off') {
            const s = connect(vm.channelSocket);
            await new Promise<void>((res, rej) => { s.once('connect', res); s.once('error', rej); });
            session = new GuestSession(s, { hostId: 'bench', helloIntervalMs: 200 });
            await session.synced();
          }
          const r = await appendRun(vm, mode === 'off' ? undefined : session, direct);
          got[mode] = r.mbps;
          (rate[`${kind}/${mode}`] ??= []).push(r.mbps);
          if (mode !== 'off') (cpuShare[`${kind}/${mode}`] ??= []).push(r.helperCpu / r.seconds);
          process.stderr.write(`${kind}/${mode} round ${round + 1}: ${r.mbps.toFixed(1)} MB/s${mode === 'off' ? '' : `, helper CPU ${(r.helperCpu * 1000).toFixed(0)} ms`}\n`);
        }
        for (const mode of ['batched', 'unbatched'] as const) (ratio[`${kind}/${mode}`] ??= []).push(got[mode]! / got.off!);
      }
    }
    console.log(`P3 guest append, ${MIB} MiB per run in ${BS / 1024} KiB writes, ${ROUNDS} rounds, ${vm.accel.toUpperCase()} guest, host load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}:`);
    for (const kind of ['buffered', 'direct']) {
      const line = (mode: 'batched' | 'unbatched') => `${median(rate[`${kind}/${mode}`]!).toFixed(1)} MB/s, ratio ${median(ratio[`${kind}/${mode}`]!).toFixed(3)}` +
        ` (per round ${ratio[`${kind}/${mode}`]!.map((x) => x.toFixed(2)).join(' ')}), helper CPU ${(100 * median(cpuShare[`${kind}/${mode}`]!)).toFixed(1)}% of the run`;
      console.log(`  ${kind}: without helper ${median(rate[`${kind}/off`]!).toFixed(1)} MB/s`);
      console.log(`    with helper (batched) ${line('batched')}   [goal ratio >= 0.97]`);
      console.log(`    with helper unbatched ${line('unbatched')}`);
    }
  } finally {
    session?.close();
    await vm.shutdown();
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
