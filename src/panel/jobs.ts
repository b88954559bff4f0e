// MapReduce jobs submitted from the panel: a program of the Hadoop examples jar (wordcount, ...) or
// an uploaded jar, over composed files read through the WebHDFS gateway. Jobs run one at a time (a
// job already uses the machine's cores) with the local job runner, or on YARN when configured. Each
// job keeps a directory <stateDir>/jobs/<id>/ with job.json (its record), log.txt and output/.
//
// A job is code of whoever holds the panel token, so it never runs as the panel's user (`livemr`, or
// root): it runs as the configured unprivileged account (refused if that is uid 0, unavailable if it
// is the panel's own), without supplementary groups, with a minimal environment, in its own sandbox
// <jobWorkDir>/<id>/ (owned by it, 0700; <jobWorkDir> is the panel's, 0711). It sees the Hadoop jars
// (a read-only copy), its jar, its sandbox and the gateway — not the panel's state, tokens, images or
// the mount. When it ends its process group is killed and its output is moved into the panel's
// record directory; the panel then reads only plain files there (no symlink, no hard link) so a job
// cannot make the panel read for it. A panel that is not root needs JOB_CAPS for this (its unit
// grants them as ambient capabilities, docs/security.md).
import { ERROR_CODES, LiveMrError } from '../errors/index.js';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import {
  chmodSync, chownSync, closeSync, constants, copyFileSync, existsSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync,
  readFileSync, readSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { hadoopInstall, jobHistoryAddress, progressLog4jText } from './hadoop.js';
import { writeFileAtomic } from '../durable/index.js';

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
  /** where the map tasks ran relative to their splits' block hosts (the job's counters) */
  locality?: { launchedMaps: number; dataLocalMaps: number; rackLocalMaps: number; otherLocalMaps: number };
  /** a YARN job as the cluster's JobHistoryServer reports it (its REST API), once it has the job */
  history?: JobHistory;
  /** why `history` is missing (no JobHistoryServer configured, or it did not know the job in time) */
  historyMessage?: string;
}

/** From the JobHistoryServer's REST API (/ws/v1/history/mapreduce/jobs/{id}, .../counters, .../tasks). */
export interface JobHistory {
  /** the job's resource on the JobHistoryServer */
  url: string;
  state: string;
  maps: { total: number; completed: number };
  reduces: { total: number; completed: number };
  /** counter group → counter → total (e.g. org.apache.hadoop.mapreduce.JobCounter → DATA_LOCAL_MAPS) */
  counters: Record<string, Record<string, number>>;
  /** each map task's successful attempt (else its last): the NodeManager host it ran on, its rack and container */
  mapTasks: { task: string; attempt: string; state: string; host: string; rack: string; container: string }[];
}

/** Job counter lines (as the job client prints them at the end) behind JobRecord.locality. */
const LOCALITY: Record<string, keyof NonNullable<JobRecord['locality']>> = {
  'Launched map tasks': 'launchedMaps', 'Data-local map tasks': 'dataLocalMaps', 'Rack-local map tasks': 'rackLocalMaps', 'Other local map tasks': 'otherLocalMaps',
};

const MAX_LOG = 8 << 20;
const TAIL_LINES = 200;
const ID_RE = /^job-[0-9a-z]{6,12}-[0-9a-f]{6}$/;
const JAR_RE = /^[0-9a-f]{16}$/;

/** A refused job operation; its code fixes the HTTP status the panel answers with (src/errors). */
export class JobError extends LiveMrError {
  override name = 'JobError';
  constructor(override readonly code: 'job-user-root' | 'jobs-unavailable' | 'queue-full' | 'jar-store-full' | 'jar-in-use' | 'no-jar', message: string) {
    super(message);
  }
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

export interface JobAccount {
  name: string;
  uid: number;
  gid: number;
}

/** What starting and collecting a job as another user takes: switch to it, chown its sandbox, signal it, move and remove its files. */
export const JOB_CAPS = { CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7 } as const;

/** The JOB_CAPS this process lacks in its effective set (none for root). */
export function missingJobCaps(status = '/proc/self/status'): string[] {
  if (process.getuid?.() === 0) return [];
  let eff = 0n;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(status, 'utf8'));
    if (m) eff = BigInt(`0x${m[1]}`);
  } catch { /* no /proc: none */ }
  return Object.entries(JOB_CAPS).filter(([, bit]) => !(eff & (1n << BigInt(bit)))).map(([name]) => name);
}

/** The account jobs run as (getent: local files, LDAP, ...); undefined if there is none. */
export function lookupAccount(name: string): JobAccount | undefined {
  let line: string;
  try {
    line = execFileSync('getent', ['passwd', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim().split('\n')[0]!;
  } catch {
    return undefined;
  }
  const f = line.split(':');
  const uid = Number(f[2]);
  const gid = Number(f[3]);
  if (f[0] !== name || !Number.isInteger(uid) || !Number.isInteger(gid)) return undefined;
  return { name, uid, gid };
}

export interface JobRunnerOptions {
  dir: string;
  jarsDir: string;
  /** the unprivileged account jobs run as (also HADOOP_USER_NAME) */
  user: string;
  /** root-owned parent of the jobs' sandboxes */
  workDir: string;
  yarn?: string;
  /** a Hadoop client configuration directory ($HADOOP_CONF_DIR of the YARN cluster), first on the
   *  job's classpath; must be readable by the job user */
  hadoopConf?: string;
  /** where outputs go instead of the job's sandbox, e.g. hdfs://nn:8020/user/livemr/jobs: YARN's
   *  tasks do not run as the job user, so they cannot write its sandbox. Output previews are local only. */
  outputBase?: string;
  timeoutMs?: number;
  /** with `yarn`: extra flags for the job client's JVM, e.g. -Djdk.net.hosts.file=… where the
   *  cluster's host names (the NodeManagers, which host the job's ApplicationMaster) are not in DNS */
  jvmOptions?: string[];
  /** with `yarn`: how long to wait for the JobHistoryServer (hadoopConf's mapreduce.jobhistory.webapp.address)
   *  to know a finished job (default 120 s) */
  historyTimeoutMs?: number;
  /** queued jobs (besides the running one); more are refused */
  maxQueued?: number;
  /** for tests: the account lookup */
  lookup?: (name: string) => JobAccount | undefined;
}

/** The uploaded jars, content-addressed (<id>.jar, id = first 16 hex of the SHA-256), bounded in number. */
export class JarStore {
  constructor(private readonly dir: string, private readonly max: number) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  list(): { id: string; size: number; storedMs: number }[] {
    return readdirSync(this.dir).filter((f) => JAR_RE.test(f.slice(0, -4)) && f.endsWith('.jar'))
      .map((f) => { const st = statSync(join(this.dir, f)); return { id: f.slice(0, -4), size: st.size, storedMs: st.mtimeMs }; })
      .sort((a, b) => a.storedMs - b.storedMs || a.id.localeCompare(b.id));
  }

  has(id: string): boolean {
    return JAR_RE.test(id) && existsSync(this.path(id));
  }

  path(id: string): string {
    return join(this.dir, `${id}.jar`);
  }

  /** Stores a jar (idempotent); refused when `max` other jars are stored. */
  add(id: string, body: Buffer): void {
    if (this.has(id)) return;
    const n = this.list().length;
    if (n >= this.max) throw new JobError('jar-store-full', `at most ${this.max} jars are stored: delete one first (DELETE /api/v1/jars/{id})`);
    writeFileAtomic(this.path(id), body, { mode: 0o600 });
  }

  remove(id: string): boolean {
    if (!this.has(id)) return false;
    unlinkSync(this.path(id));
    return true;
  }
}

export class JobRunner extends EventEmitter<{ change: [JobRecord] }> {
  private jobs = new Map<string, JobRecord>();
  private tails = new Map<string, string[]>();
  private queue: string[] = [];
  private child?: { id: string; proc: ChildProcess };
  private closed = false;
  /** JobHistoryServer look-ups in flight, aborted by stop() */
  private readonly lookups = new Set<AbortController>();
  private readonly account?: JobAccount;
  /** why jobs cannot start here (no such account, the panel cannot switch users) */
  readonly unavailable?: string;

  constructor(private readonly o: JobRunnerOptions) {
    super();
    const acct = (o.lookup ?? lookupAccount)(o.user);
    if (acct && (acct.uid === 0 || acct.gid === 0)) {
      throw new JobError('job-user-root', `jobUser '${o.user}' is uid ${acct.uid} / gid ${acct.gid}: jobs never run as root; create an unprivileged account (useradd --system ${o.user === 'root' ? 'livemr' : o.user}) and name it in jobUser`);
    }
    if (!acct) this.unavailable = `the job user '${o.user}' does not exist: create it (useradd --system --no-create-home --shell /usr/sbin/nologin ${o.user}) or set jobUser`;
    else if (process.getuid?.() === acct.uid) this.unavailable = `the panel itself runs as the job user '${o.user}': a job could read the panel's state and token`;
    else if (missingJobCaps().length) this.unavailable = `the panel runs as uid ${process.getuid?.()} without ${missingJobCaps().join(', ')} and cannot start jobs as '${o.user}' (uid ${acct.uid}): systemd/livemr-panel.service grants them`;
    else this.account = acct;
    mkdirSync(o.dir, { recursive: true, mode: 0o700 });
    mkdirSync(o.workDir, { recursive: true, mode: 0o711 });
    const w = lstatSync(o.workDir);
    if (!w.isDirectory() || w.uid !== process.getuid?.()) throw new JobError('jobs-unavailable', `jobWorkDir ${o.workDir} must be a directory owned by the panel's user`);
    chmodSync(o.workDir, 0o711);
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
    let dst;
    try { dst = lstatSync(dir); } catch { return { files: [], preview: '', truncated: false }; }
    if (!dst.isDirectory()) return { files: [], preview: '', truncated: false };
    // the job wrote these files: list them without following links, read only plain files
    const files = readdirSync(dir).filter((f) => !f.startsWith('.')).sort().map((name) => {
      const st = lstatSync(join(dir, name));
      return { name, size: st.isFile() ? st.size : 0, plain: st.isFile() && st.nlink === 1 };
    });
    let preview = '';
    let truncated = false;
    for (const f of files.filter((x) => x.name.startsWith('part-') && x.plain)) {
      const room = limit - Buffer.byteLength(preview);
      if (room <= 0) { truncated = true; break; }
      const text = readPlain(join(dir, f.name), room);
      if (text === undefined) continue;
      preview += text.data;
      if (text.more) truncated = true;
    }
    return { files: files.map(({ name, size }) => ({ name, size })), preview, truncated };
  }

  /** True while a queued or running job uses the jar. */
  jarInUse(jar: string): boolean {
    return [...this.jobs.values()].some((j) => j.jar === jar && (j.state === 'queued' || j.state === 'running'));
  }

  submit(spec: JobSpec): JobRecord {
    if (this.closed) throw new JobError('jobs-unavailable', 'the job runner is stopping');
    if (!this.account) throw new JobError('jobs-unavailable', this.unavailable ?? 'jobs cannot run here');
    const max = this.o.maxQueued ?? 16;
    if (this.queue.length >= max) throw new JobError('queue-full', `${max} jobs are already queued: wait for one to finish or cancel one`);
    const id = `job-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    const dir = join(this.o.dir, id);
    mkdirSync(dir, { mode: 0o700 });
    const job: JobRecord = {
      ...spec, id, state: 'queued', runner: this.o.yarn ? `yarn ${this.o.yarn}` : 'local',
      output: this.o.outputBase ? `${this.o.outputBase.replace(/\/+$/, '')}/${id}` : `file://${join(dir, 'output')}`, submittedMs: Date.now(), progress: { map: 0, reduce: 0 },
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
      killGroup(this.child.proc, 'SIGTERM');
    }
    return j;
  }

  async stop(): Promise<void> {
    this.closed = true;
    for (const a of this.lookups) a.abort();
    for (const id of this.queue.splice(0)) this.finish(this.jobs.get(id)!, 'cancelled', 'the panel stopped');
    const c = this.child;
    if (c) {
      this.jobs.get(c.id)!.message = 'cancelling: the panel stopped';
      const gone = new Promise((r) => c.proc.once('close', r));
      killGroup(c.proc, 'SIGTERM');
      const t = setTimeout(() => killGroup(c.proc, 'SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
  }

  /** The Hadoop jars where the job user can read them: a read-only copy under workDir. */
  private stagedHadoop(): string {
    const h = hadoopInstall();
    const target = join(this.o.workDir, basename(h.dir));
    if (existsSync(join(target, '.done'))) return target;
    const tmp = `${target}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    try {
      execFileSync('cp', ['-al', h.dir, tmp], { stdio: 'ignore' }); // hard links: same inodes, no space
      execFileSync('chmod', ['-R', 'go+rX,go-w', tmp], { stdio: 'ignore' });
    } catch {
      // no links across file systems, or (a panel that is not root) inodes of another owner it may
      // not chmod: a copy of its own
      rmSync(tmp, { recursive: true, force: true });
      execFileSync('cp', ['-r', '--preserve=timestamps', h.dir, tmp]);
      execFileSync('chmod', ['-R', 'go+rX,go-w', tmp]);
    }
    writeFileSync(join(tmp, '.done'), '');
    rmSync(target, { recursive: true, force: true });
    renameSync(tmp, target);
    return target;
  }

  /** The job's own directory: owned by its user, 0700, with its jar, log4j config and tmp. */
  private sandbox(j: JobRecord): string {
    const a = this.account!;
    const box = join(this.o.workDir, j.id);
    rmSync(box, { recursive: true, force: true });
    mkdirSync(box, { mode: 0o700 });
    writeFileSync(join(box, 'log4j.properties'), progressLog4jText(), { mode: 0o444 });
    if (j.program === 'jar') {
      copyFileSync(join(this.o.jarsDir, `${j.jar}.jar`), join(box, 'job.jar'));
      chmodSync(join(box, 'job.jar'), 0o444);
    }
    mkdirSync(join(box, 'tmp'), { mode: 0o700 });
    chownSync(join(box, 'tmp'), a.uid, a.gid);
    chownSync(box, a.uid, a.gid);
    return box;
  }

  private command(j: JobRecord, box: string): string[] {
    const hdir = this.stagedHadoop();
    const classpath = `${this.o.hadoopConf ? `${this.o.hadoopConf}:` : ''}${hdir}/conf:${hdir}/classes:${hdir}/jars/*`;
    const conf = ['-Dmapreduce.job.reduces=1', `-Dhadoop.tmp.dir=${join(box, 'tmp')}`, ...(this.o.yarn
      ? ['-Dmapreduce.framework.name=yarn', `-Dyarn.resourcemanager.address=${this.o.yarn}`]
      // the local runner stages under /tmp/hadoop/mapred/staging unless told: a directory shared by
      // every job user, owned by whichever ran first, so the next user's job cannot submit
      : ['-Dmapreduce.framework.name=local', `-Dmapreduce.jobtracker.staging.root.dir=${join(box, 'tmp', 'staging')}`])];
    const jvm = ['-Xmx512m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', `-Djava.io.tmpdir=${join(box, 'tmp')}`, `-Dlog4j.configuration=file:${join(box, 'log4j.properties')}`,
      ...(this.o.yarn ? this.o.jvmOptions ?? [] : [])];
    const ins = j.inputs.map((i) => i.uri);
    const out = this.o.outputBase ? j.output : `file://${join(box, 'output')}`;
    if (j.program === 'jar') {
      const jar = join(box, 'job.jar');
      return [...jvm, '-cp', `${classpath}:${jar}`, 'org.apache.hadoop.util.RunJar', jar, ...j.args, ...ins, out];
    }
    // the same path as the gateway's wordcount test: ExampleDriver on the Maven-resolved classpath
    const tail = j.program === 'grep' ? [...ins.slice(0, 1), out, ...j.args] : [...ins, out];
    return [...jvm, '-cp', classpath, 'org.apache.hadoop.examples.ExampleDriver', j.program, ...conf, ...tail];
  }

  /** Only what an unprivileged JVM needs; nothing of the panel's environment (tokens, paths). */
  private env(box: string): NodeJS.ProcessEnv {
    return {
      PATH: '/usr/local/bin:/usr/bin:/bin', HOME: box, TMPDIR: join(box, 'tmp'), LANG: 'C.UTF-8', HADOOP_USER_NAME: this.o.user,
      ...(process.env.JAVA_HOME ? { JAVA_HOME: process.env.JAVA_HOME } : {}),
    };
  }

  /** After the job: its output into the root-owned record directory, its sandbox gone. */
  private collect(j: JobRecord): void {
    const box = join(this.o.workDir, j.id);
    const dest = join(this.o.dir, j.id, 'output');
    try {
      const st = lstatSync(join(box, 'output'));
      if (st.isDirectory()) {
        rmSync(dest, { recursive: true, force: true });
        renameSync(join(box, 'output'), dest);
        chownSync(dest, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
        chmodSync(dest, 0o700);
      }
    } catch { /* no output */ }
    rmSync(box, { recursive: true, force: true });
  }

  private next(): void {
    if (this.child || this.closed) return;
    const id = this.queue.shift();
    if (!id) return;
    const j = this.jobs.get(id)!;
    let args: string[];
    let box: string;
    try {
      box = this.sandbox(j);
      args = this.command(j, box);
    } catch (e) {
      this.finish(j, 'failed', (e as Error).message);
      return this.next();
    }
    const logFd = openSync(join(this.o.dir, id, 'log.txt'), 'a', 0o600);
    let logged = 0;
    const tail: string[] = [];
    this.tails.set(id, tail);
    // setpriv rather than spawn's uid/gid: a panel that is not root holds JOB_CAPS as ambient
    // capabilities, and a setuid between two non-root uids would hand them on to the job; setpriv
    // clears them (and the supplementary groups), and no-new-privs keeps setuid binaries from giving
    // any back. detached: its own process group, killed as a whole when the job ends
    const a = this.account!;
    const drop = [`--reuid=${a.uid}`, `--regid=${a.gid}`, '--clear-groups', '--inh-caps=-all', '--ambient-caps=-all', '--no-new-privs', '--'];
    const proc = spawn('setpriv', [...drop, 'java', ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: box, env: this.env(box), detached: true });
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
        const c = /^\s+(Launched map tasks|Data-local map tasks|Rack-local map tasks|Other local map tasks)=(\d+)\s*$/.exec(line);
        if (c) {
          j.locality ??= { launchedMaps: 0, dataLocalMaps: 0, rackLocalMaps: 0, otherLocalMaps: 0 };
          j.locality[LOCALITY[c[1]!]!] = Number(c[2]);
          changed = true;
        }
      }
      if (tail.length > TAIL_LINES) tail.splice(0, tail.length - TAIL_LINES);
      if (changed) this.save(j);
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    const timer = setTimeout(() => { j.message = 'timed out'; killGroup(proc, 'SIGKILL'); }, this.o.timeoutMs ?? 3_600_000);
    proc.on('error', (e) => { j.message = `cannot start java: ${e.message}`; });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      closeSync(logFd);
      killGroup(proc, 'SIGKILL'); // whatever the job left behind in its group
      this.collect(j);
      this.child = undefined;
      j.exitCode = code ?? 128;
      if (code === 0) this.finish(j, 'succeeded', 'completed');
      else if (j.message?.startsWith('cancelling')) this.finish(j, 'cancelled', j.message === 'cancelling' ? 'cancelled while running' : 'the panel stopped');
      else {
        const err = [...tail].reverse().find((l) => /Exception|Error|error:|No such|not exist|Usage/i.test(l));
        this.finish(j, 'failed', j.message ?? (err?.trim() || `java exited with ${code ?? signal}`));
      }
      this.tails.delete(id);
      if (this.o.yarn && j.hadoopJobId) void this.history(j);
      this.next();
    });
  }

  /**
   * Asks the cluster's JobHistoryServer about a finished YARN job until it knows it (the
   * ApplicationMaster hands the job's history over as it exits, after the client saw it finish),
   * then records what it says: state, task counts, counters, where each map ran.
   */
  private async history(j: JobRecord): Promise<void> {
    const addr = this.o.hadoopConf ? jobHistoryAddress(this.o.hadoopConf) : undefined;
    if (!addr) {
      j.historyMessage = 'no JobHistoryServer: hadoopConf names no mapreduce.jobhistory.webapp.address';
      return this.save(j);
    }
    const base = `http://${addr}/ws/v1/history/mapreduce/jobs/${encodeURIComponent(j.hadoopJobId!)}`;
    const abort = new AbortController();
    this.lookups.add(abort);
    const get = async (url: string): Promise<{ status: number; body: unknown }> => {
      const r = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.any([abort.signal, AbortSignal.timeout(15_000)]) });
      return { status: r.status, body: r.ok ? await r.json() : await r.text() };
    };
    const deadline = Date.now() + (this.o.historyTimeoutMs ?? 120_000);
    let last: string | undefined;
    try {
      for (;;) {
        try {
          const r = await get(base);
          if (r.status === 200) {
            j.history = await this.readHistory(base, (r.body as { job: HsJob }).job, get);
            delete j.historyMessage;
            return this.save(j);
          }
          last = `${r.status} ${String(r.body).slice(0, 300)}`;
        } catch (e) {
          if (abort.signal.aborted) return;
          last = (e as Error).message;
        }
        if (Date.now() > deadline) {
          j.historyMessage = `the JobHistoryServer at ${addr} did not report ${j.hadoopJobId}: ${last}`;
          return this.save(j);
        }
        await new Promise((r) => setTimeout(r, 1000));
        if (abort.signal.aborted) return;
      }
    } finally {
      this.lookups.delete(abort);
    }
  }

  private async readHistory(base: string, job: HsJob, get: (url: string) => Promise<{ status: number; body: unknown }>): Promise<JobHistory> {
    const ok = async <T>(url: string): Promise<T> => {
      const r = await get(url);
      if (r.status !== 200) throw new Error(`${url}: ${r.status} ${String(r.body).slice(0, 300)}`);
      return r.body as T;
    };
    const counters: JobHistory['counters'] = {};
    const c = await ok<{ jobCounters: { counterGroup?: { counterGroupName: string; counter?: { name: string; totalCounterValue: number }[] }[] } }>(`${base}/counters`);
    for (const g of c.jobCounters.counterGroup ?? []) counters[g.counterGroupName] = Object.fromEntries((g.counter ?? []).map((x) => [x.name, x.totalCounterValue]));
    const tasks = await ok<{ tasks: { task?: { id: string; successfulAttempt?: string }[] } | null }>(`${base}/tasks?type=m`);
    const mapTasks: JobHistory['mapTasks'] = [];
    for (const t of tasks.tasks?.task ?? []) {
      const a = await ok<{ taskAttempts: { taskAttempt?: HsAttempt[] } | null }>(`${base}/tasks/${encodeURIComponent(t.id)}/attempts`);
      const all = a.taskAttempts?.taskAttempt ?? [];
      const at = all.find((x) => x.id === t.successfulAttempt) ?? all[all.length - 1];
      if (!at) continue;
      mapTasks.push({ task: t.id, attempt: at.id, state: at.state, host: at.nodeHttpAddress?.replace(/:\d+$/, '') ?? '', rack: at.rack ?? '', container: at.assignedContainerId ?? '' });
    }
    return {
      url: base, state: job.state, maps: { total: job.mapsTotal, completed: job.mapsCompleted },
      reduces: { total: job.reducesTotal, completed: job.reducesCompleted }, counters, mapTasks,
    };
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
    writeFileAtomic(f, JSON.stringify(j), { mode: 0o600 });
    this.emit('change', j);
  }
}

/** The fields the panel reads of the JobHistoryServer's job and task attempt resources. */
interface HsJob { state: string; mapsTotal: number; mapsCompleted: number; reducesTotal: number; reducesCompleted: number }
interface HsAttempt { id: string; state: string; nodeHttpAddress?: string; rack?: string; assignedContainerId?: string }

/** Up to `room` bytes of a file that is a plain file with one link when opened (no symlink, FIFO or hard link). */
function readPlain(file: string, room: number): { data: string; more: boolean } | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.nlink !== 1) return undefined;
    const buf = Buffer.alloc(Math.min(room, st.size));
    const n = readSync(fd, buf, 0, buf.length, 0);
    return { data: buf.subarray(0, n).toString('utf8'), more: st.size > room };
  } finally {
    closeSync(fd);
  }
}

/** Signals the job's whole process group (it was spawned detached: pgid = its pid). */
function killGroup(proc: ChildProcess, sig: NodeJS.Signals): void {
  if (proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, sig);
  } catch { /* the group is gone */ }
}

function readTail(file: string, n: number): string {
  const size = statSync(file).size;
  const buf = Buffer.alloc(Math.min(n, size));
  const fd = openSync(file, 'r');
  try { readSync(fd, buf, 0, buf.length, size - buf.length); } finally { closeSync(fd); }
  return buf.toString('utf8');
}
