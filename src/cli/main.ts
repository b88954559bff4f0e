// `livemr` command dispatcher. Each concept owns its subcommands in src/cli/<name>.ts, exporting
// `run(argv): Promise<number>`; they are loaded lazily so one broken area never breaks the others.

type Runner = { run(argv: string[]): Promise<number> };

const commands: Record<string, { summary: string; load: () => Promise<Runner> }> = {
  image: { summary: 'map / read guest disk images (raw, qcow2)', load: () => import('./image.js') },
  qmp: { summary: 'send one QMP command to a QEMU monitor socket', load: () => import('./qmp.js') },
  vm: { summary: 'inspect a running VM through QMP (disks, backing chains)', load: () => import('./vm.js') },
  mount: { summary: 'mount the composed files (FUSE)', load: () => import('./fs.js') },
  umount: { summary: 'unmount the composed files', load: () => import('./fs.js') },
  compose: { summary: 'create or extend a composed file livemr_NAME', load: () => import('./fs.js') },
  decompose: { summary: 'remove a composed file', load: () => import('./fs.js') },
  host: { summary: 'run the host agent (VMs → shared files on the mount)', load: () => import('./host.js') },
  biglog: { summary: 'join shared files of several VMs into one growing file', load: () => import('./biglog.js') },
  status: { summary: 'status of a running host agent', load: () => import('./status.js') },
  ls: { summary: 'list composed files', load: () => import('./fs.js') },
  hdfs: { summary: 'WebHDFS gateway for Hadoop, compose-from-local', load: () => import('./hdfs.js') },
  cache: { summary: 'AC-SSD cache/IOPS weights: plan, run the loop', load: () => import('./cache.js') },
  panel: { summary: 'control panel: REST API and web UI', load: () => import('./panel.js') },
};

export class UsageError extends Error {}

function usage(): string {
  const lines = Object.entries(commands).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
  return `usage: livemr COMMAND [ARGS]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`livemr: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  try {
    const mod = await cmd.load();
    // fs.ts serves several commands; it receives its own name first.
    return await mod.run(name === 'mount' || name === 'umount' || name === 'compose' || name === 'decompose' || name === 'ls' ? argv : rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`livemr ${name}: ${err.message}\n`);
      return 2;
    }
    const e = err as Error;
    process.stderr.write(`livemr ${name}: ${e.name}: ${e.message}\n`);
    return 1;
  }
}
