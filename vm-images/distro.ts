// Builds the distribution test guest: a Debian 12 system with systemd, rsyslog, logrotate, nginx,
// Debian's own nodejs, XFS and LVM tools, and the LiveMR guest helper installed from its .deb with
// dpkg, as a user would (docs/testbed.md, "Distribution guest"). No loop mounts:
//   1. base: `mmdebstrap` from the machine's own apt sources → a tarball, cached under a key of the
//      package list, their candidate versions, the sources and mmdebstrap's version (~40-60 s);
//   2. image: the tarball unpacked to a directory; kernel modules, fstab, the test control agent (a
//      systemd unit) and `dpkg -i livemr-guest_*.deb` in a chroot; `mke2fs -d` → qcow2 (~15 s),
//      cached under the base key plus the .deb, the agent and this file.
// It boots with the busybox image's cloud kernel and initramfs (which find the root disk by its
// serial and hand over to /sbin/init, systemd here); both are copied into this image's directory.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import {
  copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build as esbuild } from 'esbuild';
import { cacheRoot, ensureGuestImage, kernelDeb, type GuestImage } from './build.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '..');
const SUITE = 'bookworm';
/** What a user's small server has, plus the tools the tests use to make filesystems and LVs. */
export const DISTRO_PACKAGES = [
  'systemd', 'systemd-sysv', 'udev', 'dbus', 'kmod', 'iproute2', 'procps', 'rsyslog', 'logrotate', 'nginx-light',
  'nodejs', 'attr', 'e2fsprogs', 'xfsprogs', 'lvm2', 'btrfs-progs', 'fdisk', 'util-linux',
];
/** Bump when the base recipe (mmdebstrap arguments) changes. */
const BASE_RECIPE = 1;
/** Units that only cost boot time or would act at random moments in a test (rotation, scrubs). */
const MASKED_UNITS = [
  'apt-daily.timer', 'apt-daily-upgrade.timer', 'dpkg-db-backup.timer', 'e2scrub_all.timer', 'e2scrub_reap.service',
  'fstrim.timer', 'logrotate.timer', 'xfs_scrub_all.timer', 'btrfs-scrub@.timer', 'systemd-tmpfiles-clean.timer',
  'serial-getty@ttyS0.service', 'getty@tty1.service', 'lvm2-monitor.service', 'systemd-timesyncd.service',
];

export interface DistroImage extends GuestImage {
  kind: 'debian';
  /** key of the cached mmdebstrap tarball it was made from */
  base: string;
  /** installed livemr-guest package version */
  packageVersion: string;
}

const log = (msg: string) => process.stderr.write(`[distro-image] ${msg}\n`);

const failed = (cmd: string, args: string[], e: unknown) => {
  const err = e as { stderr?: string; message: string };
  return new Error(`${cmd} ${args.join(' ').slice(0, 200)} failed: ${(err.stderr || err.message).slice(-2000)}`);
};

/** Quick queries (apt-cache, versions). */
function sh(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (e) { throw failed(cmd, args, e); }
}

/**
 * Long steps run asynchronously: the image is built inside a test worker, whose event loop must keep
 * answering the runner (a minutes-long execFileSync makes vitest's worker RPC time out).
 */
async function run(cmd: string, args: string[]): Promise<string> {
  try {
    return (await promisify(execFile)(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 })).stdout;
  } catch (e) { throw failed(cmd, args, e); }
}

/** The host's own Debian sources (deb822 or one-line), so the guest comes from the machine's mirror. */
function aptSources(): string {
  const cands = [process.env.LIVEMR_DISTRO_SOURCES, '/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list'];
  const found = cands.find((p): p is string => !!p && existsSync(p) && statSync(p).size > 0);
  if (!found) throw new Error('no apt sources for the distribution guest (set LIVEMR_DISTRO_SOURCES to a sources file)');
  return found;
}

/** Candidate versions of the listed packages (one apt-cache call); a new version means a new base. */
function candidates(): Record<string, string> {
  const out = sh('apt-cache', ['policy', ...DISTRO_PACKAGES]);
  const v: Record<string, string> = {};
  let cur = '';
  for (const line of out.split('\n')) {
    const pkg = /^(\S+):$/.exec(line);
    if (pkg) cur = pkg[1]!;
    const c = /^\s+Candidate: (\S+)/.exec(line);
    if (c && cur) v[cur] = c[1]!;
  }
  const missing = DISTRO_PACKAGES.filter((p) => !v[p] || v[p] === '(none)');
  if (missing.length) throw new Error(`apt has no candidate for ${missing.join(', ')} (apt-get update?)`);
  return v;
}

const hash = (x: unknown) => createHash('sha256').update(typeof x === 'string' || Buffer.isBuffer(x) ? x : JSON.stringify(x)).digest('hex').slice(0, 16);

function baseKey(): string {
  const src = aptSources();
  return hash({ BASE_RECIPE, SUITE, packages: DISTRO_PACKAGES, versions: candidates(), sources: readFileSync(src, 'utf8'), mmdebstrap: sh('mmdebstrap', ['--version']).trim() });
}

/** The mmdebstrap tarball for the current inputs, built if missing. */
async function ensureBase(): Promise<{ key: string; tar: string }> {
  const key = baseKey();
  const dir = join(cacheRoot(), 'distro-base');
  mkdirSync(dir, { recursive: true });
  const tar = join(dir, `${SUITE}-${key}.tar`);
  if (existsSync(tar)) return { key, tar };
  const t0 = Date.now();
  log(`mmdebstrap ${SUITE} (${DISTRO_PACKAGES.length} packages and their dependencies) → ${tar}`);
  const tmp = `${tar}.tmp-${process.pid}`;
  try {
    await run('mmdebstrap', ['--quiet', '--variant=apt', '--mode=root', '--format=tar', `--include=${DISTRO_PACKAGES.join(',')}`,
      // no documentation or manual pages: smaller image, faster mke2fs
      '--dpkgopt=path-exclude=/usr/share/man/*', '--dpkgopt=path-exclude=/usr/share/doc/*',
      '--dpkgopt=path-include=/usr/share/doc/*/copyright', '--dpkgopt=path-exclude=/usr/share/locale/*',
      SUITE, tmp, aptSources()]);
    renameSync(tmp, tar);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  log(`base ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  // older bases (other package versions) are not needed any more
  for (const f of readdirSync(dir)) if (f !== `${SUITE}-${key}.tar` && f.endsWith('.tar')) rmSync(join(dir, f), { force: true });
  return { key, tar };
}

/** build/livemr-guest_VERSION_amd64.deb, (re)built by the project's script. */
async function guestDeb(): Promise<string> {
  const out = (await run('bash', [join(REPO, 'scripts/build-guest-deb.sh')])).trim().split('\n').at(-1)!;
  const deb = resolve(REPO, out);
  if (!existsSync(deb)) throw new Error(`scripts/build-guest-deb.sh did not produce ${deb}`);
  return deb;
}

/** Returns the cached distribution image for the current inputs, building it first if needed. */
export async function ensureDistroImage(): Promise<DistroImage> {
  const busybox = await ensureGuestImage(); // kernel, initramfs, data disks
  const base = await ensureBase();
  const deb = await guestDeb();
  const key = hash({
    base: base.key, busybox: busybox.key, deb: hash(readFileSync(deb)),
    sources: hash(Buffer.concat([readFileSync(fileURLToPath(import.meta.url)), readFileSync(join(HERE, 'guest/ctl-agent.ts'))])),
  });
  const dir = join(cacheRoot(), 'images-debian', key);
  const manifest = join(dir, 'manifest.json');
  if (existsSync(manifest)) return JSON.parse(readFileSync(manifest, 'utf8')) as DistroImage;
  const t0 = Date.now();
  log(`building distribution image ${key} in ${dir}`);
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const image = await buildInto(work, dir, key, base, deb, busybox);
    writeFileSync(join(work, 'manifest.json'), JSON.stringify(image, null, 2));
    try { renameSync(work, dir); } catch { rmSync(work, { recursive: true, force: true }); /* another build won */ }
    log(`distribution image ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    prune(key);
    return JSON.parse(readFileSync(manifest, 'utf8')) as DistroImage;
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

async function buildInto(work: string, finalDir: string, key: string, base: { key: string; tar: string }, deb: string,
  busybox: GuestImage): Promise<DistroImage> {
  const step = (m: string) => log(`  ${m}`);
  const root = join(work, 'rootfs');
  mkdirSync(root);
  step('unpacking the base');
  await run('tar', ['-xpf', base.tar, '-C', root, '--numeric-owner', '--xattrs', '--xattrs-include=*']);

  step(`kernel modules ${busybox.kernelVersion} (udev loads xfs, dm-mod, btrfs on demand)`);
  const kx = join(work, 'kernel-x');
  await run('dpkg-deb', ['-x', kernelDeb(), kx]);
  mkdirSync(join(root, 'usr/lib/modules'), { recursive: true });
  renameSync(join(kx, 'lib/modules', busybox.kernelVersion), join(root, 'usr/lib/modules', busybox.kernelVersion));
  rmSync(kx, { recursive: true });
  await run('depmod', ['-b', root, busybox.kernelVersion]);

  step('system configuration');
  writeFileSync(join(root, 'etc/fstab'), 'LABEL=root / ext4 noatime,errors=remount-ro 0 0\n');
  writeFileSync(join(root, 'etc/hostname'), 'livemr-debian\n');
  writeFileSync(join(root, 'etc/hosts'), '127.0.0.1 localhost\n127.0.1.1 livemr-debian\n');
  // a fixed machine-id: every boot of an overlay is the same machine, not a first boot
  writeFileSync(join(root, 'etc/machine-id'), `${hash(`livemr-debian-${key}`)}${hash(key)}\n`);
  for (const u of MASKED_UNITS) {
    const p = join(root, 'etc/systemd/system', u);
    rmSync(p, { force: true });
    symlinkSync('/dev/null', p);
  }
  await run('chroot', [root, 'useradd', '-m', '-u', '1000', '-s', '/bin/bash', 'alice']);

  step('test control agent (org.livemr.ctl, test only)');
  await esbuild({
    entryPoints: [join(HERE, 'guest/ctl-agent.ts')], outfile: join(root, 'opt/livemr-test/ctl-agent.mjs'),
    bundle: true, platform: 'node', format: 'esm', target: 'node18', logLevel: 'error',
  });
  writeFileSync(join(root, 'etc/systemd/system/livemr-ctl.service'), [
    '[Unit]', 'Description=LiveMR test control agent (tests only: runs any command as root)', 'DefaultDependencies=no',
    'After=systemd-udevd.service', '', '[Service]', 'ExecStart=/usr/bin/node /opt/livemr-test/ctl-agent.mjs',
    'Restart=always', 'RestartSec=1', '', '[Install]', 'WantedBy=multi-user.target', '',
  ].join('\n'));
  mkdirSync(join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
  symlinkSync('/etc/systemd/system/livemr-ctl.service', join(root, 'etc/systemd/system/multi-user.target.wants/livemr-ctl.service'));

  step(`installing ${deb.slice(REPO.length + 1)} with dpkg, as a user would`);
  copyFileSync(deb, join(root, 'tmp/livemr-guest.deb'));
  await run('chroot', [root, 'dpkg', '-i', '/tmp/livemr-guest.deb']);
  rmSync(join(root, 'tmp/livemr-guest.deb'));
  const packageVersion = await run('chroot', [root, 'dpkg-query', '-W', '-f=${Version}', 'livemr-guest']);

  step('root filesystem (mke2fs -d) → qcow2');
  const rootBytes = Number((await run('du', ['-sb', root])).split('\t')[0]);
  // room for logs, nginx traffic and test files written on the root filesystem
  const size = Math.ceil((rootBytes * 1.2 + 384 * 1024 * 1024) / (1 << 20)) * (1 << 20);
  await run('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-L', 'root', '-E', 'lazy_itable_init=0,lazy_journal_init=0',
    '-d', root, join(work, 'root.raw'), String(size / 4096)]);
  rmSync(root, { recursive: true });
  await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', join(work, 'root.raw'), join(work, 'root.qcow2')]);
  rmSync(join(work, 'root.raw'));
  for (const f of ['vmlinuz', 'initrd.img', 'data.qcow2', 'pdata.qcow2']) copyFileSync(join(busybox.dir, f), join(work, f));

  const at = (f: string) => join(finalDir, f);
  return {
    kind: 'debian', key, base: base.key, packageVersion, dir: finalDir, kernelVersion: busybox.kernelVersion,
    vmlinuz: at('vmlinuz'), initrd: at('initrd.img'), root: at('root.qcow2'), data: at('data.qcow2'), pdata: at('pdata.qcow2'),
    pdataFsOffset: busybox.pdataFsOffset,
  };
}

/** Drops other distribution images over a day old (a younger one may back a running VM's overlays). */
function prune(keep: string): void {
  const root = join(cacheRoot(), 'images-debian');
  const dayAgo = Date.now() - 24 * 3600 * 1000;
  for (const name of readdirSync(root)) {
    if (name === keep) continue;
    const dir = join(root, name);
    if (statSync(dir).mtimeMs < dayAgo) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureDistroImage().then(
    (img) => log(`distribution image ${img.key}: ${img.dir}`),
    (e: Error) => { log(`FAILED: ${e.message}`); process.exit(1); },
  );
}
