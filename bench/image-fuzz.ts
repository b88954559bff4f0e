// Fuzz run of the image mapper: >= 10^4 mutated images (headers, L1/L2 tables, truncations) built
// from a real qemu-img corpus. Prints the count, typed errors, crashes and hangs. The fuzz loop
// runs in a child process watched for progress, so even a synchronous infinite loop is reported.
//   node --import tsx bench/image-fuzz.ts [CASES] [SEED]
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCorpus } from '../test/unit/image/corpus.js';
import { fuzz, type FuzzReport } from '../test/unit/image/fuzz.js';

const STALL_MS = 15_000;

async function child(dir: string, cases: number, seed: number): Promise<void> {
  const seeds = [...new Set((await buildCorpus(dir, { quick: true })).map((c) => c.path))];
  const report = await fuzz(seeds, join(dir, 'fuzz-case.qcow2'), cases, seed, 2000, (i) => {
    if (i % 100 === 0) process.stdout.write(`progress ${i}\n`);
  });
  process.stdout.write(`report ${JSON.stringify(report)}\n`);
}

async function parent(cases: number, seed: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'livemr-image-fuzz-bench-'));
  const started = Date.now();
  try {
    const proc = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', dir, String(cases), String(seed)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let last = Date.now(), lastCase = 0, report: FuzzReport | undefined, buf = '';
    proc.stdout.on('data', (d: Buffer) => {
      last = Date.now();
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('progress ')) lastCase = Number(line.slice(9));
        if (line.startsWith('report ')) report = JSON.parse(line.slice(7)) as FuzzReport;
      }
    });
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    let stalled = false;
    const timer = setInterval(() => {
      // Allow a minute for building the seed corpus before the first progress line.
      if (Date.now() - last > (lastCase === 0 ? 60_000 : STALL_MS)) {
        stalled = true;
        proc.kill('SIGKILL');
      }
    }, 1000);
    const code = await exited;
    clearInterval(timer);
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    if (stalled || !report) {
      console.log(`image fuzz: HANG or crash of the fuzz process near case ${lastCase} (exit ${code}, seed ${seed})`);
      return 1;
    }
    console.log(`image fuzz: ${report.cases} cases (seed ${seed}) in ${secs} s: ${report.opened} mapped fine, ` +
      `${report.typedErrors} typed errors, ${report.crashes.length} crashes, ${report.hangs.length} hangs (slowest case ${report.maxMs.toFixed(0)} ms)`);
    for (const c of report.crashes.slice(0, 5)) console.log(`  crash: ${c}`);
    for (const h of report.hangs.slice(0, 5)) console.log(`  slow: ${h}`);
    return report.crashes.length === 0 && report.hangs.length === 0 ? 0 : 1;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--child') {
  await child(process.argv[3]!, Number(process.argv[4]), Number(process.argv[5]));
} else {
  process.exitCode = await parent(Number(process.argv[2] ?? 10_000), Number(process.argv[3] ?? 12345));
}
