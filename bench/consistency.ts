// Soak of the consistency history checker (docs/consistency.md): `npm run bench -- consistency [MINUTES] [SEED] [--no-discard]`
// (default 30 minutes). One guest runs the mixed workload for MINUTES while the host readers read
// the FUSE mount and the WebHDFS gateway as fast as they go; every read is checked online. The agent
// is restarted every ~4 minutes, every second time with its journal damaged (cases 3 and 5 of
// issue 14); `--no-discard` leaves out the discard=unmap disk and its discards (case 6). Prints reads and
// bytes checked, violations by kind, staleness; exits 1 on any violation.
import { formatReport, runConsistency } from '../test/consistency/index.js';

const args = process.argv.slice(2);
const discard = !args.includes('--no-discard');
const [minArg, seedArg] = args.filter((a) => !a.startsWith('--'));
const minutes = Number(minArg ?? 30);
const seed = Number(seedArg ?? Date.now() % 1_000_000);
if (!(minutes > 0) || args.some((a) => a.startsWith('--') && a !== '--no-discard')) {
  process.stderr.write('usage: npm run bench -- consistency [MINUTES] [SEED] [--no-discard]\n');
  process.exit(2);
}
const restarts = Math.max(2, Math.round(minutes / 4)); // at least one with the journal damaged
process.stdout.write(`consistency soak: ${minutes} min, seed ${seed}, ${restarts} agent restart(s), discard disk ${discard ? 'on' : 'off'}\n`);
// SIGINT/SIGTERM end the soak early through its cleanup (guest, agent, mount, readers)
const stop = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => stop.abort(new Error(`stopped by ${sig}`)));
const r = await runConsistency({ durationMs: minutes * 60_000, seed, readerPauseMs: 5, name: 'cons-soak', restarts, discard, signal: stop.signal, log: (l) => process.stdout.write(`${l}\n`) }).catch((e: Error) => {
  if (!stop.signal.aborted) throw e;
  process.stdout.write(`consistency soak: ${e.message}, cleaned up\n`);
  process.exit(130);
});
process.stdout.write(`${formatReport(r.report)}\n`);
// every piece of evidence kept (formatReport prints the first 10), one JSON line each, for diagnosis
for (const v of r.report.evidence.slice(10)) process.stdout.write(`  evidence ${JSON.stringify(v)}\n`);
process.stdout.write(`mmap restarts ${r.readers.mmapRestarts}, held files ended (EIO) ${r.readers.holdEnded}, reader errors ${r.readers.errors} ${r.readers.errorSamples.join(' | ')}, wall ${(r.wallMs / 60_000).toFixed(1)} min, clock error ≤ ${Math.max(...r.clock.map((c) => c.err)).toFixed(1)} ms over ${r.clock.length} samples\n`);
const bad = Object.values(r.report.violations).reduce((a, b) => a + b, 0) + r.report.modelMismatches.length;
process.exit(bad ? 1 : 0);
