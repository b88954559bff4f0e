// Benchmark P3: append throughput inside a booted guest with the LiveMR helper running (and the host
// connected, the file shared, every extent reported) versus without the helper, in one run.
// Buffered appends end with fsync (throughput to durable data); O_DIRECT appends bypass the page cache.
// Runs alternate (without, with, without, with, ...) so drift hits both sides; the ratio is of medians.
// Also measures the helper unbatched (T = 0, S = 0), the configuration the paper saw 36% slowdown in.
//   node --import tsx bench/guest-append.ts [MiB per run] [rounds]
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { GuestSession } from '../src/guest/host-session.js';
import { bootGuest, type GuestVm } from '../test/harness/vm.js';

const MIB = Number(process.argv[2] ?? 48);
const ROUNDS = Number(process.argv[3] ?? 5);
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

/** One append run; returns MB/s as dd measured it inside the guest. */
async function appendRun(vm: GuestVm, session: GuestSession | undefined, direct: boolean): Promise<number> {
  await vm.sh(`rm -f ${FILE}; : > ${FILE}; setfattr -n user.livemr.share -v 1 ${FILE}; sync`);
  if (session) {
    session.share(FILE);
    for (let i = 0; i < 200 && ![...session.files.values()].some((f) => f.path === FILE); i++) await sleep(25);
    if (![...session.files.values()].some((f) => f.path === FILE)) throw new Error('file was not shared');
  }
  const flags = direct ? 'oflag=direct,append conv=notrunc' : 'oflag=append conv=notrunc,fsync';
  const out = await vm.sh(`/usr/bin/dd if=/dev/zero of=${FILE} bs=${BS} count=${(MIB << 20) / BS} ${flags} 2>&1`);
  const m = /copied, ([\d.]+) s/.exec(out);
  if (!m) throw new Error(`unexpected dd output: ${out}`);
  const mbps = MIB * 1.048576 / Number(m[1]);
  if (session) {
    // the helper must have reported the whole file: the result counts only if it did its job
    await session.flush(60_000);
    const f = [...session.files.values()].find((x) => x.path === FILE);
    const covered = f ? f.extents.reduce((s, x) => s + x.length, 0) : 0;
    if (!f || f.size !== MIB << 20 || covered < f.size) throw new Error(`host view incomplete: size ${f?.size}, covered ${covered}`);
  }
  return mbps;
}

async function main(): Promise<void> {
  execFileSync('bash', ['scripts/build-native-guest.sh'], { stdio: 'inherit' });
  const vm = await bootGuest({ name: 'bench-guest-append' });
  let session: GuestSession | undefined;
  try {
    const results: Record<string, number[]> = {};
    for (const direct of [false, true]) {
      for (let round = 0; round < ROUNDS; round++) {
        for (const mode of ['off', 'batched', 'unbatched'] as Mode[]) {
          session?.close(); // QEMU serves one client at a time: each 'with' run starts a fresh session
          session = undefined;
          await setHelper(vm, mode);
          if (mode !== 'off') {
            const s = connect(vm.channelSocket);
            await new Promise<void>((res, rej) => { s.once('connect', res); s.once('error', rej); });
            session = new GuestSession(s, { hostId: 'bench', helloIntervalMs: 200 });
            await session.synced();
          }
          const mbps = await appendRun(vm, mode === 'off' ? undefined : session, direct);
          const key = `${direct ? 'direct' : 'buffered'}/${mode}`;
          (results[key] ??= []).push(mbps);
          process.stderr.write(`${key} round ${round + 1}: ${mbps.toFixed(1)} MB/s\n`);
        }
      }
    }
    console.log(`P3 guest append, ${MIB} MiB per run in ${BS / 1024} KiB writes, ${ROUNDS} rounds, ${vm.accel.toUpperCase()} guest (median MB/s):`);
    for (const kind of ['buffered', 'direct']) {
      const off = median(results[`${kind}/off`]!);
      const on = median(results[`${kind}/batched`]!);
      const unb = median(results[`${kind}/unbatched`]!);
      console.log(`  ${kind.padEnd(8)} without helper ${off.toFixed(1)}, with helper ${on.toFixed(1)} -> ratio ${(on / off).toFixed(3)} (goal >= 0.97); unbatched ${unb.toFixed(1)} -> ratio ${(unb / off).toFixed(3)}`);
    }
  } finally {
    session?.close();
    await vm.shutdown();
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
