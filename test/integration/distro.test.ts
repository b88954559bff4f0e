// LiveMR on a real distribution guest: Debian 12 with systemd, rsyslog, nginx and logrotate, the
// guest helper installed from livemr-guest_*.deb and started by udev/systemd when the host agent
// hot-plugs org.livemr.0, running on Debian's own Node 18. Real writers and real rotation; what the
// host serves is byte-compared with the guest's file every time. One guest for the whole file.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostAgent } from '../../src/host/agent.js';
import { parseConfig, type AgentConfig } from '../../src/host/config.js';
import { createLogger } from '../../src/host/log.js';
import { QmpClient } from '../../src/qmp/protocol/client.js';
import { removeChannel } from '../../src/qmp/vocab/channel.js';
import { bootGuest, type GuestVm } from '../harness/vm.js';
import { until } from '../harness/wait.js';

const SYSLOG = '/var/log/syslog';
const ACCESS = '/var/log/nginx/access.log';
const hostFile = (mnt: string, guestPath: string) => join(mnt, `livemr_vm1_${guestPath.slice(1).replace(/\//g, '_')}`);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('distribution guest (Debian 12, helper from its .deb)', () => {
  let vm: GuestVm;
  let agent: HostAgent | undefined;
  let dir: string;
  let cfg: AgentConfig;
  const logs: string[] = [];

  /** Guest file's size and sha256 in one command. */
  const guestSum = async (path: string) => {
    const [size, sum] = (await vm.sh(`stat -c %s ${path}; sha256sum < ${path}`)).trim().split(/\s+/);
    return { size: Number(size), sum: sum! };
  };
  /**
   * Waits until the host serves exactly the guest's bytes of `path` (size and sha256 equal at one
   * moment); the guest is re-read each time, as its writers may still be writing.
   */
  const converged = async (path: string, timeoutMs = 30_000) => {
    const f = hostFile(cfg.mountpoint, path);
    let last = 'nothing compared yet';
    try {
      return await until(`${path} byte-equal on the host`, async () => {
        const g = await guestSum(path);
        if (!existsSync(f)) { last = 'not on the mount'; return false; }
        const h = readFileSync(f);
        last = `guest ${g.size} B, host ${h.length} B${h.length === g.size ? ', contents differ' : ''}`;
        return h.length === g.size && sha(h) === g.sum && g;
      }, timeoutMs, 200);
    } catch (e) {
      throw new Error(`${(e as Error).message}; last: ${last}`, { cause: e });
    }
  };
  /** Waits in the guest until `grep -q PATTERN FILE` succeeds; on timeout says what the guest looks like. */
  const guestGrep = async (pattern: string, file: string, secs = 60) => {
    const r = await vm.exec(`i=0; until grep -q -- '${pattern}' ${file} 2>/dev/null; do i=$((i+1)); [ $i -gt ${secs * 5} ] && exit 1; sleep 0.2; done`,
      { timeoutMs: (secs + 30) * 1000 });
    if (r.code === 0) return;
    const d = await vm.exec(`tail -n 3 ${file}; ps -eo pid,stat,etime,args | grep -v ']$' | tail -n 30; systemctl --failed --no-legend; journalctl -u livemr-reqloop --no-pager | tail -n 10`, { timeoutMs: 30_000 });
    throw new Error(`guest: no '${pattern}' in ${file} after ${secs} s\n${d.stdout.toString()}${d.stderr.toString()}`);
  };
  /** GET requests from inside the guest (bash /dev/tcp: the image has no curl). */
  const requests = (prefix: string, n: number) => vm.sh(`/usr/local/bin/reqloop '${prefix}' ${n}`);
  const share = (path: string) => vm.sh(`setfattr -n user.livemr.share -v 1 ${path}`);
  const shareStatus = (path: string) => agent!.status().vms[0]!.shares.find((s) => s.path === path);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'livemr-distro-'));
    // 2 vCPU / 512 MB: boots in ~35 s on an idle host (docs/testbed.md); no channel at boot, the
    // agent hot-plugs it, which is what starts the packaged unit.
    vm = await bootGuest({
      image: 'debian', name: 'distro', cpus: 2, memoryMb: 512, channel: false,
      // blank disks for the filesystems and block layers users have (made in the guest below)
      blankDisks: [
        { serial: 'gpt', bytes: 256 << 20 }, { serial: 'xfs', bytes: 640 << 20 }, { serial: 'pxfs', bytes: 640 << 20 },
        { serial: 'lvm', bytes: 512 << 20 }, { serial: 'btrfs', bytes: 256 << 20 },
      ],
    });
    console.error(`[distro] boot to ready ${vm.bootMs} ms`);
    await vm.sh('logger -t livemr-test boot-marker');
    await guestGrep('boot-marker', SYSLOG);
    await share(SYSLOG);
    // reqloop PREFIX N: N requests GET PREFIX<i> (N=0: until /tmp/stop-loop exists)
    await vm.sh(`cat > /usr/local/bin/reqloop <<'EOF'
#!/bin/bash
i=0
while { [ "$2" -eq 0 ] && [ ! -e /tmp/stop-loop ]; } || [ "$i" -lt "$2" ]; do
  i=$((i+1))
  exec 3<>/dev/tcp/127.0.0.1/80
  printf 'GET %s%d HTTP/1.0\\r\\n\\r\\n' "$1" "$i" >&3
  while IFS= read -r -u 3 _; do :; done  # drain without forking cat: TCG makes every process costly
  exec 3<&-
done
EOF
chmod 755 /usr/local/bin/reqloop`);
    await requests('/first?n=', 1);
    await share(ACCESS);
    cfg = parseConfig({
      mountpoint: join(dir, 'mnt'), stateDir: join(dir, 'state'), runDir: join(dir, 'run'), metrics: '127.0.0.1:0',
      vms: [{ name: 'vm1', qmp: vm.qmpSocket, share: [SYSLOG, ACCESS] }],
    });
    agent = await HostAgent.start(cfg, createLogger({ level: 'debug', sink: (l) => logs.push(l) }));
  }, 900_000); // a first run builds the image (mmdebstrap, minutes on a loaded host), then boots it

  afterAll(async () => {
    await agent?.stop();
    await vm?.shutdown();
    if (logs.length) console.error(logs.slice(-30).join('\n'));
    try { execFileSync('fusermount3', ['-uz', join(dir, 'mnt')], { stdio: 'ignore' }); } catch { /* not mounted */ }
    rmSync(dir, { recursive: true, force: true });
  });

  describe('real writers and real rotation', () => {
    it('the packaged unit starts on the hot-plugged port, on Debian\'s Node 18, logging to the journal', async () => {
      await until('livemr-guest.service active', async () => (await vm.exec('systemctl is-active livemr-guest')).code === 0, 60_000, 500);
      const node = (await vm.sh('node --version')).trim();
      expect(node).toMatch(/^v18\./);
      expect(await vm.sh('dpkg-query -W -f=\'${Status}\' livemr-guest')).toBe('install ok installed');
      expect((await vm.sh('command -v livemr-guest')).trim()).toBe('/usr/bin/livemr-guest');
      await converged(SYSLOG, 90_000); // the helper's first start under TCG takes a while
      expect(await vm.sh('journalctl -u livemr-guest --no-pager -o cat')).toMatch(/using \/dev\/vport/);
    });

    it('rsyslog\'s /var/log/syslog fed by logger', async () => {
      // one logger process, one message per input line
      await vm.sh(`seq 1 300 | sed 's/.*/line & of the syslog test/' | logger -t livemr-test`);
      await guestGrep('line 300 of the syslog', SYSLOG);
      const g = await converged(SYSLOG);
      expect(g.size).toBeGreaterThan(300 * 30);
    });

    it('nginx access.log under a request loop run inside the guest', async () => {
      await requests('/loop?n=', 200);
      const g = await converged(ACCESS);
      expect(readFileSync(hostFile(cfg.mountpoint, ACCESS), 'utf8')).toContain('GET /loop?n=200 ');
      expect(g.size).toBeGreaterThan(200 * 50);
    });

    it('logrotate -f, create mode (Debian\'s own rsyslog config): the new file is shared once granted', async () => {
      await vm.sh('logger -t livemr-test before-create-rotation');
      await guestGrep('before-create-rotation', SYSLOG);
      await converged(SYSLOG);
      await vm.sh('logrotate -f /etc/logrotate.d/rsyslog');
      await vm.sh(`test -s ${SYSLOG}.1 && grep -q before-create-rotation ${SYSLOG}.1`);
      // a new inode at the requested path without the xattr: the owner is asked, not bypassed
      await until('a pending request for the new syslog', () => shareStatus(SYSLOG)?.status === 'pending-consent', 30_000, 200);
      await vm.sh(`livemr-guest grant ${SYSLOG}`, { timeoutMs: 60_000 });
      await vm.sh(`seq 1 50 | sed 's/.*/after create rotation &/' | logger -t livemr-test`);
      await guestGrep('after create rotation 50', SYSLOG);
      await converged(SYSLOG);
      const served = readFileSync(hostFile(cfg.mountpoint, SYSLOG), 'utf8');
      expect(served).not.toContain('before-create-rotation');
      expect(served).toContain('after create rotation 50');
    });

    it('logrotate -f, copytruncate, while nginx keeps writing: the shared file follows, never old bytes as new', async () => {
      await vm.sh(`cat > /etc/logrotate.d/livemr-test-nginx <<'EOF'
${ACCESS} {
  copytruncate
  rotate 2
  missingok
}
EOF
rm -f /tmp/stop-loop
# a transient unit: detached from the control agent's shell, its failure (if any) in the journal
systemd-run --quiet --unit=livemr-reqloop --collect /usr/local/bin/reqloop '/ct?n=' 0`);
      await guestGrep('GET /ct?n=50 ', ACCESS);
      const ino = (await vm.sh(`stat -c %i ${ACCESS}`)).trim();
      const before = await guestSum(ACCESS);
      await vm.sh('logrotate -f /etc/logrotate.d/livemr-test-nginx');
      expect((await vm.sh(`stat -c %i ${ACCESS}`)).trim()).toBe(ino); // same inode, truncated in place
      // while the loop appends, every host view shorter than before the rotation holds only new lines
      const f = hostFile(cfg.mountpoint, ACCESS);
      let sawShrink = false;
      const t0 = Date.now();
      while (Date.now() - t0 < 8000) {
        const h = readFileSync(f, 'utf8');
        if (h.length < before.size) {
          sawShrink = true;
          const firstCt = /GET \/ct\?n=(\d+) /.exec(h)?.[1];
          // old content would be request numbers from before the rotation (<= 50 and the /loop lines)
          expect(h).not.toContain('GET /loop?n=');
          expect(h).not.toContain('GET /first?n=');
          if (firstCt) expect(Number(firstCt)).toBeGreaterThan(50);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      await vm.sh('touch /tmp/stop-loop; systemctl stop livemr-reqloop 2>/dev/null; true');
      expect(sawShrink).toBe(true);
      await converged(ACCESS);
      expect(Number(/GET \/ct\?n=(\d+) /.exec(readFileSync(f, 'utf8'))?.[1])).toBeGreaterThan(50);
      const rotated = await vm.sh(`cat ${ACCESS}.1`);
      expect(rotated).toContain('GET /loop?n=200 ');
    });
  });

  describe('filesystems and block layers', () => {
    /** writes `bytes` of a pattern to path, gives consent, asks the host agent for it */
    const put = async (path: string, mb: number) => {
      await vm.sh(`head -c ${mb << 20} /dev/urandom > ${path} && printf 'tail of %s\\n' ${path} >> ${path} && setfattr -n user.livemr.share -v 1 ${path}`);
      agent!.requestShare('vm1', path);
    };
    const refused = async (path: string, why: RegExp) => {
      const rec = await until(`${path} refused`, () => { const r = shareStatus(path); return r && r.status !== 'requested' && r; }, 60_000, 200);
      expect(rec.status).toBe('unsupported-device');
      expect(rec.message).toMatch(why);
      expect(existsSync(hostFile(cfg.mountpoint, path))).toBe(false);
    };

    beforeAll(async () => {
      // disks by serial, as a user's fstab would name them by UUID; GPT/XFS/LVM made in the guest
      await vm.sh(`set -e
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
    }, 180_000);

    it('ext4 on a GPT partition, XFS on a whole disk and on a partition: byte-equal on the host', async () => {
      const files = ['/mnt/gpt/a.bin', '/mnt/xfs/a.bin', '/mnt/pxfs/a.bin'];
      for (const f of files) await put(f, 3);
      for (const f of files) await converged(f, 60_000);
      // and they follow appends
      await vm.sh(files.map((f) => `head -c 1000000 /dev/urandom >> ${f}`).join('; '));
      for (const f of files) await converged(f);
    });

    it('an LVM linear LV: LV offsets translated to the PV\'s disk through the device-mapper table', async () => {
      const table = await vm.sh('dmsetup table vg0-lin');
      expect(table).toMatch(/^0 \d+ linear \d+:\d+ \d+\s*$/);
      await put('/mnt/lin/a.bin', 4);
      await converged('/mnt/lin/a.bin', 60_000);
      await vm.sh('head -c 2000000 /dev/urandom >> /mnt/lin/a.bin');
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
      const qmp = await QmpClient.connect(vm.testQmpSocket);
      try {
        await removeChannel(qmp, { deviceId: 'livemr-channel', chardevId: 'livemr-channel-chr' });
      } finally {
        await qmp.close();
      }
      await until('livemr-guest.service inactive', async () => (await vm.exec('systemctl is-active livemr-guest')).code !== 0, 30_000, 500);
      expect((await vm.sh('ls /dev/virtio-ports')).trim()).toBe('org.livemr.ctl');
    });
  });
});
