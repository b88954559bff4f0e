// Shared pieces of the live-path benchmarks (bench/host-freshness.ts, bench/host-read.ts): a bench
// directory that is always cleaned up, the host agent on a booted guest, extra virtio-serial ports,
// a QEMU guest agent client, percentiles and a table printer.
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
export const until = <T>(what: string, fn: () => T | undefined | false, timeoutMs = 60_000, stepMs = 20): Promise<T> =>
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
