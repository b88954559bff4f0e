// The consistency history checker: workload, readers, history, checker, one run. docs/consistency.md.
export { Checker, formatReport, formatViolation, KINDS, type Report, type Violation, type ViolationKind, type CheckerOptions } from './checker.js';
export { clockFrom, type Clock, type ClockSample, type GuestOp, type HostEvent, type ReadRecord, type ReaderKind } from './history.js';
export { FileModel, type Seg } from './model.js';
export { pattern, patternByte, word } from './pattern.js';
export { runConsistency, bundleWorkload, sampleClock, type RunOptions, type RunResult } from './run.js';
export { startReaders, hostNow, type Readers, type ReadersOptions } from './readers.js';
export { runWorkload, workloadPaths, type WorkloadConfig } from './workload.js';
