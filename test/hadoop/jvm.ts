// One test JVM daemon (a Hadoop mini cluster, a NameNode + DataNode) in a work directory of its own,
// run as a throwaway account: its jars linked in from root's cache, started until it prints its
// ready line, and never left running — it stops when its stdin closes (stop(), or this process
// dying), and stop() then kills by PID whatever still names the work directory (containers).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Java 17 needs these for Hadoop 3.4's Guice/cglib and reflection (the hadoop scripts add them). */
export const ADD_OPENS = ['java.lang', 'java.util', 'java.util.concurrent', 'java.net', 'java.io', 'java.lang.reflect', 'sun.nio.ch']
  .map((p) => `--add-opens=java.base/${p}=ALL-UNNAMED`);

/** Every PID but ours whose command line mentions `needle`. */
function pidsMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

export interface JvmStart {
  /** -Xmx… */
  heap: string;
  /** further JVM flags (hosts file, add-opens) */
  jvm: string[];
  mainClass: string;
  args: string[];
  uid: number;
  gid: number;
  /** the daemon prints `MARKER {json}` on stdout once it serves */
  readyMarker: string;
  /** what it is, for errors */
  what: string;
  timeoutMs: number;
}

export class JvmWorkDir {
  readonly dir: string;
  private child: ChildProcess | undefined;

  constructor(prefix: string, private readonly onStop: () => void = () => {}) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  }

  /** Hard-links (or copies, across file systems) `dirs` of the jar cache in: the cache sits under
   * root's home, which the daemon's account cannot reach. */
  linkFrom(cache: string, dirs: string[]): void {
    for (const d of dirs) {
      try {
        execFileSync('cp', ['-al', path.join(cache, d), path.join(this.dir, d)]);
      } catch {
        execFileSync('cp', ['-r', path.join(cache, d), path.join(this.dir, d)]);
      }
    }
  }

  /** Starts the daemon as o.uid (the work directory becomes its, 0755: clients of another account
   * read its conf and jars), classpath conf:classes:jars; resolves with its ready line's JSON. */
  async start(o: JvmStart): Promise<{ ready: Record<string, unknown>; log: string }> {
    const w = this.dir;
    execFileSync('chown', ['-R', `${o.uid}:${o.gid}`, w]);
    fs.chmodSync(w, 0o755);
    const log = path.join(w, `${o.mainClass}.log`);
    const logFd = fs.openSync(log, 'w');
    const child = (this.child = spawn('java', [o.heap, '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', ...o.jvm,
      '-cp', `${path.join(w, 'conf')}:${path.join(w, 'classes')}:${path.join(w, 'jars')}/*`, o.mainClass, ...o.args], {
      cwd: w, uid: o.uid, gid: o.gid, stdio: ['pipe', 'pipe', logFd], env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: w, LANG: 'C.UTF-8' },
    }));
    fs.closeSync(logFd);
    const lastLines = () => fs.readFileSync(log, 'utf8').split('\n');
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`the ${o.what} did not start in time; the last lines of its log:\n${lastLines().slice(-40).join('\n')}`)), o.timeoutMs);
      child.stdout!.on('data', (b: Buffer) => {
        buf += b.toString();
        const m = new RegExp(`${o.readyMarker} (\\{.*\\})\\n`).exec(buf);
        if (m) {
          clearTimeout(timer);
          resolve(JSON.parse(m[1]!) as Record<string, unknown>);
        }
        if (buf.length > 1 << 20) buf = buf.slice(-4096);
      });
      child.once('close', (code) => {
        clearTimeout(timer);
        const lines = lastLines();
        reject(new Error(`the ${o.what} exited ${code} before it was ready:\n${lines.filter((l) => /Exception|Error|FATAL/.test(l)).slice(0, 8).join('\n')}\n--- last lines of its log:\n${lines.slice(-40).join('\n')}`));
      });
      child.once('error', reject);
    });
    return { ready, log };
  }

  /** Closes the daemon's stdin (SIGKILL after 60 s), kills what still names the directory, removes it. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((res) => child.once('close', res));
      child.stdin?.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 60_000);
      await gone;
      clearTimeout(t);
    }
    for (const pid of pidsMentioning(this.dir)) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.onStop();
  }
}
