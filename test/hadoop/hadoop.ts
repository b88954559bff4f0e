// Runs real Hadoop client code (jars from Maven Central, see scripts/build-native-hadoop.sh) for the
// gateway's tests and benchmarks: FsShell commands batched in one JVM, and whole programs.

import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

let cached: string | undefined;
/** The classpath (Hadoop jars + the compiled test driver); builds the cache on first use. */
export function hadoopClasspath(): string {
  if (cached) return cached;
  const r = spawnSync('bash', [path.join(root, 'scripts/build-native-hadoop.sh'), '--print'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`build-native-hadoop.sh failed: ${r.stderr}`);
  const dir = r.stdout.trim();
  return (cached = `${dir}/conf:${dir}/classes:${dir}/jars/*`);
}

/** JVM flags: a small heap and quick start-up on a small machine. */
const JVM = ['-Xmx512m', '-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-Dlog4j2.level=WARN'];

export interface ShellResult {
  rc: number;
  out: Buffer;
  err: string;
}

export interface RunResult {
  rc: number;
  stdout: string;
  stderr: string;
  pid: number;
}

/** Runs a Java main class to completion (killed by PID after timeoutMs). */
export function runJava(
  mainClass: string, args: string[], opts: { stdin?: string; timeoutMs?: number; user?: string; classpath?: string; jvm?: string[] } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('java', [...JVM, ...(opts.jvm ?? []), '-cp', opts.classpath ?? hadoopClasspath(), mainClass, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.user ? { ...process.env, HADOOP_USER_NAME: opts.user } : process.env,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 240_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        rc: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        pid: child.pid ?? 0,
      });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}

/** Runs FsShell commands (each an argv) in one JVM; `conf` becomes -D options. */
export async function fsShell(commands: string[][], conf: Record<string, string> = {}, user?: string): Promise<ShellResult[]> {
  const defs = Object.entries(conf).map(([k, v]) => `-D${k}=${v}`);
  const stdin = commands.map((c) => c.join('\t')).join('\n') + '\n';
  const r = await runJava('FsShellBatch', defs, user ? { stdin, user } : { stdin });
  if (r.rc !== 0) throw new Error(`FsShellBatch exited ${r.rc}: ${r.stderr}`);
  const lines = r.stdout.split('\n').filter((l) => /^-?\d+\t/.test(l));
  if (lines.length !== commands.length) throw new Error(`FsShellBatch answered ${lines.length}/${commands.length}: ${r.stdout}\n${r.stderr}`);
  return lines.map((l) => {
    const [rc, out, err] = l.split('\t');
    return { rc: Number(rc), out: Buffer.from(out ?? '', 'base64'), err: Buffer.from(err ?? '', 'base64').toString() };
  });
}
