// `npm run bench [-- NAME [ARGS...]...]`: runs the named benchmarks (bench/NAME.ts), or lists them. Each
// benchmark prints its own table with ratios against a baseline measured in the same run.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const all = readdirSync(here).filter((f) => f.endsWith('.ts') && f !== 'run.ts' && !f.endsWith('-common.ts')).map((f) => f.slice(0, -3)).sort();
const wanted = process.argv.slice(2);
if (wanted.length === 0) {
  process.stdout.write(`benchmarks (npm run bench -- NAME...; see bench/README.md):\n${all.map((b) => `  ${b}`).join('\n')}\n`);
  process.exit(0);
}
// `npm run bench -- NAME [ARGS...] [NAME [ARGS...]]`: words after a benchmark's name that are not
// benchmark names are its arguments (e.g. `npm run bench -- consistency 30`)
const runs: { name: string; args: string[] }[] = [];
for (const w of wanted) {
  if (all.includes(w) || runs.length === 0) runs.push({ name: w, args: [] });
  else runs[runs.length - 1]!.args.push(w);
}
let failed = 0;
// SIGINT/SIGTERM go to the running benchmark, which cleans up what it started (guests, mounts)
let child: ChildProcess | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => { child?.kill(sig); });
for (const { name, args } of runs) {
  if (!all.includes(name)) {
    process.stderr.write(`unknown benchmark '${name}'\n`);
    failed++;
    continue;
  }
  process.stdout.write(`\n=== ${name}${args.length ? ` ${args.join(' ')}` : ''} ===\n`);
  child = spawn(process.execPath, ['--import', 'tsx', join(here, `${name}.ts`), ...args], { stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve) => child!.on('exit', (c) => resolve(c)));
  child = undefined;
  if (code !== 0) failed++;
}
process.exit(failed ? 1 : 0);
