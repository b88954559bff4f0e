// Shared pieces of the live-path benchmarks (bench/host-freshness.ts, bench/host-read.ts,
// bench/guest-cost.ts): a bench directory that is always cleaned up, the host agent on a booted guest,
// extra virtio-serial ports, the guest writer script and its port, the host-side poller that stamps
// when a line is readable on the mount, a QEMU guest agent client, percentiles and a table printer.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostAgent } from '../src/host/agent.js';
import { parseConfig, type AgentConfig } from '../src/host/config.js';
import { createLogger } from '../src/host/log.js';
import type { GuestVm } from '../test/harness/vm.js';
import { until as waitUntil } from '../test/harness/wait.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** host CLOCK_REALTIME in ms with sub-ms resolution */
export const hostNow = () => performance.timeOrigin + performance.now();

/** The tests' bounded wait, with the benchmarks' defaults (60 s, 20 ms steps). */
export const until = <T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 60_000, stepMs = 20): Promise<T> =>
  waitUntil(what, fn, timeoutMs, stepMs);

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const w = head.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(' | ') + ' |';
  return [line(cells[0]!), '|' + w.map((n, i) => (i === 0 ? '-'.repeat(n + 2) : '-'.repeat(n + 1) + ':')).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

/** A temporary directory for sockets, disks, the mount and agent state; `cleanup` unmounts and removes it. */
export function benchDir(prefix: string): { dir: string; mountpoint: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `livemr-${prefix}-`));
  const mountpoint = join(dir, 'mnt');
  const cleanup = () => {
    if (existsSync(mountpoint)) {
      try { execFileSync('fusermount3', ['-uz', mountpoint], { stdio: 'ignore' }); } catch { /* not mounted */ }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup); // also after a crash that skips the caller's finally (the harness kills QEMU)
  return { dir, mountpoint, cleanup };
}

/** QEMU arguments for a second virtio-serial controller carrying the named ports (host: unix sockets). */
export function serialPorts(ports: { name: string; socket: string }[]): string[] {
  return ['-device', 'virtio-serial-pci,id=benchser',
    ...ports.flatMap((p, i) => [
      '-chardev', `socket,id=benchport${i},path=${p.socket},server=on,wait=off`,
      '-device', `virtserialport,bus=benchser.0,chardev=benchport${i},name=${p.name}`,
    ])];
}

/** Shell snippet: the /dev/vportNpM of the port named NAME (found by sysfs, not a fixed number). */
export const guestPortDev = (name: string) =>
  `$(for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name)" = ${name} ] && echo /dev/$(basename $p); done)`;

export function connectUnix(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path, () => { s.off('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

export interface RunningAgent { agent: HostAgent; cfg: AgentConfig; logs: string[] }

/** The host agent for one VM (name vm1) using the VM's boot-time channel; metrics off. */
export async function startAgent(
  vm: GuestVm, dir: string, mountpoint: string, share: string[], onLog?: (line: string) => void,
): Promise<RunningAgent> {
  const logs: string[] = [];
  const cfg = parseConfig({
    mountpoint, stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: null,
    vms: [{ name: 'vm1', qmp: vm.qmpSocket, channel: vm.channelSocket, share }],
  });
  const agent = await HostAgent.start(cfg, createLogger({ level: 'info', sink: (l) => { onLog?.(l); logs.push(l); if (logs.length > 400) logs.shift(); } }));
  return { agent, cfg, logs };
}

export const composedPath = (mountpoint: string, guestPath: string) =>
  join(mountpoint, `livemr_vm1_${guestPath.slice(1).replace(/\//g, '_')}`);

/** Segments of a composed file, from its xattrs (docs/fs.md). */
export function composedSegments(file: string): { sources: string[]; segments: { at: number; source: number | null; offset: number; length: number }[] } {
  const get = (n: string) => execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', n, file], { encoding: 'utf8' });
  const sources = JSON.parse(get('user.livemr.sources')) as string[];
  const pages = Number(get('user.livemr.segment_pages'));
  const segments = [];
  for (let p = 0; p < pages; p++) {
    for (const line of get(`user.livemr.segments.${p}`).split('\n').filter(Boolean)) {
      const [at, src, off, len] = line.split(' ');
      segments.push({ at: Number(at), source: src === '-' ? null : Number(src), offset: src === '-' ? 0 : Number(off), length: Number(len) });
    }
  }
  return { sources, segments };
}

/**
 * Client of the QEMU guest agent (JSON over the virtio-serial port org.qemu.guest_agent.0).
 * `guest-sync-delimited` first: the agent answers it after a 0xFF byte, which marks where stale
 * output (e.g. a parse error for our own 0xFF) ends.
 */
export class QgaClient {
  private chunks: Buffer[] = [];
  private waiter?: () => void;
  private closed?: Error;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (b: Buffer) => { this.chunks.push(b); this.waiter?.(); });
    sock.on('close', () => { this.closed = new Error('guest agent socket closed'); this.waiter?.(); });
    sock.on('error', () => {});
  }

  static async connect(path: string, timeoutMs = 30_000): Promise<QgaClient> {
    const sock = await connectUnix(path);
    const c = new QgaClient(sock);
    const id = Math.floor(Math.random() * 2 ** 31);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      sock.write(Buffer.from([0xff]));
      sock.write(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n');
      try {
        await c.skipToDelimiter(Math.min(3000, deadline - Date.now()));
        const r = JSON.parse((await c.line(3000)).toString()) as { return?: number };
        if (r.return === id) return c;
      } catch (e) {
        if (Date.now() > deadline) { sock.destroy(); throw new Error(`guest agent not answering: ${(e as Error).message}`, { cause: e }); }
      }
    }
  }

  private async wait(deadline: number): Promise<void> {
    if (this.closed) throw this.closed;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error('guest agent timeout');
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, left);
      this.waiter = () => { clearTimeout(t); this.waiter = undefined; resolve(); };
    });
  }

  private async skipToDelimiter(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.chunks.length) {
        const c = this.chunks.shift()!;
        const i = c.indexOf(0xff);
        if (i >= 0) { if (i + 1 < c.length) this.chunks.unshift(c.subarray(i + 1)); return; }
      }
      await this.wait(deadline);
    }
  }

  /** The next newline-terminated response (large ones arrive in many chunks). */
  private async line(timeoutMs: number): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    let scanned = 0; // chunks already known to hold no newline
    for (;;) {
      for (let k = scanned; k < this.chunks.length; k++) {
        const i = this.chunks[k]!.indexOf(0x0a);
        if (i < 0) { scanned = k + 1; continue; }
        const last = this.chunks[k]!;
        const parts = [...this.chunks.slice(0, k), last.subarray(0, i)];
        this.chunks = [...(i + 1 < last.length ? [last.subarray(i + 1)] : []), ...this.chunks.slice(k + 1)];
        return Buffer.concat(parts);
      }
      await this.wait(deadline);
    }
  }

  async cmd<T = unknown>(execute: string, args?: Record<string, unknown>, timeoutMs = 120_000): Promise<T> {
    this.sock.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
    const r = JSON.parse((await this.line(timeoutMs)).toString()) as { return?: T; error?: { desc: string } };
    if (r.error) throw new Error(`guest agent ${execute}: ${r.error.desc}`);
    return r.return as T;
  }

  close(): void { this.sock.destroy(); }
}

/** Line i of a benchmark log: fixed length, numbered, so a reader can tell whose bytes it sees. */
export const benchLine = (i: number, len: number) => `seq ${String(i).padStart(8, '0')} `.padEnd(len - 1, 'x') + '\n';

/**
 * The guest side of the freshness benchmarks, run by the guest's Node (>= 18): it owns a log file and
 * a dedicated virtio-serial port (blocking reads; ends on `quit`). argv: port device, log file, line
 * length. Commands (one per line) and answers:
 *   ping K            → pong K T                       (its clock, for the offset)
 *   go I              → done I T0 T1                   (append line I and fsync; clock before, after)
 *   file K PATH       → filed K                        (append to PATH from now on)
 *   lines K I0 N G E  → mark I T … then lined K T      (append lines I0.. I0+N-1, one every G ms on
 *                                                       average; every E-th line's write() return time)
 * Lines are benchLine(i); a late writer catches up (the rate holds on average, as a logger's does).
 */
export const GUEST_WRITER_SCRIPT = `
const fs = require('node:fs');
const [dev, file, LINE] = [process.argv[2], process.argv[3], Number(process.argv[4])];
const port = fs.openSync(dev, 'r+');
let log = fs.openSync(file, 'a');
const now = () => performance.timeOrigin + performance.now();
const line = (i) => ('seq ' + String(i).padStart(8, '0') + ' ').padEnd(LINE - 1, 'x') + '\\n';
const send = (s) => fs.writeSync(port, s + '\\n');
const nap = new Int32Array(new SharedArrayBuffer(4));
const rb = Buffer.alloc(4096);
let buf = '';
for (;;) {
  const n = fs.readSync(port, rb, 0, rb.length, null);
  if (n === 0) { Atomics.wait(nap, 0, 0, 5); continue; }
  buf += rb.toString('latin1', 0, n);
  let nl;
  while ((nl = buf.indexOf('\\n')) >= 0) {
    const words = buf.slice(0, nl).split(' ');
    const [cmd, arg] = words;
    buf = buf.slice(nl + 1);
    if (cmd === 'ping') send('pong ' + arg + ' ' + now());
    else if (cmd === 'go') {
      const t0 = now();
      fs.writeSync(log, line(Number(arg)));
      fs.fsyncSync(log);
      send('done ' + arg + ' ' + t0 + ' ' + now());
    } else if (cmd === 'file') {
      fs.closeSync(log);
      log = fs.openSync(words.slice(2).join(' '), 'a');
      send('filed ' + arg);
    } else if (cmd === 'lines') {
      const [i0, count, gap, every] = words.slice(2).map(Number);
      const start = now();
      for (let k = 0; k < count; k++) {
        let d;
        while ((d = start + k * gap - now()) > 0) Atomics.wait(nap, 0, 0, d);
        fs.writeSync(log, line(i0 + k));
        if (every && k % every === 0) send('mark ' + (i0 + k) + ' ' + now());
      }
      send('lined ' + arg + ' ' + now());
    } else if (cmd === 'quit') { fs.closeSync(port); process.exit(0); }
  }
}
`;

/**
 * Host poller, run as a worker (eval) so that neither the agent's event loop nor the benchmark's
 * delays the stamp. Message {i, file, at, want}: pread `file` at `at` every 0.2 ms until it reads
 * `want`, then answers {i, t, wrong} (host clock; t = -1 after 30 s). Messages are served in order.
 * `wrong` counts reads that returned other bytes than the line's: the benchmarks' logs are
 * append-only, so such a read is a wrong byte served (a short read of a correct prefix is not).
 */
export const LINE_POLLER = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const fds = new Map();
const nap = new Int32Array(new SharedArrayBuffer(4));
parentPort.on('message', ({ i, file, at, want }) => {
  const buf = Buffer.alloc(want.length);
  const deadline = Date.now() + 30000;
  let wrong = 0;
  for (;;) {
    let n = 0;
    try {
      if (!fds.has(file)) fds.set(file, fs.openSync(file, 'r'));
      n = fs.readSync(fds.get(file), buf, 0, buf.length, at);
    } catch {
      // not there yet, or EIO: the name shows another file now (a log re-created): open it again
      try { fs.closeSync(fds.get(file)); } catch {}
      fds.delete(file);
    }
    const got = buf.toString('latin1', 0, n);
    if (got !== want.slice(0, n)) wrong++;
    else if (n === buf.length) break;
    if (Date.now() > deadline) { parentPort.postMessage({ i, t: -1, wrong }); return; }
    Atomics.wait(nap, 0, 0, 0.2);
  }
  parentPort.postMessage({ i, t: performance.timeOrigin + performance.now(), wrong });
});
`;

/** Line-oriented conversation with GUEST_WRITER_SCRIPT over its port. */
export class BenchPort {
  private buf = '';
  private waiting: { prefix: string; resolve: (parts: string[]) => void }[] = [];
  /** lines nobody asked for (`mark I T`), with the host receive time */
  onUnsolicited?: (parts: string[], t: number) => void;

  constructor(private readonly sock: Socket) {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => {
      const t = hostNow();
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const parts = this.buf.slice(0, nl).split(' ');
        this.buf = this.buf.slice(nl + 1);
        const k = this.waiting.findIndex((w) => w.prefix === `${parts[0]} ${parts[1]}`);
        if (k >= 0) this.waiting.splice(k, 1)[0]!.resolve([...parts, String(t)]);
        else this.onUnsolicited?.(parts, t);
      }
    });
  }

  /** sends `cmd arg [extra]`, resolves with the reply's fields plus the host receive time */
  ask(cmd: string, arg: number, reply: string, timeoutMs = 30_000, extra?: string): Promise<{ sent: number; parts: string[] }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${reply} ${arg} from the guest`)), timeoutMs);
      let sent = 0;
      this.waiting.push({ prefix: `${reply} ${arg}`, resolve: (parts) => { clearTimeout(timer); resolve({ sent, parts }); } });
      sent = hostNow();
      this.sock.write(`${cmd} ${arg}${extra === undefined ? '' : ` ${extra}`}\n`);
    });
  }

  send(line: string): void { this.sock.write(line + '\n'); }
}

/** guest clock − host clock (ms), from the ping with the smallest round trip (NTP-style) */
export async function clockOffset(port: BenchPort, base: number): Promise<{ offset: number; rtt: number }> {
  let best = { offset: 0, rtt: Infinity };
  for (let k = 0; k < 30; k++) {
    const { sent, parts } = await port.ask('ping', base + k, 'pong');
    const recv = Number(parts[3]);
    const rtt = recv - sent;
    if (rtt < best.rtt) best = { offset: Number(parts[2]) - (sent + recv) / 2, rtt };
    await sleep(5);
  }
  return best;
}
