// Builds the test guest from Debian packages without installing them and without loop mounts:
// kernel from the linux-image-*-cloud-amd64 .deb (dpkg-deb -x), a tiny initramfs that loads the
// virtio modules, and a root disk (ext4 made with `mke2fs -d`, converted to qcow2) holding static
// busybox, the host's own node binary with its libraries, and the guest control agent bundled to one
// JS file. Also two empty ext4 data disks: whole-disk (`data`) and partition 1 at an odd offset
// (`pdata`). Results are cached outside git under a key made of every input, so a rebuild happens
// only when an input changes. See docs/testbed.md.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync,
  statSync, symlinkSync, writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build as esbuild } from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));
const KERNEL_META = 'linux-image-cloud-amd64';
/** Modules the guest needs; their dependencies are added from each module's `depends=`. */
const WANTED_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_console', 'virtio_net'];
/** Host tools copied into the guest with their shared libraries (busybox covers the rest). */
const HOST_TOOLS = ['/usr/sbin/filefrag', '/usr/bin/setfattr', '/usr/bin/getfattr', '/usr/bin/fallocate', '/usr/bin/dd'];
/**
 * Guest-side LiveMR artifacts (the bundled helper, its addon), built by scripts/build-native-*.sh
 * before the image; copied to /opt/livemr. Boot scripts in vm-images/guest/boot.d run at boot.
 */
const GUEST_BUILD = resolve(HERE, '../build/guest');
const DATA_DISK_BYTES = 256 * 1024 * 1024;
/** Partition 1 of the `pdata` disk starts here: deliberately not 4 KiB-aligned (sector 2050). */
export const PDATA_PART_START = 2050 * 512;

export interface GuestImage {
  key: string;
  dir: string;
  kernelVersion: string;
  vmlinuz: string;
  initrd: string;
  root: string;
  data: string;
  pdata: string;
  pdataFsOffset: number;
}

export const cacheRoot = (): string => process.env.LIVEMR_CACHE ?? join(homedir(), '.cache', 'livemr');

function sh(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...opts });
}

const log = (msg: string) => process.stderr.write(`[vm-image] ${msg}\n`);

/** The kernel .deb (apt-get download, cached in <cache>/debs); the distribution image uses its modules. */
export function kernelDeb(kernel = kernelPackage(), step: (msg: string) => void = log): string {
  const debDir = join(cacheRoot(), 'debs');
  mkdirSync(debDir, { recursive: true });
  const deb = join(debDir, `${kernel.name}_${kernel.version}.deb`);
  if (!existsSync(deb)) {
    step('downloading kernel .deb from apt');
    const tmp = join(debDir, `dl-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    sh('apt-get', ['download', '-q', `${kernel.name}=${kernel.version}`], { cwd: tmp });
    const got = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!got) throw new Error('apt-get download produced no .deb');
    renameSync(join(tmp, got), deb);
    rmSync(tmp, { recursive: true, force: true });
  }
  return deb;
}

/** The concrete kernel package the meta package points at, and its version. */
function kernelPackage(): { name: string; version: string } {
  const lookup = () => {
    const deps = sh('apt-cache', ['depends', KERNEL_META]);
    const name = /Depends: (linux-image-[\w.-]+-cloud-amd64)/.exec(deps)?.[1];
    if (!name) return undefined;
    const version = /Candidate: (\S+)/.exec(sh('apt-cache', ['policy', name]))?.[1];
    return version && version !== '(none)' ? { name, version } : undefined;
  };
  let found: { name: string; version: string } | undefined;
  try { found = lookup(); } catch { /* no lists yet */ }
  if (!found) {
    log('apt lists have no cloud kernel: apt-get update');
    sh('apt-get', ['update', '-qq']);
    found = lookup();
  }
  if (!found) throw new Error(`cannot find a ${KERNEL_META} kernel package in apt`);
  return found;
}

function dpkgVersion(pkg: string): string {
  return sh('dpkg-query', ['-W', '-f=${Version}', pkg]);
}

/** Regular files under dir (recursive, sorted); none if dir is missing. */
function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort();
}

function hashFiles(paths: string[]): string {
  const h = createHash('sha256');
  const repo = resolve(HERE, '..');
  for (const p of paths) h.update(p.startsWith(repo) ? p.slice(repo.length) : p).update(readFileSync(p));
  return h.digest('hex');
}

/** Every input that changes the built image. Cheap to compute (no hashing of big binaries). */
function inputs() {
  const node = statSync(process.execPath);
  const guestDir = join(HERE, 'guest');
  return {
    kernel: kernelPackage(),
    busybox: dpkgVersion('busybox-static'),
    e2fsprogs: dpkgVersion('e2fsprogs'),
    node: { path: process.execPath, version: process.version, size: node.size, mtime: node.mtimeMs },
    tools: HOST_TOOLS.map((t) => `${t}:${statSync(t).mtimeMs}`),
    guestAgent: guestAgentPackage(),
    sources: hashFiles([fileURLToPath(import.meta.url), ...listFiles(guestDir), ...listFiles(GUEST_BUILD)]),
  };
}

export function imageKey(): string {
  return createHash('sha256').update(JSON.stringify(inputs())).digest('hex').slice(0, 16);
}

/** Returns the cached image for the current inputs, building it first if needed. */
export async function ensureGuestImage(): Promise<GuestImage> {
  const key = imageKey();
  const dir = join(cacheRoot(), 'images', key);
  const manifest = join(dir, 'manifest.json');
  if (existsSync(manifest)) return JSON.parse(readFileSync(manifest, 'utf8')) as GuestImage;
  const t0 = Date.now();
  log(`building guest image ${key} in ${dir}`);
  const work = `${dir}.tmp-${process.pid}`;
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  try {
    const image = await buildInto(work, key, dir);
    writeFileSync(join(work, 'manifest.json'), JSON.stringify(image, null, 2));
    try {
      renameSync(work, dir);
    } catch {
      rmSync(work, { recursive: true, force: true }); // another build won the race
    }
    log(`guest image ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    pruneOldImages(key);
    return JSON.parse(readFileSync(manifest, 'utf8')) as GuestImage;
  } catch (e) {
    rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

async function buildInto(work: string, key: string, finalDir: string): Promise<GuestImage> {
  const step = (msg: string) => log(`  ${msg}`);
  const kernel = kernelPackage();

  step(`kernel ${kernel.name} ${kernel.version}`);
  const deb = kernelDeb(kernel, step);
  const kx = join(work, 'kernel-x');
  sh('dpkg-deb', ['-x', deb, kx]);
  const kver = readdirSync(join(kx, 'lib/modules'))[0]!;
  copyFileSync(join(kx, 'boot', `vmlinuz-${kver}`), join(work, 'vmlinuz'));

  step('initramfs (busybox + virtio modules)');
  const ird = join(work, 'initramfs');
  for (const d of ['bin', 'dev', 'proc', 'sys', 'modules', 'newroot']) mkdirSync(join(ird, d), { recursive: true });
  copyFileSync('/bin/busybox', join(ird, 'bin/busybox'));
  chmodSync(join(ird, 'bin/busybox'), 0o755);
  symlinkSync('busybox', join(ird, 'bin/sh'));
  const order = moduleOrder(join(kx, 'lib/modules', kver));
  for (const m of order) copyFileSync(m.path, join(ird, 'modules', `${m.name}.ko`));
  writeFileSync(join(ird, 'modules/order'), order.map((m) => m.name).join('\n') + '\n');
  copyFileSync(join(HERE, 'guest/initramfs-init'), join(ird, 'init'));
  chmodSync(join(ird, 'init'), 0o755);
  execFileSync('sh', ['-c', `cd "${ird}" && find . | cpio -o -H newc --quiet | gzip -1 > "${join(work, 'initrd.img')}"`]);
  rmSync(ird, { recursive: true });
  rmSync(kx, { recursive: true });

  step('root filesystem (busybox, node, tools, control agent)');
  const rootDir = join(work, 'rootfs');
  buildRootTree(rootDir);
  addGuestAgent(rootDir, step);
  await esbuild({
    entryPoints: [join(HERE, 'guest/ctl-agent.ts')],
    outfile: join(rootDir, 'opt/livemr/ctl-agent.mjs'),
    bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error',
  });
  const rootBytes = Number(sh('du', ['-sb', rootDir]).split('\t')[0]);
  const rootSize = Math.ceil((rootBytes * 1.15 + 96 * 1024 * 1024) / (1 << 20)) * (1 << 20);
  makeExt4(join(work, 'root.raw'), rootSize, { dir: rootDir, label: 'root' });
  toQcow2(join(work, 'root.raw'), join(work, 'root.qcow2'));
  rmSync(rootDir, { recursive: true });

  step('data disks (whole-disk ext4, and ext4 on partition 1 at an odd offset)');
  makeExt4(join(work, 'data.raw'), DATA_DISK_BYTES, { label: 'data' });
  toQcow2(join(work, 'data.raw'), join(work, 'data.qcow2'));
  const pdataRaw = join(work, 'pdata.raw');
  execFileSync('truncate', ['-s', String(DATA_DISK_BYTES), pdataRaw]);
  const partSectors = (DATA_DISK_BYTES - PDATA_PART_START) / 512 - 2048;
  execFileSync('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', pdataRaw], {
    input: `label: dos\nstart=${PDATA_PART_START / 512}, size=${partSectors}, type=83\n`,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  makeExt4(pdataRaw, partSectors * 512, { label: 'pdata', offset: PDATA_PART_START });
  toQcow2(pdataRaw, join(work, 'pdata.qcow2'));

  const at = (f: string) => join(finalDir, f);
  return {
    key, dir: finalDir, kernelVersion: kver,
    vmlinuz: at('vmlinuz'), initrd: at('initrd.img'), root: at('root.qcow2'),
    data: at('data.qcow2'), pdata: at('pdata.qcow2'), pdataFsOffset: PDATA_PART_START,
  };
}

/**
 * Keeps the image cache bounded: drops images other than `keep` that are over a day old (a younger
 * one may still back a running test VM's overlays), and leftovers of interrupted builds.
 */
function pruneOldImages(keep: string): void {
  const root = join(cacheRoot(), 'images');
  const dayAgo = Date.now() - 24 * 3600 * 1000;
  for (const name of readdirSync(root)) {
    if (name === keep) continue;
    const dir = join(root, name);
    if (statSync(dir).mtimeMs < dayAgo) rmSync(dir, { recursive: true, force: true });
  }
}

/** Wanted modules and their dependencies, dependencies first (read from each .ko's modinfo). */
function moduleOrder(modRoot: string): { name: string; path: string }[] {
  const all = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ko')) all.set(e.name.slice(0, -3).replace(/-/g, '_'), p);
    }
  };
  walk(join(modRoot, 'kernel'));
  const order: { name: string; path: string }[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    const path = all.get(name);
    if (!path) throw new Error(`kernel module ${name} not in the package (built in?)`);
    const info = readFileSync(path).toString('latin1');
    const deps = /\0depends=([^\0]*)\0/.exec(info)?.[1] ?? '';
    for (const d of deps.split(',').filter(Boolean)) visit(d.replace(/-/g, '_'));
    order.push({ name, path });
  };
  WANTED_MODULES.forEach(visit);
  return order;
}

function copyWithLibs(bin: string, rootDir: string, dest = bin): void {
  mkdirSync(join(rootDir, dirname(dest)), { recursive: true });
  copyFileSync(bin, join(rootDir, dest));
  chmodSync(join(rootDir, dest), 0o755);
  const ldd = sh('ldd', [bin]);
  for (const m of ldd.matchAll(/(\/\S+) \(0x/g)) {
    const lib = m[1]!;
    const target = join(rootDir, lib);
    if (existsSync(target)) continue;
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(lib, target); // follows symlinks, like cp -L
  }
}

function buildRootTree(rootDir: string): void {
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc/livemr/boot.d', 'dev', 'proc', 'sys', 'tmp', 'run',
    'mnt', 'root', 'home/alice', 'opt/livemr', 'var/lib/livemr', 'lib64']) {
    mkdirSync(join(rootDir, d), { recursive: true });
  }
  copyFileSync('/bin/busybox', join(rootDir, 'bin/busybox'));
  chmodSync(join(rootDir, 'bin/busybox'), 0o755);
  const own = new Set(HOST_TOOLS.map((t) => basename(t)));
  own.add('busybox');
  for (const applet of sh('/bin/busybox', ['--list-full']).split('\n').filter(Boolean)) {
    if (own.has(basename(applet)) || applet === 'sbin/init' || applet === 'linuxrc') continue;
    const link = join(rootDir, applet);
    if (!existsSync(link)) symlinkSync('/bin/busybox', link);
  }
  // The host's node, stripped of symbols (~12 MB smaller), with the libraries it links.
  copyWithLibs(process.execPath, rootDir, '/usr/bin/node');
  execFileSync('strip', ['--strip-all', join(rootDir, 'usr/bin/node')]);
  for (const t of HOST_TOOLS) copyWithLibs(t, rootDir);
  copyFileSync(join(HERE, 'guest/init'), join(rootDir, 'sbin/init'));
  for (const f of listFiles(GUEST_BUILD)) {
    const dest = join(rootDir, 'opt/livemr', f.slice(GUEST_BUILD.length + 1));
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(f, dest);
  }
  for (const f of listFiles(join(HERE, 'guest/boot.d'))) {
    copyFileSync(f, join(rootDir, 'etc/livemr/boot.d', basename(f)));
    chmodSync(join(rootDir, 'etc/livemr/boot.d', basename(f)), 0o755);
  }
  chmodSync(join(rootDir, 'sbin/init'), 0o755);
  writeFileSync(join(rootDir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:alice:/home/alice:/bin/sh\n');
  writeFileSync(join(rootDir, 'etc/group'), 'root:x:0:\nalice:x:1000:\n');
  writeFileSync(join(rootDir, 'etc/hostname'), 'livemr-guest\n');
  chmodSync(join(rootDir, 'tmp'), 0o1777);
}

// --- QEMU guest agent (a baseline for bench/host-read.ts) ------------------------------------------
// Debian's qemu-ga, unpacked from its .deb (nothing installed on the host) into /usr/sbin with the
// libraries ldd lists; boot.d/40-qemu-guest-agent starts it when a port org.qemu.guest_agent.0 exists.
const GUEST_AGENT_PKG = 'qemu-guest-agent';

function guestAgentPackage(): { name: string; version: string } {
  const version = /Candidate: (\S+)/.exec(sh('apt-cache', ['policy', GUEST_AGENT_PKG]))?.[1];
  if (!version || version === '(none)') throw new Error(`apt has no ${GUEST_AGENT_PKG} candidate (apt-get update?)`);
  return { name: GUEST_AGENT_PKG, version };
}

function addGuestAgent(rootDir: string, step: (msg: string) => void): void {
  const { name, version } = guestAgentPackage();
  step(`${name} ${version}`);
  const debDir = join(cacheRoot(), 'debs');
  mkdirSync(debDir, { recursive: true });
  const deb = join(debDir, `${name}_${version.replace(/:/g, '%3a')}.deb`);
  if (!existsSync(deb)) {
    const tmp = join(debDir, `dl-${process.pid}`);
    mkdirSync(tmp, { recursive: true });
    sh('apt-get', ['download', '-q', `${name}=${version}`], { cwd: tmp });
    const got = readdirSync(tmp).find((f) => f.endsWith('.deb'));
    if (!got) throw new Error(`apt-get download ${name} produced no .deb`);
    renameSync(join(tmp, got), deb);
    rmSync(tmp, { recursive: true, force: true });
  }
  const x = join(dirname(rootDir), 'qga-x');
  sh('dpkg-deb', ['-x', deb, x]);
  copyWithLibs(join(x, 'usr/sbin/qemu-ga'), rootDir, '/usr/sbin/qemu-ga');
  rmSync(x, { recursive: true });
}

function makeExt4(file: string, bytes: number, o: { dir?: string; label: string; offset?: number }): void {
  const ext = ['lazy_itable_init=0', 'lazy_journal_init=0', ...(o.offset ? [`offset=${o.offset}`] : [])];
  const args = ['-q', '-F', '-t', 'ext4', '-b', '4096', '-m', '0', '-L', o.label, '-E', ext.join(','),
    ...(o.dir ? ['-d', o.dir] : []), file, `${Math.floor(bytes / 4096)}`];
  execFileSync('mke2fs', args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

function toQcow2(raw: string, qcow2: string): void {
  execFileSync('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  rmSync(raw);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  ensureGuestImage().then(
    (img) => log(`guest image ${img.key}: ${img.dir}`),
    (e: Error) => {
      log(`FAILED: ${e.message}`);
      process.exit(1);
    },
  );
}
