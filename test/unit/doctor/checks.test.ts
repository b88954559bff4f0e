import { describe, expect, it } from 'vitest';
import { checkDir, checkFuse, checkKernel, checkLibvirt, checkQemu, failed, formatResults, runChecks, type Probe } from '../../../src/doctor/index.js';

type Stat = NonNullable<ReturnType<Probe['stat']>>;
const dir = (mode: number, uid = 0): Stat => ({ isDir: true, isCharDevice: false, mode: 0o040000 | mode, uid, gid: 0 });
const chr: Stat = { isDir: false, isCharDevice: true, mode: 0o020600, uid: 0, gid: 0 };

/** A healthy Debian 12 KVM host; each test breaks one thing. */
function host(over: Partial<Probe> & { files?: Record<string, string>; stats?: Record<string, Stat | undefined>; bins?: Record<string, string | undefined> } = {}): Probe {
  const files: Record<string, string> = { '/proc/filesystems': 'nodev\tsysfs\nnodev\tfuse\n', '/proc/sys/kernel/osrelease': '6.1.0-13-amd64\n',
    '/proc/cpuinfo': 'flags\t\t: fpu vme vmx sse\n', '/sys/fs/cgroup/cgroup.controllers': 'cpu io memory\n', ...over.files };
  const stats: Record<string, Stat | undefined> = { '/dev/fuse': chr, '/dev/kvm': chr, '/var/lib/livemr': dir(0o750), '/run/livemr': dir(0o750), '/var/lib': dir(0o755), '/run': dir(0o755), '/': dir(0o755), ...over.stats };
  const bins: Record<string, string | undefined> = { fusermount3: 'fusermount3 version: 3.14.0', ldconfig: '\tlibfuse3.so.3 (libc6,x86-64) => /lib/x86_64-linux-gnu/libfuse3.so.3\n',
    'qemu-system-x86_64': 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7)', 'qemu-img': 'qemu-img version 7.2.22', getent: 'livemr:x:998:', ...over.bins };
  return {
    read: (p) => files[p],
    stat: (p) => stats[p],
    canReadWrite: (p) => stats[p] !== undefined,
    run: (cmd) => (bins[cmd] === undefined ? undefined : { status: 0, stdout: bins[cmd]!, stderr: '' }),
    libvirt: async (uri) => {
      if (uri !== 'qemu:///system') throw new Error('connect ENOENT /run/other.sock');
      return 'libvirt 9.0.0 answers at /run/libvirt/libvirt-sock';
    },
    loadAddon: () => '/usr/lib/node_modules/livemr/build/livemr_fuse.node',
    uid: 0,
    ...over,
  };
}
const verdicts = (rs: { name: string; verdict: string }[]) => Object.fromEntries(rs.map((r) => [r.name, r.verdict]));

describe('livemr doctor checks', () => {
  it('a healthy host passes every check', async () => {
    const rs = await runChecks(host(), { stateDir: '/var/lib/livemr', runDir: '/run/livemr', libvirt: 'qemu:///system', group: 'livemr' });
    expect(rs.filter((r) => r.verdict !== 'ok')).toEqual([]);
    expect(failed(rs)).toBe(false);
    expect(formatResults(rs).split('\n').filter(Boolean)).toHaveLength(rs.length);
  });

  it('fails without FUSE, /dev/fuse, fusermount3, libfuse3 or a loadable addon, naming the fix', () => {
    expect(verdicts(checkFuse(host({ files: { '/proc/filesystems': 'nodev\tsysfs\n' } })))['kernel fuse']).toBe('fail');
    expect(verdicts(checkFuse(host({ stats: { '/dev/fuse': undefined } })))['/dev/fuse']).toBe('fail');
    expect(verdicts(checkFuse(host({ canReadWrite: () => false })))['/dev/fuse']).toBe('fail');
    const noFm = checkFuse(host({ bins: { fusermount3: undefined } })).find((r) => r.name === 'fusermount3')!;
    expect(noFm).toMatchObject({ verdict: 'fail', detail: expect.stringContaining('apt-get install fuse3') });
    expect(verdicts(checkFuse(host({ bins: { ldconfig: 'libc.so.6\n' } })))['libfuse3']).toBe('fail');
    const addon = checkFuse(host({ loadAddon: () => { throw new Error('cannot load x.node'); } })).find((r) => r.name === 'FUSE addon')!;
    expect(addon).toMatchObject({ verdict: 'fail', detail: expect.stringContaining('cannot load x.node') });
  });

  it('QEMU: missing fails, old warns, qemu-img missing only warns', () => {
    expect(verdicts(checkQemu(host({ bins: { 'qemu-system-x86_64': undefined } })))).toMatchObject({ QEMU: 'fail', 'qemu-img': 'ok' });
    expect(verdicts(checkQemu(host({ bins: { 'qemu-system-x86_64': 'QEMU emulator version 6.2.0' } }))).QEMU).toBe('warn');
    expect(checkQemu(host()).map((r) => r.detail)).toEqual(['version 7.2.22', 'version 7.2.22']);
    expect(verdicts(checkQemu(host({ bins: { 'qemu-img': undefined } })))['qemu-img']).toBe('warn');
  });

  it('kernel: an emulated /dev/kvm (no vmx/svm) and a missing cgroup io controller warn', () => {
    expect(verdicts(checkKernel(host({ files: { '/proc/cpuinfo': 'flags\t: fpu sse\n' } })))['/dev/kvm']).toBe('warn');
    expect(verdicts(checkKernel(host({ files: { '/sys/fs/cgroup/cgroup.controllers': 'cpu memory\n' } })))['cgroup v2 io']).toBe('warn');
  });

  it('state and run directories: world-writable, foreign-owned or unwritable fail; absent warns', () => {
    expect(checkDir(host(), 'd', '/var/lib/livemr').verdict).toBe('ok');
    expect(checkDir(host({ stats: { '/var/lib/livemr': dir(0o777) } }), 'd', '/var/lib/livemr')).toMatchObject({ verdict: 'fail', detail: expect.stringContaining('world-writable') });
    expect(checkDir(host({ stats: { '/var/lib/livemr': dir(0o755, 1000) } }), 'd', '/var/lib/livemr').verdict).toBe('fail');
    expect(checkDir(host({ stats: { '/var/lib/livemr': undefined } }), 'd', '/var/lib/livemr').verdict).toBe('warn');
    const noParent = host({ stats: { '/var/lib/livemr': undefined }, canReadWrite: () => false });
    expect(checkDir(noParent, 'd', '/var/lib/livemr').verdict).toBe('fail');
  });

  it('libvirt: skipped unless configured, fails when nothing answers', async () => {
    expect((await checkLibvirt(host(), undefined)).verdict).toBe('skip');
    expect(await checkLibvirt(host(), 'qemu:///system')).toMatchObject({ verdict: 'ok', detail: expect.stringContaining('libvirt 9.0.0') });
    expect(await checkLibvirt(host(), 'qemu:///system?socket=/run/other.sock')).toMatchObject({ verdict: 'fail', detail: expect.stringContaining('ENOENT') });
  });
});
