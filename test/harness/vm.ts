// VM harness: boots a real guest under QEMU for tests, the demo and benchmarks.
// Each guest gets private qcow2 overlays on the cached base images, a QMP socket, the LiveMR channel
// (virtio-serial port org.livemr.0) and a control channel (org.livemr.ctl) served by the guest's
// control agent. Teardown always kills QEMU by PID and removes the VM's directory; a process exit
// handler does the same for VMs a crashed test left behind. See docs/testbed.md.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureGuestImage, type GuestImage } from '../../vm-images/build.js';
import { ensureDistroImage } from '../../vm-images/distro.js';

export interface GuestDisk {
  /** virtio serial the guest sees in /sys/block/vdX/serial; also its mount point /mnt/<serial> */
  serial: string;
  /** this VM's private qcow2 overlay (backing file = the cached base image) */
  overlay: string;
  /** byte offset of the ext4 filesystem on the disk (0 = whole disk, >0 = partition 1 start) */
  fsOffset: number;
  /** qdev id of the virtio-blk device; the format node is `<id>-fmt`, the file node `<id>-file` */
  id: string;
}

export interface ExecResult { code: number; stdout: Buffer; stderr: Buffer }
export interface ExecOptions { timeoutMs?: number; stdin?: Buffer | string }

export interface GuestVm {
  dir: string;
  /** PID of the current QEMU process */
  readonly pid: number;
  accel: 'kvm' | 'tcg';
  /** boot-to-ready of the last (re)start */
  bootMs: number;
  qmpSocket: string;
  /** a second QMP monitor for the test itself (a monitor serves one client at a time) */
  testQmpSocket: string;
  /** host end of the virtio-serial port org.livemr.0 (unix socket, QEMU is the server) */
  channelSocket: string;
  consoleLog: string;
  disks: GuestDisk[];
  /** run `sh -c command` in the guest */
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** like exec but throws unless exit code 0; returns stdout as string */
  sh(command: string, opts?: ExecOptions): Promise<string>;
  /** copy a host file into the guest */
  put(hostPath: string, guestPath: string, mode?: number): Promise<void>;
  /** clean shutdown if possible, QEMU killed by PID otherwise; removes overlays and sockets */
  shutdown(): Promise<void>;
  /** SIGKILL QEMU (a crash), keeping disks and sockets for restart() */
  kill(): Promise<void>;
  /** kill QEMU if running and start it again on the same disks; resolves when the guest is ready */
  restart(): Promise<void>;
  /** reconnect the control channel after a guest reboot and wait for the agent */
  waitReady(timeoutMs?: number): Promise<void>;
}

export interface BootOptions {
  /**
   * 'busybox' (default): the project's tiny image on the host's Node, for fast tests.
   * 'debian': the Debian 12 systemd guest with the helper installed from its .deb (vm-images/distro.ts).
   */
  image?: 'busybox' | 'debian';
  memoryMb?: number;
  /** vCPUs (default 1) */
  cpus?: number;
  /** blank qcow2 data disks (virtio-blk, given serial), e.g. for filesystems the test makes itself */
  blankDisks?: { serial: string; bytes: number }[];
  /** add the org.livemr.0 channel at boot (default true); false to test hot-plug */
  channel?: boolean;
  /** extra QEMU arguments */
  extraArgs?: string[];
  /** command prefix QEMU is started under, e.g. ['ip', 'netns', 'exec', NS] (it must exec QEMU in place) */
  wrapper?: string[];
  /** let a guest reboot (default: QEMU exits on reboot, so a test notices a panic at once) */
  allowReboot?: boolean;
  /** prefix of the VM directory name, for logs */
  name?: string;
  /** keep the console log in test-artifacts/ even on success */
  keepLog?: boolean;
  bootTimeoutMs?: number;
}

export class GuestError extends Error {
  override name = 'GuestError';
}

const live = new Map<number, string>(); // QEMU pid → VM dir, for the exit handler
process.on('exit', () => {
  for (const [pid, dir] of live) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Root of all harness VM directories; global teardown sweeps it for leftovers of dead runs. */
export const vmRoot = (): string => join(tmpdir(), 'livemr-vms');

/** KVM only where it really works: hardware virtualization flags, or forced with LIVEMR_ACCEL. */
export function chooseAccel(): { accel: 'kvm' | 'tcg'; why: string } {
  const forced = process.env.LIVEMR_ACCEL;
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, why: 'forced by LIVEMR_ACCEL' };
  const flags = readFileSync('/proc/cpuinfo', 'utf8');
  if (existsSync('/dev/kvm') && /^flags\s*:.*\b(vmx|svm)\b/m.test(flags)) return { accel: 'kvm', why: 'CPU has vmx/svm' };
  return { accel: 'tcg', why: existsSync('/dev/kvm') ? '/dev/kvm without vmx/svm (software KVM: stock kernels crash)' : 'no /dev/kvm' };
}

function makeOverlay(base: string, overlay: string): void {
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', base, overlay]);
}

export async function bootGuest(opts: BootOptions = {}): Promise<GuestVm> {
  const image: GuestImage = opts.image === 'debian' ? await ensureDistroImage() : await ensureGuestImage();
  mkdirSync(vmRoot(), { recursive: true });
  const dir = mkdtempSync(join(vmRoot(), `${opts.name ?? 'vm'}-${process.pid}-`));
  writeFileSync(join(dir, 'owner'), String(process.pid));
  const p = (f: string) => join(dir, f);
  const { accel, why } = chooseAccel();

  const disks: GuestDisk[] = [
    { serial: 'data', overlay: p('data.qcow2'), fsOffset: 0, id: 'vd-data' },
    { serial: 'pdata', overlay: p('pdata.qcow2'), fsOffset: image.pdataFsOffset, id: 'vd-pdata' },
  ];
  makeOverlay(image.root, p('root.qcow2'));
  makeOverlay(image.data, disks[0]!.overlay);
  makeOverlay(image.pdata, disks[1]!.overlay);
  for (const b of opts.blankDisks ?? []) {
    const d: GuestDisk = { serial: b.serial, overlay: p(`${b.serial}.qcow2`), fsOffset: 0, id: `vd-${b.serial}` };
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', d.overlay, String(b.bytes)]);
    disks.push(d);
  }

  const blk = (id: string, serial: string, file: string) => [
    '-blockdev', `driver=file,filename=${file},node-name=${id}-file,cache.direct=off`,
    '-blockdev', `driver=qcow2,file=${id}-file,node-name=${id}-fmt`,
    '-device', `virtio-blk-pci,drive=${id}-fmt,id=${id},serial=${serial}`,
  ];
  const args = [
    '-machine', `q35,accel=${accel}`, '-cpu', accel === 'kvm' ? 'host' : 'max', '-smp', String(opts.cpus ?? 1),
    '-m', String(opts.memoryMb ?? 512), '-nodefaults', '-no-user-config', '-display', 'none',
    ...(opts.allowReboot ? [] : ['-no-reboot']),
    '-kernel', image.vmlinuz, '-initrd', image.initrd,
    // no_timer_check: on a loaded host the IO-APIC timer check can fail under TCG and panic
    '-append', 'console=ttyS0 panic=-1 quiet loglevel=4 no_timer_check',
    '-serial', `file:${p('console.log')}`,
    '-qmp', `unix:${p('qmp.sock')},server=on,wait=off`,
    '-qmp', `unix:${p('qmp-test.sock')},server=on,wait=off`,
    '-pidfile', p('qemu.pid'),
    ...blk('vd-root', 'root', p('root.qcow2')),
    ...disks.flatMap((d) => blk(d.id, d.serial, d.overlay)),
    '-device', 'virtio-serial-pci,id=vser0',
    '-chardev', `socket,id=ctl,path=${p('ctl.sock')},server=on,wait=off`,
    '-device', 'virtserialport,bus=vser0.0,chardev=ctl,name=org.livemr.ctl',
    ...(opts.channel === false ? [] : [
      '-chardev', `socket,id=livemr0,path=${p('channel.sock')},server=on,wait=off`,
      '-device', 'virtserialport,bus=vser0.0,chardev=livemr0,name=org.livemr.0,id=livemr0-port',
    ]),
    ...(opts.extraArgs ?? []),
  ];
  writeFileSync(p('qemu.args'), JSON.stringify(args));

  // One QEMU process; restart() replaces it with a new one on the same disks and sockets.
  let proc = { pid: 0, exited: undefined as { code: number | null; signal: string | null } | undefined, stderr: '' };
  let ctl = new ControlChannel(p('ctl.sock'));
  const launch = async (): Promise<number> => {
    const t0 = Date.now();
    const [cmd, ...argv] = [...(opts.wrapper ?? []), 'qemu-system-x86_64', ...args];
    const child = spawn(cmd!, argv, { stdio: ['ignore', 'ignore', 'pipe'], detached: false });
    const me = { pid: child.pid!, exited: undefined as typeof proc.exited, stderr: '' };
    proc = me;
    live.set(me.pid, dir);
    child.stderr!.on('data', (b: Buffer) => { me.stderr += b.toString(); });
    child.on('exit', (code, signal) => { me.exited = { code, signal }; writeFileSync(p('qemu.stderr'), me.stderr); });
    ctl = new ControlChannel(p('ctl.sock'));
    try {
      await ctl.connect(() => me.exited, opts.bootTimeoutMs ?? (opts.image === 'debian' ? 150_000 : 60_000));
    } catch (e) {
      await kill();
      throw new GuestError(keepLog(`guest did not come up: ${(e as Error).message}`));
    }
    const ms = Date.now() - t0;
    console.error(`[vm] ${opts.name ?? 'vm'}: ${accel} (${why}), boot to ready ${ms} ms, pid ${me.pid}`);
    return ms;
  };
  const kill = async (signal: NodeJS.Signals = 'SIGTERM') => {
    ctl.close();
    const me = proc;
    if (!me.exited) {
      try { process.kill(me.pid, signal); } catch { /* gone */ }
      for (let i = 0; i < 50 && !me.exited; i++) await sleep(20);
      if (!me.exited) { try { process.kill(me.pid, 'SIGKILL'); } catch { /* gone */ } }
      for (let i = 0; i < 100 && !me.exited; i++) await sleep(20);
    }
    live.delete(me.pid);
  };
  const keepLog = (reason: string) => {
    const art = join(process.cwd(), 'test-artifacts');
    mkdirSync(art, { recursive: true });
    const dest = join(art, `${opts.name ?? 'vm'}-${proc.pid}-console.log`);
    try { copyFileSync(p('console.log'), dest); } catch { /* no log */ }
    return `${reason} (console log: ${dest}; qemu stderr: ${proc.stderr.trim().slice(-500)})`;
  };

  let bootMs: number;
  try {
    bootMs = await launch();
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  const vm: GuestVm = {
    dir, accel, bootMs, disks,
    get pid() { return proc.pid; },
    qmpSocket: p('qmp.sock'),
    testQmpSocket: p('qmp-test.sock'),
    channelSocket: p('channel.sock'),
    consoleLog: p('console.log'),
    exec: (command, o = {}) => ctl.exec(command, o),
    async sh(command, o = {}) {
      const r = await ctl.exec(command, o);
      if (r.code !== 0) {
        throw new GuestError(`guest command failed (${r.code}): ${command}\n${r.stderr.toString()}${r.stdout.toString()}`);
      }
      return r.stdout.toString();
    },
    async put(hostPath, guestPath, mode = 0o644) {
      await ctl.request({ op: 'put', path: guestPath, mode, data: readFileSync(hostPath).toString('base64') });
    },
    async kill() {
      await kill('SIGKILL');
    },
    async restart() {
      await kill('SIGKILL');
      vm.bootMs = await launch();
    },
    async waitReady(timeoutMs = 60_000) {
      ctl.close();
      ctl = new ControlChannel(p('ctl.sock'));
      await ctl.connect(() => proc.exited, timeoutMs);
    },
    async shutdown() {
      if (!live.has(proc.pid)) { rmSync(dir, { recursive: true, force: true }); return; }
      // A clean poweroff flushes the guest; QEMU exits because of -no-reboot / ACPI off.
      if (!proc.exited) {
        ctl.request({ op: 'sh', script: 'sync; poweroff -f' }, 3000).catch(() => {});
        for (let i = 0; i < 150 && !proc.exited; i++) await sleep(20);
      }
      await kill();
      if (opts.keepLog) keepLog('kept');
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return vm;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Host side of the control agent protocol (vm-images/guest/ctl-agent.ts): JSON lines. */
export class ControlChannel {
  private sock?: Socket;
  private buf = '';
  private nextId = 1;
  private waiting = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private closed = false;

  constructor(private readonly path: string) {}

  /** Connects (QEMU creates the socket a moment after start) and pings until the agent answers. */
  async connect(exited: () => unknown, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.sock) {
      if (exited()) throw new Error('QEMU exited during boot');
      if (Date.now() > deadline) throw new Error('timeout waiting for the control socket');
      if (existsSync(this.path)) {
        try {
          this.sock = await new Promise<Socket>((res, rej) => {
            const s = connect(this.path, () => res(s));
            s.once('error', rej);
          });
        } catch { await sleep(50); }
      } else await sleep(20);
    }
    this.sock.setEncoding('utf8');
    this.sock.on('data', (d: string) => this.onData(d));
    this.sock.on('error', () => {});
    this.sock.on('close', () => this.failAll(new GuestError('control channel closed')));
    for (;;) {
      if (exited()) throw new Error('QEMU exited during boot');
      if (Date.now() > deadline) throw new Error(`no answer from the control agent in ${timeoutMs} ms`);
      try {
        await this.request({ op: 'ping' }, 500);
        return;
      } catch { /* not up yet */ }
    }
  }

  private onData(d: string): void {
    this.buf += d;
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      let msg: { id?: number; ok?: boolean; error?: string };
      try { msg = JSON.parse(line); } catch { continue; }
      if (typeof msg.id !== 'number') continue; // e.g. the agent's "ready" event
      const w = this.waiting.get(msg.id);
      if (!w) continue;
      this.waiting.delete(msg.id);
      if (msg.ok) w.resolve(msg as Record<string, unknown>);
      else w.reject(new GuestError(`control agent: ${msg.error}`));
    }
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.values()) w.reject(e);
    this.waiting.clear();
  }

  request(req: Record<string, unknown>, timeoutMs = 120_000): Promise<Record<string, unknown>> {
    if (!this.sock || this.closed) return Promise.reject(new GuestError('control channel not connected'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new GuestError(`control request ${String(req.op)} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.sock!.write(JSON.stringify({ id, ...req }) + '\n');
    });
  }

  async exec(script: string, o: ExecOptions): Promise<ExecResult> {
    const r = await this.request(
      { op: 'sh', script, timeoutMs: o.timeoutMs, stdin: o.stdin === undefined ? undefined : Buffer.from(o.stdin).toString('base64') },
      (o.timeoutMs ?? 120_000) + 5000,
    );
    return {
      code: r.code as number,
      stdout: Buffer.from(r.stdout as string, 'base64'),
      stderr: Buffer.from(r.stderr as string, 'base64'),
    };
  }

  close(): void {
    this.closed = true;
    this.sock?.destroy();
    this.failAll(new GuestError('control channel closed'));
  }
}
