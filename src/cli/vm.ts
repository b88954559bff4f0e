// `livemr vm info QMP_SOCKET [--json]`: the VM's run state and disks with their backing chains.

import { QmpClient } from '../qmp/protocol/client.js';
import { describeVm, type VmModel } from '../qmp/vm.js';
import { UsageError } from './main.js';

const USAGE = 'usage: livemr vm info QMP_SOCKET [--json]';

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '-h' || sub === '--help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (sub !== 'info') throw new UsageError(USAGE);
  const json = rest.includes('--json');
  const positional = rest.filter((a) => a !== '--json');
  if (positional.length !== 1 || positional[0]!.startsWith('-')) throw new UsageError(USAGE);
  const client = await QmpClient.connect(positional[0]!);
  try {
    const model = await describeVm(client);
    process.stdout.write(json ? `${JSON.stringify(model, null, 2)}\n` : formatModel(model));
    return 0;
  } finally {
    await client.close();
  }
}

export function formatModel(m: VmModel): string {
  const out = [`status: ${m.status}`, `disks: ${m.disks.length}`];
  for (const d of m.disks) {
    const name = d.qdevId ?? d.device ?? d.qomPath ?? '?';
    out.push('', `${name}  serial=${d.serial ?? '-'}  node=${d.nodeName}  file-node=${d.fileNodeName}${d.readOnly ? '  read-only' : ''}`);
    d.chain.forEach((l, i) => {
      const extra = l.dataFile ? `  data-file=${l.dataFile}` : '';
      out.push(`  ${(i === 0 ? 'active' : `back ${i}`).padEnd(7)} ${l.format.padEnd(6)} ${l.file}  (${l.nodeName}, ${l.virtualSize} bytes)${extra}`);
    });
  }
  return `${out.join('\n')}\n`;
}
