// LiveMR's first promise, checked as a history (docs/consistency.md): a real guest writes files on
// both data disks in every way a log or data file is written (appends 1 B–1 MiB with and without
// fsync, O_DIRECT, sparse writes, fallocate, truncate+regrow, rotation by rename and copytruncate,
// unlink and block reuse) while host readers read the FUSE mount (read, pread, mmap, tail -F) and
// the WebHDFS gateway (OPEN with offsets). Every read is checked: 0 violations.
import { describe, expect, it } from 'vitest';
import { formatReport, runConsistency } from '../consistency/index.js';

const WORKLOAD_MS = 80_000;

describe('consistency: every byte served is the guest\'s byte', () => {
  it('checks every read of an 80 s mixed workload: no violation of (a), (b) or (c)', async () => {
    const r = await runConsistency({ durationMs: WORKLOAD_MS, seed: 13, log: (l) => console.error(l) });
    console.error(`[consistency] ${formatReport(r.report)}\n[consistency] mmap restarts ${r.readers.mmapRestarts}, reader errors ${r.readers.errors} ${r.readers.errorSamples.join(' | ')}, wall ${(r.wallMs / 1000).toFixed(0)} s, clock ± ${Math.max(...r.clock.map((c) => c.err)).toFixed(1)} ms`);
    expect(r.report.modelMismatches).toEqual([]);
    expect(r.report.reads).toBeGreaterThan(500);
    for (const k of ['read', 'pread', 'mmap', 'tail', 'webhdfs']) expect(r.report.readsByKind[k] ?? 0, `${k} reads`).toBeGreaterThan(0);
    expect(r.report.evidence).toEqual([]);
  }, 300_000);
});
