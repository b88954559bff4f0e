// `livemr doctor`: checks of what a KVM host needs (docs/cli.md).
export { checkDir, checkFuse, checkGroup, checkKernel, checkLibvirt, checkQemu, failed, formatResults, runChecks,
  type CheckResult, type DoctorOptions, type Probe, type Verdict } from './checks.js';
export { hostProbe } from './probe.js';
