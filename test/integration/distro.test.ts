// LiveMR on a real distribution guest: Debian 12 with systemd, rsyslog, nginx and logrotate, on
// Debian's own Node 18. The guest helper is installed from build/livemr-guest_*.deb with dpkg -i in
// the running guest, as a user would, and started by udev/systemd when the host agent hot-plugs
// org.livemr.0. Real writers, real rotation, real filesystems and block layers; what the host mount
// serves is byte-compared (size + sha256) with the guest's file every time. One guest for the file.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostAgent, compositionName, createLogger, parseConfig, type AgentConfig } from '../../src/host/index.js';
import { QmpClient, removeChannel } from '../../src/qmp/index.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';

const SYSLOG = '/var/log/syslog';
const ACCESS = '/var/log/nginx/access.log';
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const secs = (ms: number) => (ms / 1000).toFixed(1);
const note = (m: string) => console.error(`[distro] ${m}`);

describe('distribution guest (Debian 12, helper from its .deb)', () => {
  let vm: GuestVm | undefined;
  let agent: HostAgent | undefined;
  let dir: string;
  let cfg: AgentConfig;
  let agentStartMs = 0;
  const logs: string[] = [];

  const hostFile = (guestPath: string) => join(cfg.mountpoint, `livemr_${compositionName('vm1', guestPath)}`);
  const guest = () => vm!;
  /** Guest file's size and sha256, read in one command. */
  const guestSum = async (path: string) => {
    const [size, sum] = (await guest().sh(`stat -c %s ${path}; sha256sum < ${path}`)).trim().split(/\s+/);
    return { size: Number(size), sum: sum! };
  };
  /**
   * Waits until the host mount serves exactly the guest's bytes of `path` (size and sha256 equal);
   * the guest file is re-read each round, as its writer may still be writing. Bounded.
   */
  const converged = async (path: string, timeoutMs = 30_000) => {
    const f = hostFile(path);
    let last = 'nothing compared yet';
    try {
      return await until(`${path} byte-equal on the host`, async () => {
        const g = await guestSum(path);
        if (!existsSync(f)) { last = `not on the mount (status ${JSON.stringify(shareStatus(path) ?? null)})`; return false; }
        const h = readFileSync(f);
        last = `guest ${g.size} B, host ${h.length} B${h.length === g.size ? ', contents differ' : ''}`;
        return h.length === g.size && sha(h) === g.sum && g;
      }, timeoutMs, 250);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last: ${last}`, { cause: e });
    }
  };
  /** Waits in the guest until `grep -q PATTERN FILE` succeeds (one guest command, bounded). */
  const guestGrep = async (pattern: string, file: string, maxSecs = 60) => {
    const r = await guest().exec(`i=0; until grep -q -- '${pattern}' ${file} 2>/dev/null; do i=$((i+1)); [ $i -gt ${maxSecs * 5} ] && exit 1; sleep 0.2; done`,
      { timeoutMs: (maxSecs + 30) * 1000 });
    if (r.code === 0) return;
    const d = await guest().exec(`tail -n 3 ${file}; systemctl --failed --no-legend`, { timeoutMs: 30_000 });
    throw new Error(`guest: no '${pattern}' in ${file} after ${maxSecs} s\n${d.stdout.toString()}${d.stderr.toString()}`);
  };
  const shareStatus = (path: string) => agent?.status().vms[0]?.shares.find((s) => s.path === path);
  /** GET requests from inside the guest (bash /dev/tcp: the image has no curl). */
  const requests = (prefix: string, n: number) => guest().sh(`/usr/local/bin/reqloop '${prefix}' ${n}`);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-distro-'));
    // 2 vCPU / 512 MB (docs/testbed.md). No channel at boot: the agent hot-plugs it, which is what
    // starts the packaged unit. Blank disks for the filesystems and block layers (made in the guest).
    vm = await bootGuest({
      image: 'debian', name: 'distro', cpus: 2, memoryMb: 512, channel: false,
      blankDisks: [
        { serial: 'gpt', bytes: 256 << 20 }, { serial: 'xfs', bytes: 640 << 20 }, { serial: 'pxfs', bytes: 640 << 20 },
        { serial: 'lvm', bytes: 512 << 20 }, { serial: 'btrfs', bytes: 256 << 20 },
      ],
    });
    note(`boot to ready ${secs(vm.bootMs)} s`);
    // the package as a user installs it: dpkg -i in the running system, postinst included (over the
    // image's own install of the same .deb, made offline in its build; a purge first cost 30 s here)
    const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
    await vm.put(resolve(`build/livemr-guest_${version}_amd64.deb`), '/tmp/livemr-guest.deb');
    let t = Date.now();
    await vm.sh('dpkg -i /tmp/livemr-guest.deb >/dev/null', { timeoutMs: 120_000 });
    note(`dpkg -i ${secs(Date.now() - t)} s`);

    // reqloop PREFIX N: N requests GET PREFIX<i> (N=0: until /tmp/stop-loop exists)
    await vm.sh(`cat > /usr/local/bin/reqloop <<'EOF'
#!/bin/bash
i=0
while { [ "$2" -eq 0 ] && [ ! -e /tmp/stop-loop ]; } || [ "$i" -lt "$2" ]; do
  i=$((i+1))
  exec 3<>/dev/tcp/127.0.0.1/80
  printf 'GET %s%d HTTP/1.0\\r\\n\\r\\n' "$1" "$i" >&3
  while IFS= read -r -u 3 _; do :; done  # drain without forking cat: every process is costly under TCG
  exec 3<&-
done
EOF
chmod 755 /usr/local/bin/reqloop
logger -t livemr-test boot-marker
/usr/local/bin/reqloop /first?n= 1`);
    await guestGrep('boot-marker', SYSLOG);
    // consent: by the CLI on PATH (a Node start under TCG: 6-20 s), and by setfattr, its equivalent
    t = Date.now();
    await vm.sh(`livemr-guest share ${SYSLOG} && setfattr -n user.livemr.share -v 1 ${ACCESS}`, { timeoutMs: 120_000 });
    note(`consent CLI call ${secs(Date.now() - t)} s`);
    cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: '127.0.0.1:0',
      vms: [{ name: 'vm1', qmp: vm.qmpSocket, share: [SYSLOG, ACCESS] }],
    });
    agentStartMs = Date.now();
    agent = await HostAgent.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
  }, 900_000); // a first run builds the image (mmdebstrap: minutes on a loaded host), then boots it

  afterAll(async () => {
    try { await agent?.stop(); } catch (e) { note(`agent stop: ${(e as Error).message}`); }
    await vm?.shutdown();
    if (logs.length) console.error(logs.slice(-30).join('\n'));
    if (dir) {
      try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  describe('real writers and real rotation', () => {
    it('the packaged unit starts on the hot-plugged port, on Debian\'s Node 18; first share', async () => {
      const active = await until('livemr-guest.service active', async () => (await guest().exec('systemctl is-active livemr-guest')).code === 0 && Date.now(), 90_000, 500);
      const g = await converged(SYSLOG, 90_000);
      const first = Date.now();
      note(`agent start → unit active ${secs(active - agentStartMs)} s, → ${SYSLOG} byte-equal on the host ${secs(first - agentStartMs)} s (${g.size} B)`);
      // where the time went, from the guest's journal (guest clock; offset measured here)
      const off = Date.now() / 1000 - Number(await guest().sh('date +%s.%N'));
      const j = await guest().sh('journalctl -u livemr-guest --no-pager -o short-unix');
      for (const line of j.trim().split('\n').slice(0, 30)) {
        const m = /^(\d+\.\d+) (.*)$/.exec(line);
        if (m) note(`  +${secs((Number(m[1]) + off) * 1000 - agentStartMs)} s ${m[2]!.slice(0, 140)}`);
      }
      expect((await guest().sh('node --version')).trim()).toMatch(/^v18\./);
      expect(await guest().sh('dpkg-query -W -f=\'${Status}\' livemr-guest')).toBe('install ok installed');
      expect((await guest().sh('command -v livemr-guest')).trim()).toBe('/usr/bin/livemr-guest');
      expect(j).toMatch(/using \/dev\/vport/);
      // one handshake, one full resync, however many hellos queued up while the helper started
      expect(j.match(/full resync/g)?.length).toBe(1);
    });

    it('rsyslog\'s /var/log/syslog fed by logger', async () => {
      await guest().sh(`seq 1 300 | sed 's/.*/line & of the syslog test/' | logger -t livemr-test`);
      await guestGrep('line 300 of the syslog', SYSLOG);
      const g = await converged(SYSLOG);
      expect(g.size).toBeGreaterThan(300 * 30);
      expect(readFileSync(hostFile(SYSLOG), 'utf8')).toContain('line 300 of the syslog test');
    });

    it('nginx access.log under a request loop inside the guest', async () => {
      await requests('/loop?n=', 200);
      const g = await converged(ACCESS);
      expect(readFileSync(hostFile(ACCESS), 'utf8')).toContain('GET /loop?n=200 ');
      expect(g.size).toBeGreaterThan(200 * 50);
    });

    it('logrotate -f, create (Debian\'s rsyslog config): the rotated file keeps its bytes under its new name, the new one is shared once granted', async () => {
      await guest().sh('logger -t livemr-test before-create-rotation');
      await guestGrep('before-create-rotation', SYSLOG);
      const old = await converged(SYSLOG);
      await guest().sh('logrotate -f /etc/logrotate.d/rsyslog');
      await guest().sh(`grep -q before-create-rotation ${SYSLOG}.1`);
      // the old inode is still shared, now as syslog.1, with the bytes it had
      // (rsyslog may have written more before the rename: the old bytes are its prefix)
      const rotated = await converged(`${SYSLOG}.1`);
      expect(rotated.size).toBeGreaterThanOrEqual(old.size);
      expect(sha(readFileSync(hostFile(`${SYSLOG}.1`)).subarray(0, old.size))).toBe(old.sum);
      // a new inode at the requested path without the xattr: its owner is asked, not bypassed
      await until('a pending request for the new syslog', () => shareStatus(SYSLOG)?.status === 'pending-consent', 30_000, 200);
      await converged(`${SYSLOG}.1`);
      await guest().sh(`livemr-guest grant ${SYSLOG}`, { timeoutMs: 60_000 });
      await guest().sh(`seq 1 50 | sed 's/.*/after create rotation &/' | logger -t livemr-test`);
      await guestGrep('after create rotation 50', SYSLOG);
      await converged(SYSLOG);
      const served = readFileSync(hostFile(SYSLOG), 'utf8');
      expect(served).not.toContain('before-create-rotation');
      expect(served).toContain('after create rotation 50');
    });

    it('logrotate -f, copytruncate while nginx keeps writing: the shared file follows, never old bytes as new', async () => {
      await guest().sh(`cat > /etc/logrotate.d/livemr-test-nginx <<'EOF'
${ACCESS} {
  copytruncate
  rotate 2
  missingok
}
EOF
rm -f /tmp/stop-loop
# a transient unit: detached from the control agent's shell; its failure (if any) in the journal
systemd-run --quiet --unit=livemr-reqloop --collect /usr/local/bin/reqloop '/ct?n=' 0`);
      await guestGrep('GET /ct?n=30 ', ACCESS);
      const ino = (await guest().sh(`stat -c %i ${ACCESS}`)).trim();
      await guest().sh('logrotate -f /etc/logrotate.d/livemr-test-nginx');
      expect((await guest().sh(`stat -c %i ${ACCESS}`)).trim()).toBe(ino); // same inode, truncated in place
      // the first line written after the cut (bounded wait for it in the guest)
      const first = await guest().sh(`i=0; until [ -s ${ACCESS} ]; do i=$((i+1)); [ $i -gt 300 ] && exit 1; sleep 0.1; done; head -n 1 ${ACCESS}`);
      const cut = Number(/GET \/ct\?n=(\d+) /.exec(first)?.[1]);
      expect(cut).toBeGreaterThan(0);
      // every view of the host file while nginx writes on, kept for the checks below
      const f = hostFile(ACCESS);
      const views = new Map<string, Buffer>();
      const t0 = Date.now();
      while (Date.now() - t0 < 8000) {
        const h = readFileSync(f);
        views.set(sha(h), h);
        await new Promise((r) => setTimeout(r, 100));
      }
      await guest().sh('touch /tmp/stop-loop; systemctl stop livemr-reqloop 2>/dev/null; true');
      const now = await converged(ACCESS);
      const fresh = readFileSync(f);
      expect(sha(fresh)).toBe(now.sum);
      const copy = (await guest().exec(`cat ${ACCESS}.1`)).stdout;
      expect(copy.toString().match(/GET \/loop\?n=/g)?.length).toBe(200);
      // Each view is the old file (the copy, then maybe lines logged between the copy and the cut,
      // all numbered below the cut) or a prefix of the new one; old bytes never pass for new ones.
      const isPrefix = (a: Buffer, b: Buffer) => a.length <= b.length && a.equals(b.subarray(0, a.length));
      const oldView = (v: Buffer) => isPrefix(v, copy) || (isPrefix(copy, v)
        && [...v.subarray(copy.length).toString().matchAll(/GET \/ct\?n=(\d+) /g)].every((m) => Number(m[1]) < cut));
      const bad = [...views.values()].filter((v) => !isPrefix(v, fresh) && !oldView(v));
      expect(bad.map((v) => `${v.length} B: ${v.subarray(0, 80).toString()}…`)).toEqual([]);
      // and the host did follow the cut while it was being written
      expect([...views.values()].filter((v) => v.length > 0 && isPrefix(v, fresh)).length).toBeGreaterThan(0);
      expect(fresh.toString()).not.toContain('GET /loop?n=');
    });
  });

  describe('filesystems and block layers', () => {
    /** writes `mb` MiB of random bytes and a tail line, gives consent, asks the host agent for it */
    const put = async (path: string, mb: number) => {
      await guest().sh(`head -c ${mb << 20} /dev/urandom > ${path} && printf 'tail of %s\\n' ${path} >> ${path} && setfattr -n user.livemr.share -v 1 ${path}`);
      agent!.requestShare('vm1', path);
    };
    const refused = async (path: string, why: RegExp) => {
      const rec = await until(`${path} refused`, () => { const r = shareStatus(path); return r && r.status !== 'requested' && r; }, 60_000, 200);
      expect(rec.status).toBe('unsupported-device');
      expect(rec.message).toMatch(why);
      expect(existsSync(hostFile(path))).toBe(false);
    };

    beforeAll(async () => {
      // disks found by serial; GPT, XFS, LVM and btrfs made in the guest
      const t = Date.now();
      await guest().sh(`set -e
dev() { for s in /sys/block/vd*/serial; do if [ "$(cat $s)" = "$1" ]; then echo /dev/$(basename $(dirname $s)); fi; done; }
G=$(dev gpt); X=$(dev xfs); P=$(dev pxfs); L=$(dev lvm); B=$(dev btrfs)
printf 'label: gpt\\nstart=4104, size=400000, type=linux\\n' | sfdisk -q $G
printf 'label: gpt\\nstart=2056, type=linux\\n' | sfdisk -q $P
printf 'label: gpt\\nstart=2048, size=600000, type=lvm\\nstart=604160, type=lvm\\n' | sfdisk -q $L
udevadm settle
mkfs.ext4 -q "$G"1; mkfs.xfs -q -f $X; mkfs.xfs -q -f "$P"1; mkfs.btrfs -q -f $B
pvcreate -q "$L"1 "$L"2; vgcreate -q vg0 "$L"1 "$L"2
lvcreate -q -y -L 64M -n lin vg0 "$L"1
lvcreate -q -y -i 2 -I 64k -L 32M -n str vg0
lvcreate -q -y -L 16M -n orig vg0 "$L"1; lvcreate -q -y -s -L 16M -n snap vg0/orig
for lv in lin str snap; do mkfs.ext4 -q /dev/vg0/$lv; done
for m in gpt xfs pxfs btrfs lin str snap; do mkdir -p /mnt/$m; done
mount "$G"1 /mnt/gpt; mount $X /mnt/xfs; mount "$P"1 /mnt/pxfs; mount $B /mnt/btrfs
for lv in lin str snap; do mount /dev/vg0/$lv /mnt/$lv; done`, { timeoutMs: 170_000 });
      note(`partitions, filesystems and LVs made in ${secs(Date.now() - t)} s`);
    }, 180_000);

    it('ext4 on a GPT partition, XFS on a whole disk and on a partition: byte-equal on the host, and after appends', async () => {
      const files = ['/mnt/gpt/a.bin', '/mnt/xfs/a.bin', '/mnt/pxfs/a.bin'];
      for (const f of files) await put(f, 3);
      for (const f of files) await converged(f, 60_000);
      await guest().sh(files.map((f) => `head -c 1000000 /dev/urandom >> ${f}`).join('; '));
      for (const f of files) await converged(f);
    });

    it('an LVM linear LV: LV offsets translated to the PV\'s disk through the device-mapper table', async () => {
      expect(await guest().sh('dmsetup table vg0-lin')).toMatch(/^0 \d+ linear \d+:\d+ \d+\s*$/);
      await put('/mnt/lin/a.bin', 4);
      await converged('/mnt/lin/a.bin', 60_000);
      await guest().sh('head -c 2000000 /dev/urandom >> /mnt/lin/a.bin');
      await converged('/mnt/lin/a.bin');
    });

    it('striped and snapshot LVs and btrfs are refused with a clear status', async () => {
      for (const f of ['/mnt/str/a.bin', '/mnt/snap/a.bin', '/mnt/btrfs/a.bin']) await put(f, 1);
      await refused('/mnt/str/a.bin', /striped LV/);
      await refused('/mnt/snap/a.bin', /snapshot/);
      await refused('/mnt/btrfs/a.bin', /btrfs is not supported/);
    });
  });

  // last: it stops the agent and unplugs the port (vitest runs a suite's own tests before its nested suites)
  describe('port unplugged', () => {
    it('the unit stops when the port is unplugged', async () => {
      await agent!.stop();
      agent = undefined;
      const qmp = await QmpClient.connect(guest().testQmpSocket);
      try {
        await removeChannel(qmp, { deviceId: 'livemr-channel', chardevId: 'livemr-channel-chr' });
      } finally {
        await qmp.close();
      }
      await until('livemr-guest.service inactive', async () => (await guest().exec('systemctl is-active livemr-guest')).code !== 0, 30_000, 500);
      expect((await guest().sh('ls /dev/virtio-ports')).trim()).toBe('org.livemr.ctl');
    });
  });
});
