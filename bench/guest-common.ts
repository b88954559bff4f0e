// Shared pieces of the guest-cost benchmarks (bench/guest-append.ts on the busybox guest,
// bench/guest-cost.ts on the Debian guest): the dd append run P3 times, a guest process's CPU time,
// and the paired with/without rounds whose per-round ratios P3 reports.
import type { GuestVm } from '../test/harness/vm.js';

/** dd's write size for P3 */
export const APPEND_BS = 64 * 1024;

export const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };

/**
 * Appends `mib` MiB of zeros to `file` with /usr/bin/dd (coreutils: its timing line; busybox's applet has none) in APPEND_BS writes: buffered ending with fsync
 * (throughput to durable data), or O_DIRECT. Returns dd's own figures (the writer's view).
 */
export async function ddAppend(vm: GuestVm, file: string, mib: number, direct: boolean): Promise<{ mbps: number; seconds: number }> {
  const flags = direct ? 'oflag=direct,append conv=notrunc' : 'oflag=append conv=notrunc,fsync';
  const out = await vm.sh(`/usr/bin/dd if=/dev/zero of=${file} bs=${APPEND_BS} count=${(mib << 20) / APPEND_BS} ${flags} 2>&1`, { timeoutMs: 600_000 });
  const m = /copied, ([\d.]+) s/.exec(out);
  if (!m) throw new Error(`unexpected dd output: ${out}`);
  const seconds = Number(m[1]);
  return { seconds, mbps: mib * 1.048576 / seconds };
}

/** utime + stime of a guest process, in seconds (USER_HZ = 100). */
export async function guestCpuSeconds(vm: GuestVm, pid: number): Promise<number> {
  const f = (await vm.sh(`cat /proc/${pid}/stat`)).split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * `rounds` pairs of runs, with and without the helper, the order swapped every round so that drift
 * hits both; `run` returns the figure compared (e.g. MB/s). Per-round ratios with / without.
 */
export async function pairedRounds(rounds: number, run: (withHelper: boolean, round: number) => Promise<number>):
  Promise<{ on: number[]; off: number[]; ratio: number[] }> {
  const r = { on: [] as number[], off: [] as number[], ratio: [] as number[] };
  for (let round = 0; round < rounds; round++) {
    const got: { on?: number; off?: number } = {};
    for (const withHelper of round % 2 ? [true, false] : [false, true]) {
      const x = await run(withHelper, round);
      got[withHelper ? 'on' : 'off'] = x;
      r[withHelper ? 'on' : 'off'].push(x);
    }
    r.ratio.push(got.on! / got.off!);
  }
  return r;
}
