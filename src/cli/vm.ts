// `livemr vm info QMP_SOCKET [--json]`: the VM's run state and disks with their backing chains.

import { describeVm, QmpClient, type VmModel } from '../qmp/index.js';
import { command } from './args.js';

export const commands = [command({
  name: 'vm info',
  summary: "a running VM's run state and disks with their backing chains, through its QMP socket",
  args: 'QMP_SOCKET',
  positionals: 1,
  options: { json: { type: 'boolean', help: 'the model as JSON' } },
  async run({ values, positionals }) {
    const client = await QmpClient.connect(positionals[0]!);
    try {
      const model = await describeVm(client);
      process.stdout.write(values.json ? `${JSON.stringify(model, null, 2)}\n` : formatModel(model));
      return 0;
    } finally {
      await client.close();
    }
  },
})];

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
