// LiveMR's first promise, checked as a history (docs/consistency.md): a real guest writes files on
// four data disks (whole-disk ext4, ext4 on a partition, ext4 in a raw offset/size window of a
// larger file, ext4 on a qcow2 disk whose discards free clusters — zeros written, holes punched, fstrim) in every way a log or data file is written (appends 1 B–1 MiB with and without
// fsync, O_DIRECT, sparse writes, fallocate, truncate+regrow, rotation by rename and copytruncate,
// unlink and block reuse, consent revoked, a name the host must refuse in a batch with other
// files' truncates and removals) while host readers read the FUSE mount (read, pread, mmap,
// tail -F, preads on a descriptor held open) and the WebHDFS gateway (OPEN with offsets); the agent
// is restarted twice, the second time with its journal damaged. Every read is checked: 0 violations.
import { describe, expect, it } from 'vitest';
import { formatReport, runConsistency } from '../consistency/index.js';

const WORKLOAD_MS = 80_000;

describe('consistency: every byte served is the guest\'s byte', () => {
  it('checks every read of an 80 s mixed workload with two agent restarts: no violation of (a), (b), (c) or (d)', async () => {
    const r = await runConsistency({ durationMs: WORKLOAD_MS, seed: 13, restarts: 2, log: (l) => console.error(l) });
    console.error(`[consistency] ${formatReport(r.report)}\n[consistency] mmap restarts ${r.readers.mmapRestarts}, held files ended (EIO) ${r.readers.holdEnded}, reader errors ${r.readers.errors} ${r.readers.errorSamples.join(' | ')}, wall ${(r.wallMs / 1000).toFixed(0)} s, clock ± ${Math.max(...r.clock.map((c) => c.err)).toFixed(1)} ms`);
    expect(r.report.modelMismatches).toEqual([]);
    expect(r.report.reads).toBeGreaterThan(500);
    for (const k of ['read', 'pread', 'mmap', 'tail', 'webhdfs', 'hold']) expect(r.report.readsByKind[k] ?? 0, `${k} reads`).toBeGreaterThan(0);
    expect(r.report.restarts).toBe(2);
    expect(r.report.evidence).toEqual([]);
  }, 300_000);
});
