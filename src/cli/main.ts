// `livemr` command dispatcher. Each concept owns its commands in src/cli/<name>.ts, exporting
// `commands` (one option table each, src/cli/args.ts); modules are loaded lazily so one broken area
// never breaks the others. Exit codes: 0 ok, 1 failure, 2 usage error (docs/cli.md).
import { readFileSync } from 'node:fs';
import { UsageError, type Command } from './args.js';

export { UsageError } from './args.js';

type Module = { commands: Command[] };

const topLevel: Record<string, { summary: string; load: () => Promise<Module> }> = {
  image: { summary: 'map / read guest disk images (raw, qcow2)', load: () => import('./image.js') },
  qmp: { summary: 'send one QMP command to a QEMU monitor socket', load: () => import('./qmp.js') },
  vm: { summary: 'inspect a running VM through QMP (disks, backing chains)', load: () => import('./vm.js') },
  mount: { summary: 'mount the composed files (FUSE)', load: () => import('./fs.js') },
  umount: { summary: 'unmount the composed files', load: () => import('./fs.js') },
  compose: { summary: 'create or extend a composed file livemr_NAME', load: () => import('./fs.js') },
  decompose: { summary: 'remove a composed file', load: () => import('./fs.js') },
  ls: { summary: 'list composed files', load: () => import('./fs.js') },
  host: { summary: 'run the host agent (VMs → shared files on the mount)', load: () => import('./host.js') },
  biglog: { summary: 'join shared files of several VMs into one growing file', load: () => import('./biglog.js') },
  status: { summary: 'status of a running host agent', load: () => import('./status.js') },
  hdfs: { summary: 'WebHDFS gateway for Hadoop, aggregator, compose-from-local, PROVIDED export', load: () => import('./hdfs.js') },
  cache: { summary: 'AC-SSD cache/IOPS weights: plan, run the loop', load: () => import('./cache.js') },
  panel: { summary: 'control panel: REST API and web UI', load: () => import('./panel.js') },
  doctor: { summary: 'check what this host needs (FUSE, QEMU, libvirt, kernel, directories)', load: () => import('./doctor.js') },
};

/** The package's version; package.json is two levels up from both src/cli/ and dist/cli/. */
export function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

function usage(): string {
  const lines = Object.entries(topLevel).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
  return [
    'usage: livemr COMMAND [ARGS]       livemr COMMAND --help       livemr help [COMMAND [SUBCOMMAND]]',
    '       livemr --version',
    '',
    'commands:',
    ...lines,
    '',
    'exit codes: 0 ok, 1 failure, 2 usage error',
    'environment: LIVEMR_STATE (default state directory, /var/lib/livemr)',
    '',
  ].join('\n');
}

function groupHelp(name: string, cmds: Command[]): string {
  const w = Math.max(...cmds.map((c) => c.name.length));
  return [`usage: livemr ${name} SUBCOMMAND [ARGS]   (livemr ${name} SUBCOMMAND --help for its options)`, '', topLevel[name]!.summary, '',
    'subcommands:', ...cmds.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`), ''].join('\n');
}

async function dispatch(name: string, rest: string[]): Promise<number> {
  const cmds = (await topLevel[name]!.load()).commands.filter((c) => c.name.split(' ')[0] === name);
  const single = cmds.find((c) => c.name === name);
  if (single) return single.invoke(rest);
  const [sub, ...args] = rest;
  if (sub === '-h' || sub === '--help') {
    process.stdout.write(groupHelp(name, cmds));
    return 0;
  }
  const cmd = sub === undefined ? undefined : cmds.find((c) => c.name === `${name} ${sub}`);
  if (!cmd) throw new UsageError(`${sub === undefined ? 'missing subcommand' : `unknown subcommand '${sub}'`}\n${groupHelp(name, cmds)}`);
  return cmd.invoke(args);
}

export async function main(argv: string[]): Promise<number> {
  let [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    process.stdout.write(`livemr ${version()}\n`);
    return 0;
  }
  if (name === 'help' && rest.length) [name, ...rest] = [...rest, '--help'];
  if (name === undefined || name === 'help' || name === '-h' || name === '--help') {
    (name === undefined ? process.stderr : process.stdout).write(usage());
    return name === undefined ? 2 : 0;
  }
  if (!Object.hasOwn(topLevel, name)) {
    process.stderr.write(`livemr: unknown command '${name}'\n${usage()}`);
    return 2;
  }
  try {
    return await dispatch(name, rest);
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
