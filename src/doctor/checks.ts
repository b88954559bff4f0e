// `livemr doctor`: what a KVM host needs for the agent, one verdict per check. `fail` means the agent
// (or the configured part of it) cannot work; `warn` means something optional or degraded; the
// command exits 1 when any check fails. Every probe of the machine goes through `Probe`, so the
// verdict logic is unit-tested with a fake machine and the real one is checked by the package test.

export type Verdict = 'ok' | 'warn' | 'fail' | 'skip';
export interface CheckResult { name: string; verdict: Verdict; detail: string }

export interface Probe {
  /** file contents, or undefined when it cannot be read */
  read(path: string): string | undefined;
  /** lstat-like facts, or undefined when absent */
  stat(path: string): { isDir: boolean; isCharDevice: boolean; mode: number; uid: number; gid: number } | undefined;
  /** whether the calling process may open it for reading and writing */
  canReadWrite(path: string): boolean;
  /** runs a program; undefined when it cannot be started */
  run(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } | undefined;
  /** opens a libvirt connection and asks its version; resolves with a description, or throws why not */
  libvirt(uri: string): Promise<string>;
  /** loads the native FUSE addon; returns its path or throws */
  loadAddon(): string;
  uid: number;
}

export interface DoctorOptions {
  stateDir: string;
  runDir: string;
  mountpoint?: string;
  /** group that reads the mount (the unprivileged services' group) */
  group?: string;
  /** libvirt URI when the configuration uses libvirt */
  libvirt?: string;
}

const r = (name: string, verdict: Verdict, detail: string): CheckResult => ({ name, verdict, detail });

export function checkFuse(p: Probe): CheckResult[] {
  const out: CheckResult[] = [];
  const fsList = p.read('/proc/filesystems');
  out.push(fsList === undefined ? r('kernel fuse', 'warn', 'cannot read /proc/filesystems')
    : /\bfuse\b/.test(fsList) ? r('kernel fuse', 'ok', 'fuse is registered in /proc/filesystems')
    : r('kernel fuse', 'fail', 'the kernel has no fuse filesystem: modprobe fuse (or a kernel with CONFIG_FUSE_FS)'));
  const dev = p.stat('/dev/fuse');
  if (!dev) out.push(r('/dev/fuse', 'fail', '/dev/fuse is missing: modprobe fuse; in a container, pass the device in'));
  else if (!dev.isCharDevice) out.push(r('/dev/fuse', 'fail', '/dev/fuse is not a character device'));
  else if (!p.canReadWrite('/dev/fuse')) out.push(r('/dev/fuse', 'fail', `/dev/fuse is not readable and writable by uid ${p.uid} (the agent runs as root)`));
  else out.push(r('/dev/fuse', 'ok', 'character device, read-write'));
  const fm = p.run('fusermount3', ['-V']);
  out.push(!fm || fm.status !== 0 ? r('fusermount3', 'fail', 'fusermount3 is missing (unmounting uses it): apt-get install fuse3')
    : r('fusermount3', 'ok', (fm.stdout || fm.stderr).trim()));
  const ld = p.run('ldconfig', ['-p']);
  if (!ld || ld.status !== 0) out.push(r('libfuse3', 'warn', 'cannot run ldconfig -p; the addon check below still loads it'));
  else out.push(/libfuse3\.so\.3\b/.test(ld.stdout) ? r('libfuse3', 'ok', 'libfuse3.so.3 is in the linker cache') : r('libfuse3', 'fail', 'libfuse3.so.3 is missing: apt-get install libfuse3-3'));
  try {
    out.push(r('FUSE addon', 'ok', `loads ${p.loadAddon()}`));
  } catch (e) {
    out.push(r('FUSE addon', 'fail', `${(e as Error).message} (rebuild it: npm rebuild -g livemr, which runs scripts/build-native-fuse.sh)`));
  }
  return out;
}

/** QEMU is tested at 7.2 (Debian 12); older ones may lack parts of QMP the agent uses. */
export const TESTED_QEMU: [number, number] = [7, 2];

function version(text: string): [number, number, string] | undefined {
  const m = /version (\d+)\.(\d+)(\.\d+)?/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), `${m[1]}.${m[2]}${m[3] ?? ''}`] : undefined;
}

export function checkQemu(p: Probe): CheckResult[] {
  const out: CheckResult[] = [];
  for (const [name, bins, need] of [
    ['QEMU', ['qemu-system-x86_64', 'kvm'], 'runs the VMs: apt-get install qemu-system-x86'],
    ['qemu-img', ['qemu-img'], 'creates and inspects images (the agent itself does not run it): apt-get install qemu-utils'],
  ] as const) {
    const res = bins.map((b) => p.run(b, ['--version'])).find((x) => x && x.status === 0);
    const v = res && version(res.stdout);
    if (!res) out.push(r(name, name === 'QEMU' ? 'fail' : 'warn', `not found (${bins.join(', ')}): ${need}`));
    else if (!v) out.push(r(name, 'warn', `cannot read the version from '${res.stdout.trim().split('\n')[0]}'`));
    else if (v[0] < TESTED_QEMU[0] || (v[0] === TESTED_QEMU[0] && v[1] < TESTED_QEMU[1])) out.push(r(name, 'warn', `version ${v[2]}, older than the tested ${TESTED_QEMU.join('.')}`));
    else out.push(r(name, 'ok', `version ${v[2]}`));
  }
  return out;
}

export function checkKernel(p: Probe): CheckResult[] {
  const out: CheckResult[] = [];
  const rel = p.read('/proc/sys/kernel/osrelease')?.trim();
  out.push(rel ? r('kernel', 'ok', `Linux ${rel}`) : r('kernel', 'warn', 'cannot read /proc/sys/kernel/osrelease'));
  const kvm = p.stat('/dev/kvm');
  const virt = /^flags\s*:.*\b(vmx|svm)\b/m.test(p.read('/proc/cpuinfo') ?? '');
  out.push(!kvm?.isCharDevice ? r('/dev/kvm', 'warn', 'no /dev/kvm: guests run under TCG (slow)')
    : virt ? r('/dev/kvm', 'ok', 'KVM is available (the CPU has vmx/svm)')
    : r('/dev/kvm', 'warn', '/dev/kvm exists but the CPU shows no vmx/svm: an emulated KVM (docs/testbed.md); guests use TCG'));
  const ctl = p.read('/sys/fs/cgroup/cgroup.controllers');
  out.push(ctl === undefined ? r('cgroup v2 io', 'warn', 'no cgroup v2 at /sys/fs/cgroup: `livemr cache run` cannot set blkio weights (the agent does not need it)')
    : /\bio\b/.test(ctl) ? r('cgroup v2 io', 'ok', 'io controller available (livemr cache)')
    : r('cgroup v2 io', 'warn', 'cgroup v2 has no io controller: `livemr cache run` cannot set blkio weights'));
  return out;
}

const octal = (m: number) => (m & 0o7777).toString(8).padStart(4, '0');

/** The agent writes its state and sockets here as root; they must not be writable by others. */
export function checkDir(p: Probe, what: string, dir: string): CheckResult {
  const st = p.stat(dir);
  if (!st) {
    let parent = dir.replace(/\/[^/]+\/?$/, '') || '/';
    while (!p.stat(parent) && parent !== '/') parent = parent.replace(/\/[^/]+$/, '') || '/';
    return p.canReadWrite(parent) ? r(what, 'warn', `${dir} does not exist yet (the agent creates it; systemd-tmpfiles does with the packaged units)`)
      : r(what, 'fail', `${dir} does not exist and ${parent} is not writable by uid ${p.uid}`);
  }
  if (!st.isDir) return r(what, 'fail', `${dir} is not a directory`);
  if (st.mode & 0o002) return r(what, 'fail', `${dir} is world-writable (${octal(st.mode)}): chmod o-w ${dir}`);
  if (st.uid !== 0 && st.uid !== p.uid) return r(what, 'fail', `${dir} is owned by uid ${st.uid}, not root: chown root ${dir}`);
  if (!p.canReadWrite(dir)) return r(what, 'fail', `${dir} is not writable by uid ${p.uid} (run the agent as root)`);
  return r(what, 'ok', `${dir} mode ${octal(st.mode)} uid ${st.uid} gid ${st.gid}`);
}

export async function checkLibvirt(p: Probe, uri: string | undefined): Promise<CheckResult> {
  if (!uri) return r('libvirt', 'skip', 'not configured');
  try {
    return r('libvirt', 'ok', `${uri}: ${await p.libvirt(uri)}`);
  } catch (e) {
    const err = e as Error;
    return r('libvirt', 'fail', `${uri}: ${err.message}${err.name === 'LibvirtUriError' ? '' : ' (is libvirtd or virtqemud running?)'}`);
  }
}

export function checkGroup(p: Probe, group: string | undefined): CheckResult {
  if (!group) return r('reader group', 'skip', 'no group configured: only root reads the mount');
  const g = p.run('getent', ['group', group]);
  return g?.status === 0 ? r('reader group', 'ok', `${group} exists (${g.stdout.trim()})`)
    : r('reader group', 'fail', `group ${group} does not exist: systemd-sysusers (packaged sysusers.d/livemr.conf) or groupadd -r ${group}`);
}

export async function runChecks(p: Probe, o: DoctorOptions): Promise<CheckResult[]> {
  const out = [...checkFuse(p), ...checkQemu(p), ...checkKernel(p)];
  out.push(await checkLibvirt(p, o.libvirt));
  out.push(checkGroup(p, o.group));
  out.push(checkDir(p, 'state directory', o.stateDir));
  out.push(checkDir(p, 'run directory', o.runDir));
  if (o.mountpoint) {
    const st = p.stat(o.mountpoint);
    out.push(st?.isDir ? r('mountpoint', 'ok', `${o.mountpoint} is a directory`)
      : st ? r('mountpoint', 'fail', `${o.mountpoint} is not a directory`)
      : r('mountpoint', 'warn', `${o.mountpoint} does not exist yet (the agent creates it)`));
  }
  return out;
}

export function formatResults(results: CheckResult[]): string {
  const w = Math.max(...results.map((c) => c.name.length));
  return results.map((c) => `${c.verdict.toUpperCase().padEnd(4)}  ${c.name.padEnd(w)}  ${c.detail}`).join('\n') + '\n';
}

export const failed = (results: CheckResult[]) => results.some((c) => c.verdict === 'fail');
