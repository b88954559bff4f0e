// MapReduce jobs submitted from the panel: a program of the Hadoop examples jar (wordcount, ...) or
// an uploaded jar, over composed files read through the WebHDFS gateway. Jobs run one at a time (a
// job already uses the machine's cores) with the local job runner, or on YARN when configured. Each
// job keeps a directory <stateDir>/jobs/<id>/ with job.json (its record), log.txt and output/.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { hadoopInstall, progressLog4j } from './hadoop.js';

/** Programs of hadoop-mapreduce-examples that take `IN... OUT` (grep takes a regex after them). */
export const EXAMPLE_PROGRAMS: Record<string, { summary: string; extraArgs?: string }> = {
  wordcount: { summary: 'counts the words in the input files' },
  wordmean: { summary: 'average length of the words' },
  wordmedian: { summary: 'median length of the words' },
  grep: { summary: 'counts the matches of a regex', extraArgs: 'regex' },
};

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'lost';

export interface JobSpec {
  /** an example program, or 'jar' for an uploaded jar */
  program: string;
  /** uploaded jar id (program 'jar') */
  jar?: string;
  /** extra arguments (grep's regex; an uploaded jar's own arguments, before the inputs) */
  args: string[];
  inputs: { name: string; uri: string }[];
}

export interface JobRecord extends JobSpec {
  id: string;
  state: JobState;
  runner: string;
  output: string;
  submittedMs: number;
  startedMs?: number;
  finishedMs?: number;
  exitCode?: number;
  hadoopJobId?: string;
  progress: { map: number; reduce: number };
  message?: string;
}

const MAX_LOG = 8 << 20;
const TAIL_LINES = 200;
const ID_RE = /^job-[0-9a-z]{6,12}-[0-9a-f]{6}$/;

export interface JobRunnerOptions {
  dir: string;
  jarsDir: string;
  user: string;
  yarn?: string;
  timeoutMs?: number;
}

export class JobRunner extends EventEmitter<{ change: [JobRecord] }> {
  private jobs = new Map<string, JobRecord>();
  private tails = new Map<string, string[]>();
  private queue: string[] = [];
  private child?: { id: string; proc: ChildProcess };
  private closed = false;

  constructor(private readonly o: JobRunnerOptions) {
    super();
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    for (const id of readdirSync(o.dir)) {
      const f = join(o.dir, id, 'job.json');
      if (!ID_RE.test(id) || !existsSync(f)) continue;
      try {
        const j = JSON.parse(readFileSync(f, 'utf8')) as JobRecord;
        if (j.state === 'running' || j.state === 'queued') Object.assign(j, { state: 'lost', message: 'the panel stopped while the job was queued or running' });
        this.jobs.set(id, j);
      } catch { /* a torn record: skip it, keep the rest */ }
    }
  }

  list(): JobRecord[] {
    return [...this.jobs.values()].sort((a, b) => b.submittedMs - a.submittedMs);
  }

  get(id: string): JobRecord | undefined {
    return ID_RE.test(id) ? this.jobs.get(id) : undefined;
  }

  /** The last lines the job printed (progress, errors). */
  logTail(id: string): string[] {
    const t = this.tails.get(id);
    if (t) return [...t];
    const f = join(this.o.dir, id, 'log.txt');
    return ID_RE.test(id) && existsSync(f) ? readTail(f, 64 * 1024).split('\n').slice(-TAIL_LINES) : [];
  }

  /** Output files and a preview of the first `limit` bytes of the part files. */
  output(id: string, limit = 256 * 1024): { files: { name: string; size: number }[]; preview: string; truncated: boolean } | undefined {
    const j = this.get(id);
    if (!j) return undefined;
    const dir = join(this.o.dir, id, 'output');
    if (!existsSync(dir)) return { files: [], preview: '', truncated: false };
    const files = readdirSync(dir).filter((f) => !f.startsWith('.')).sort().map((name) => ({ name, size: statSync(join(dir, name)).size }));
    let preview = '';
    let truncated = false;
    for (const f of files.filter((x) => x.name.startsWith('part-'))) {
      const room = limit - Buffer.byteLength(preview);
      if (room <= 0) { truncated = true; break; }
      const buf = Buffer.alloc(Math.min(room, f.size));
      const fd = openSync(join(dir, f.name), 'r');
      try { readSync(fd, buf, 0, buf.length, 0); } finally { closeSync(fd); }
      preview += buf.toString('utf8');
      if (f.size > room) truncated = true;
    }
    return { files, preview, truncated };
  }

  submit(spec: JobSpec): JobRecord {
    if (this.closed) throw new Error('the job runner is stopping');
    const id = `job-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const dir = join(this.o.dir, id);
    mkdirSync(dir, { mode: 0o700 });
    const job: JobRecord = {
      ...spec, id, state: 'queued', runner: this.o.yarn ? `yarn ${this.o.yarn}` : 'local',
      output: `file://${join(dir, 'output')}`, submittedMs: Date.now(), progress: { map: 0, reduce: 0 },
    };
    this.jobs.set(id, job);
    this.queue.push(id);
    this.save(job);
    const submitted = structuredClone(job);
    this.next();
    return submitted;
  }

  cancel(id: string): JobRecord | undefined {
    const j = this.get(id);
    if (!j) return undefined;
    if (j.state === 'queued') {
      this.queue = this.queue.filter((x) => x !== id);
      this.finish(j, 'cancelled', 'cancelled before it started');
    } else if (j.state === 'running' && this.child?.id === id) {
      j.message = 'cancelling';
      this.child.proc.kill('SIGTERM');
    }
    return j;
  }

  async stop(): Promise<void> {
    this.closed = true;
    for (const id of this.queue.splice(0)) this.finish(this.jobs.get(id)!, 'cancelled', 'the panel stopped');
    const c = this.child;
    if (c) {
      this.jobs.get(c.id)!.message = 'cancelling: the panel stopped';
      const gone = new Promise((r) => c.proc.once('close', r));
      c.proc.kill('SIGTERM');
      const t = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
  }

  private command(j: JobRecord): string[] {
    const h = hadoopInstall();
    const conf = ['-Dmapreduce.job.reduces=1', ...(this.o.yarn
      ? ['-Dmapreduce.framework.name=yarn', `-Dyarn.resourcemanager.address=${this.o.yarn}`]
      : ['-Dmapreduce.framework.name=local'])];
    const jvm = ['-Xmx512m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', `-Dlog4j.configuration=file:${progressLog4j(this.o.dir)}`];
    const ins = j.inputs.map((i) => i.uri);
    const out = j.output;
    if (j.program === 'jar') {
      const jar = join(this.o.jarsDir, `${j.jar}.jar`);
      return [...jvm, '-cp', `${h.classpath}:${jar}`, 'org.apache.hadoop.util.RunJar', jar, ...j.args, ...ins, out];
    }
    // the same path as the gateway's wordcount test: ExampleDriver on the Maven-resolved classpath
    const tail = j.program === 'grep' ? [...ins.slice(0, 1), out, ...j.args] : [...ins, out];
    return [...jvm, '-cp', h.classpath, 'org.apache.hadoop.examples.ExampleDriver', j.program, ...conf, ...tail];
  }

  private next(): void {
    if (this.child || this.closed) return;
    const id = this.queue.shift();
    if (!id) return;
    const j = this.jobs.get(id)!;
    let args: string[];
    try {
      args = this.command(j);
    } catch (e) {
      this.finish(j, 'failed', (e as Error).message);
      return this.next();
    }
    const logFd = openSync(join(this.o.dir, id, 'log.txt'), 'a', 0o600);
    let logged = 0;
    const tail: string[] = [];
    this.tails.set(id, tail);
    const proc = spawn('java', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HADOOP_USER_NAME: this.o.user } });
    this.child = { id, proc };
    j.state = 'running';
    j.startedMs = Date.now();
    this.save(j);
    let partial = '';
    const onData = (b: Buffer) => {
      if (logged < MAX_LOG) { writeSync(logFd, b); logged += b.length; }
      const lines = (partial + b.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      if (partial.length > 16384) partial = '';
      let changed = false;
      for (const line of lines) {
        tail.push(line);
        const p = /\bmap (\d+)% reduce (\d+)%/.exec(line);
        if (p) { j.progress = { map: Number(p[1]), reduce: Number(p[2]) }; changed = true; }
        const id2 = /Running job: (job_\S+)/.exec(line);
        if (id2) { j.hadoopJobId = id2[1]; changed = true; }
      }
      if (tail.length > TAIL_LINES) tail.splice(0, tail.length - TAIL_LINES);
      if (changed) this.save(j);
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    const timer = setTimeout(() => { j.message = 'timed out'; proc.kill('SIGKILL'); }, this.o.timeoutMs ?? 3_600_000);
    proc.on('error', (e) => { j.message = `cannot start java: ${e.message}`; });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      closeSync(logFd);
      this.child = undefined;
      j.exitCode = code ?? 128;
      if (code === 0) this.finish(j, 'succeeded', 'completed');
      else if (j.message?.startsWith('cancelling')) this.finish(j, 'cancelled', j.message === 'cancelling' ? 'cancelled while running' : 'the panel stopped');
      else {
        const err = [...tail].reverse().find((l) => /Exception|Error|error:|No such|not exist|Usage/i.test(l));
        this.finish(j, 'failed', j.message ?? (err?.trim() || `java exited with ${code ?? signal}`));
      }
      this.tails.delete(id);
      this.next();
    });
  }

  private finish(j: JobRecord, state: JobState, message: string): void {
    j.state = state;
    j.message = message;
    j.finishedMs = Date.now();
    if (state === 'succeeded') j.progress = { map: 100, reduce: 100 };
    this.save(j);
  }

  private save(j: JobRecord): void {
    const f = join(this.o.dir, j.id, 'job.json');
    writeFileSync(`${f}.tmp`, JSON.stringify(j), { mode: 0o600 });
    renameSync(`${f}.tmp`, f);
    this.emit('change', j);
  }
}

function readTail(file: string, n: number): string {
  const size = statSync(file).size;
  const buf = Buffer.alloc(Math.min(n, size));
  const fd = openSync(file, 'r');
  try { readSync(fd, buf, 0, buf.length, size - buf.length); } finally { closeSync(fd); }
  return buf.toString('utf8');
}
