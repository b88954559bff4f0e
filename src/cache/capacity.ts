// Measuring a device's IOPS capacity with fio (4 KiB random reads, O_DIRECT, libaio, iodepth 32):
// the capacity that IOPS weights are multiplied by. Also used by the enforcement tests.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ActuatorError, CapabilityError } from './errors.js';

const run = promisify(execFile);

export interface FioJob {
  /** file or block device */
  filename: string;
  seconds: number;
  rw?: 'randread' | 'randwrite' | 'randrw';
  iodepth?: number;
  blockSize?: string;
  /** fio size= (default: the whole device) */
  size?: string;
  /** put fio in this cgroup first: a path to a cgroup directory */
  cgroupDir?: string;
}

export interface FioResult {
  iops: number;
  ios: number;
  runtimeMs: number;
}

/** Run one fio job, return its measured IOPS (reads + writes). */
export async function runFio(job: FioJob): Promise<FioResult> {
  const args = [
    '--name=livemr', `--filename=${job.filename}`, `--rw=${job.rw ?? 'randread'}`, `--bs=${job.blockSize ?? '4k'}`,
    '--direct=1', '--ioengine=libaio', `--iodepth=${job.iodepth ?? 32}`, '--time_based', `--runtime=${job.seconds}`,
    '--norandommap', '--randrepeat=0', '--output-format=json', ...(job.size ? [`--size=${job.size}`] : []),
  ];
  // Enter the cgroup from a shell that then becomes fio, so all fio threads are in it from the start.
  const [cmd, argv] = job.cgroupDir
    ? ['sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec fio "$@"', job.cgroupDir, ...args]]
    : ['fio', args];
  let out: string;
  try {
    out = (await run(cmd, argv as string[], { maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') throw new CapabilityError('fio is not installed (apt-get install fio)');
    throw new ActuatorError(`fio failed: ${err.stderr ?? err.message}`, { cause: e });
  }
  const json = JSON.parse(out.slice(out.indexOf('{'))) as { jobs: { read: Rec; write: Rec }[] };
  const j = json.jobs[0]!;
  return {
    iops: j.read.iops + j.write.iops,
    ios: j.read.total_ios + j.write.total_ios,
    runtimeMs: Math.max(j.read.runtime, j.write.runtime),
  };
}
type Rec = { iops: number; total_ios: number; runtime: number };
