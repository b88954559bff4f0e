// libvirt harness: runs the system libvirtd (and virtlogd) for the duration of one test file, and
// defines TCG domains that boot the project's test image. Setup follows /work/shared/notes/libvirt.md:
// the packages come from scripts/apt-packages.txt, the QEMU driver needs a `libvirt-qemu` user even
// though qemu.conf runs QEMU as root, and qemu.conf turns off what a container lacks (security
// drivers, namespaces, device cgroups). Both daemons run in the foreground as our children, so we
// know their PIDs and stop them by PID; QEMU outlives libvirtd, so every domain we started is
// destroyed and undefined first. A state file lets the next run clean up after a crashed one.
// An already running libvirtd that we did not start is never touched: the harness refuses to run.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ensureGuestImage } from '../../vm-images/build.js';
import { ControlChannel, vmRoot, type ExecOptions, type ExecResult } from './vm.js';

export const URI = 'qemu:///system';
export const SOCKET = '/run/libvirt/libvirt-sock';
const STATE = '/run/livemr-test-libvirtd.json';
const QEMU_CONF = '/etc/libvirt/qemu.conf';
const MARKER = '# written by the LiveMR test harness (test/harness/libvirtd.ts)';
const QEMU_CONF_TEXT = `${MARKER}
# QEMU as root without confinement: test guests only, in a container without AppArmor/SELinux.
user = "root"
group = "root"
security_driver = "none"
dynamic_ownership = 0
remember_owner = 0
namespaces = [ ]
cgroup_controllers = [ "blkio", "cpu", "cpuacct" ]
`;

export interface LibvirtGuestDisk {
  /** target dev, e.g. vdb */
  dev: string;
  /** virtio serial, or null for a disk without one (matched by PCI address) */
  serial: string | null;
  /** guest mount point of its ext4 filesystem */
  mount: string;
  overlay: string;
  base: string;
  fsOffset: number;
}

export interface LibvirtGuest {
  name: string;
  dir: string;
  consoleLog: string;
  disks: LibvirtGuestDisk[];
  /** PID of the domain's QEMU process (changes on every start) */
  qemuPid(): number | undefined;
  exec(command: string, opts?: ExecOptions): Promise<ExecResult>;
  sh(command: string, opts?: ExecOptions): Promise<string>;
  /** reconnect the control channel and wait for the guest's control agent */
  waitReady(timeoutMs?: number): Promise<void>;
  /** virsh start, then wait for the guest */
  start(): Promise<void>;
  /** virsh destroy (QEMU killed), keeping the definition and disks */
  destroy(): void;
}

export interface DefineOptions {
  name?: string;
  memoryMb?: number;
  /** give the `data` disk no <serial> (a Nova-style ephemeral disk) */
  dataWithoutSerial?: boolean;
  /** add an org.qemu.guest_agent.0 port (the image starts qemu-ga on it): `virsh reboot --mode agent` */
  guestAgent?: boolean;
  bootTimeoutMs?: number;
}

export interface Libvirtd {
  uri: string;
  socketPath: string;
  readonly pid: number;
  virsh(...args: string[]): string;
  /** stop libvirtd by PID and start it again (domains keep running) */
  restart(): Promise<void>;
  defineAndStart(o?: DefineOptions): Promise<LibvirtGuest>;
  /** destroy + undefine our domains, stop libvirtd and virtlogd, remove what they left */
  stop(): Promise<void>;
}

export class LibvirtdHarnessError extends Error {
  override name = 'LibvirtdHarnessError';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const cmdlineOf = (pid: number) => { try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { return ''; } };

function accepting(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(path, () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-q', '-c', URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
}

function ensureSystemSetup(): void {
  for (const bin of ['libvirtd', 'virtlogd', 'virsh']) {
    try { execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }); } catch {
      throw new LibvirtdHarnessError(`${bin} is not installed: run scripts/bootstrap.sh (scripts/apt-packages.txt lists libvirt)`);
    }
  }
  try { execFileSync('getent', ['passwd', 'libvirt-qemu'], { stdio: 'ignore' }); } catch {
    try { execFileSync('groupadd', ['-r', 'libvirt-qemu'], { stdio: 'ignore' }); } catch { /* exists */ }
    execFileSync('useradd', ['-r', '-g', 'libvirt-qemu', '-d', '/var/lib/libvirt', '-s', '/usr/sbin/nologin', 'libvirt-qemu']);
  }
  mkdirSync('/etc/libvirt', { recursive: true });
  const current = existsSync(QEMU_CONF) ? readFileSync(QEMU_CONF, 'utf8') : undefined;
  if (current === undefined || (current.startsWith(MARKER) && current !== QEMU_CONF_TEXT)) writeFileSync(QEMU_CONF, QEMU_CONF_TEXT);
  else if (!current.startsWith(MARKER)) console.error(`[libvirtd] ${QEMU_CONF} is not ours; using it as it is`);
  for (const d of ['/var/log/libvirt', '/var/lib/libvirt', '/run/libvirt']) mkdirSync(d, { recursive: true });
}

interface State { owner: number; libvirtd?: number; virtlogd?: number; domains: string[] }

/** Kills what a crashed earlier run left: its daemons (by PID, if they still are those programs) and domains' QEMUs. */
function cleanupStale(): void {
  if (!existsSync(STATE)) return;
  let st: State;
  try { st = JSON.parse(readFileSync(STATE, 'utf8')) as State; } catch { rmSync(STATE, { force: true }); return; }
  if (alive(st.owner)) throw new LibvirtdHarnessError(`another test process (${st.owner}) is using libvirtd; libvirt tests cannot run concurrently`);
  for (const name of st.domains) {
    const pid = Number(readIf(`/run/libvirt/qemu/${name}.pid`));
    if (pid && cmdlineOf(pid).includes('qemu-system')) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  for (const [pid, prog] of [[st.libvirtd, 'libvirtd'], [st.virtlogd, 'virtlogd']] as const) {
    if (pid && cmdlineOf(pid).includes(prog)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
  }
  rmSync(STATE, { force: true });
}

function readIf(p: string): string {
  try { return readFileSync(p, 'utf8').trim(); } catch { return ''; }
}

export async function startLibvirtd(): Promise<Libvirtd> {
  ensureSystemSetup();
  cleanupStale();
  if (await accepting(SOCKET)) throw new LibvirtdHarnessError(`a libvirtd we did not start is running (${SOCKET}); refusing to touch it`);
  const image = await ensureGuestImage();
  const state: State = { owner: process.pid, domains: [] };
  const save = () => writeFileSync(STATE, JSON.stringify(state));
  const logDir = mkdtempSync(join(vmRoot(), `libvirtd-${process.pid}-`));
  writeFileSync(join(logDir, 'owner'), String(process.pid));

  const daemon = (cmd: string, args: string[], log: string): ChildProcess => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let tail = '';
    child.stderr!.on('data', (b: Buffer) => { tail = (tail + b.toString()).slice(-20_000); });
    child.on('exit', () => { try { writeFileSync(join(logDir, log), tail); } catch { /* dir gone */ } });
    return child;
  };
  const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;
  const waitExit = async (c: ChildProcess, ms: number) => { for (let t = 0; t < ms && !exited(c); t += 20) await sleep(20); return exited(c); };
  const stopChild = async (c: ChildProcess | undefined) => {
    if (!c || exited(c)) return;
    c.kill('SIGTERM');
    if (!(await waitExit(c, 10_000))) { c.kill('SIGKILL'); await waitExit(c, 5000); }
  };

  let virtlogd: ChildProcess | undefined;
  let libvirtd: ChildProcess | undefined;
  const startLibvirtdProc = async () => {
    const t0 = Date.now();
    libvirtd = daemon('libvirtd', [], 'libvirtd.stderr');
    state.libvirtd = libvirtd.pid;
    save();
    for (;;) {
      if (exited(libvirtd)) throw new LibvirtdHarnessError(`libvirtd exited during startup (log: ${join(logDir, 'libvirtd.stderr')})`);
      if (Date.now() - t0 > 30_000) throw new LibvirtdHarnessError('libvirtd did not answer within 30 s');
      try { virsh('version'); break; } catch { await sleep(100); }
    }
    console.error(`[libvirtd] ready in ${Date.now() - t0} ms, pid ${libvirtd.pid}`);
  };

  const guests: { name: string; dir: string; ctl: () => ControlChannel | undefined }[] = [];
  const domPid = (name: string) => Number(readIf(`/run/libvirt/qemu/${name}.pid`)) || undefined;

  // A test process that dies must not leave QEMU or the daemons running.
  const onExit = () => {
    for (const g of guests) { const p = domPid(g.name); if (p && cmdlineOf(p).includes('qemu-system')) try { process.kill(p, 'SIGKILL'); } catch { /* gone */ } }
    for (const c of [libvirtd, virtlogd]) if (c && !exited(c)) c.kill('SIGKILL');
  };
  process.on('exit', onExit);

  try {
    virtlogd = daemon('virtlogd', [], 'virtlogd.stderr');
    state.virtlogd = virtlogd.pid;
    save();
    for (let t = 0; !(await accepting('/run/libvirt/virtlogd-sock')); t += 50) {
      if (exited(virtlogd) || t > 10_000) throw new LibvirtdHarnessError('virtlogd did not start');
      await sleep(50);
    }
    await startLibvirtdProc();
  } catch (e) {
    await stopChild(libvirtd);
    await stopChild(virtlogd);
    process.off('exit', onExit);
    rmSync(STATE, { force: true });
    throw e;
  }

  let counter = 0;
  const h: Libvirtd = {
    uri: URI,
    socketPath: SOCKET,
    get pid() { return libvirtd?.pid ?? 0; },
    virsh,
    async restart() {
      await stopChild(libvirtd);
      await startLibvirtdProc();
    },
    async defineAndStart(o = {}) {
      const name = `${o.name ?? 'livemr-t'}-${process.pid}-${++counter}`;
      const dir = mkdtempSync(join(vmRoot(), `${name}-`));
      writeFileSync(join(dir, 'owner'), String(process.pid));
      const p = (f: string) => join(dir, f);
      const disks: LibvirtGuestDisk[] = [
        { dev: 'vda', serial: 'root', mount: '/', overlay: p('root.qcow2'), base: image.root, fsOffset: 0 },
        { dev: 'vdb', serial: o.dataWithoutSerial ? null : 'data', mount: '/mnt/data', overlay: p('data.qcow2'), base: image.data, fsOffset: 0 },
        { dev: 'vdc', serial: 'pdata', mount: '/mnt/pdata', overlay: p('pdata.qcow2'), base: image.pdata, fsOffset: image.pdataFsOffset },
      ];
      for (const d of disks) execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', d.base, d.overlay]);
      const xml = domainXml({ name, memoryMb: o.memoryMb ?? 512, kernel: image.vmlinuz, initrd: image.initrd, disks, dir, guestAgent: !!o.guestAgent });
      writeFileSync(p('domain.xml'), xml);
      virsh('define', p('domain.xml'));
      state.domains.push(name);
      save();
      let ctl: ControlChannel | undefined;
      guests.push({ name, dir, ctl: () => ctl });
      const g: LibvirtGuest = {
        name, dir, disks, consoleLog: p('console.log'),
        qemuPid: () => domPid(name),
        exec: (command, eo = {}) => (ctl ? ctl.exec(command, eo) : Promise.reject(new LibvirtdHarnessError('guest not ready'))),
        async sh(command, eo = {}) {
          const r = await g.exec(command, eo);
          if (r.code !== 0) throw new LibvirtdHarnessError(`guest command failed (${r.code}): ${command}\n${r.stderr.toString()}${r.stdout.toString()}`);
          return r.stdout.toString();
        },
        async waitReady(timeoutMs = o.bootTimeoutMs ?? 90_000) {
          ctl?.close();
          ctl = new ControlChannel(p('ctl.sock'));
          const pid = domPid(name);
          await ctl.connect(() => !pid || !alive(pid), timeoutMs);
        },
        async start() {
          const t0 = Date.now();
          rmSync(p('ctl.sock'), { force: true });
          virsh('start', name);
          try {
            await g.waitReady();
          } catch (e) {
            throw new LibvirtdHarnessError(`${name} did not come up: ${(e as Error).message}; console: ${readIf(p('console.log')).slice(-1500)}`);
          }
          console.error(`[libvirtd] ${name}: boot to ready ${Date.now() - t0} ms, qemu pid ${domPid(name)}`);
        },
        destroy() {
          ctl?.close();
          ctl = undefined;
          try { virsh('destroy', name); } catch (e) { if (domPid(name)) throw e; }
        },
      };
      await g.start();
      return g;
    },
    async stop() {
      for (const g of guests) {
        g.ctl()?.close();
        const pid = domPid(g.name);
        try { virsh('destroy', g.name); } catch { /* not running */ }
        try { virsh('undefine', g.name); } catch { /* not defined */ }
        if (pid) for (let t = 0; alive(pid) && cmdlineOf(pid).includes('qemu-system') && t < 5000; t += 50) await sleep(50);
        rmSync(g.dir, { recursive: true, force: true });
      }
      await stopChild(libvirtd);
      await stopChild(virtlogd);
      process.off('exit', onExit);
      // a clean libvirtd exit removes its sockets; a killed one leaves them
      for (const s of ['libvirt-sock', 'libvirt-sock-ro', 'libvirt-admin-sock', 'virtlogd-sock', 'virtlogd-admin-sock']) {
        rmSync(join('/run/libvirt', s), { force: true });
      }
      rmSync(STATE, { force: true });
      rmSync(logDir, { recursive: true, force: true });
    },
  };
  return h;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');

/** The domain definition: the test image's direct kernel boot, q35, TCG, qcow2 overlays, the control channel. */
export function domainXml(o: { name: string; memoryMb: number; kernel: string; initrd: string; dir: string; disks: LibvirtGuestDisk[]; guestAgent?: boolean }): string {
  const disks = o.disks.map((d) => `
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='writeback'/>
      <source file='${esc(d.overlay)}'/>
      <target dev='${d.dev}' bus='virtio'/>${d.serial === null ? '' : `
      <serial>${esc(d.serial)}</serial>`}
    </disk>`).join('');
  return `<domain type='qemu'>
  <name>${esc(o.name)}</name>
  <memory unit='MiB'>${o.memoryMb}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>${esc(o.kernel)}</kernel>
    <initrd>${esc(o.initrd)}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet loglevel=4 no_timer_check</cmdline>
  </os>
  <cpu mode='custom'><model>qemu64</model></cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>${disks}
    <controller type='virtio-serial' index='0'/>
    <serial type='file'>
      <source path='${esc(join(o.dir, 'console.log'))}'/>
      <target port='0'/>
    </serial>
    <channel type='unix'>
      <source mode='bind' path='${esc(join(o.dir, 'ctl.sock'))}'/>
      <target type='virtio' name='org.livemr.ctl'/>
    </channel>${o.guestAgent ? `
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>` : ''}
    <memballoon model='none'/>
  </devices>
</domain>
`;
}
