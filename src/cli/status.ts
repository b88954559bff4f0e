// `livemr status [--state DIR | --config FILE] [--json]`: asks a running agent over its root-only
// unix socket (DIR/agent.sock) and prints VMs, channels, shared files, pending ranges, freshness lag.
import type { AgentStatus } from '../host/agent.js';
import { agentRequest, stateDirFromArgs } from '../host/agent-client.js';
import { UsageError } from './main.js';

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

export async function run(argv: string[]): Promise<number> {
  if (argv.some((a) => a.startsWith('--') && !['--state', '--config', '--json'].includes(a))) {
    throw new UsageError('usage: livemr status [--state DIR | --config FILE] [--json]');
  }
  const s = await agentRequest<AgentStatus>(await stateDirFromArgs(argv), 'GET', '/status');
  if (argv.includes('--json')) {
    process.stdout.write(JSON.stringify(s, null, 2) + '\n');
    return 0;
  }
  const out: string[] = [`host ${s.host}  mount ${s.mountpoint}  ${s.compositions} composed files  up ${Math.round(s.uptimeMs / 1000)} s`];
  for (const vm of s.vms) {
    out.push(`vm ${vm.name}: qmp ${vm.qmp}${vm.runState ? ` (${vm.runState})` : ''}, channel ${vm.channel}` +
      `${vm.guest ? `, guest ${vm.guest.guestId}` : ''}, ${vm.files.length} shared files, ${vm.pendingRanges} pending ranges, freshness lag ${vm.freshnessLagMs} ms`);
    if (vm.lastError) out.push(`  last error: ${vm.lastError}`);
    for (const f of vm.files) {
      out.push(`  livemr_${f.name}  ${f.path} (${f.disk})  served ${mib(f.servedSize)} of ${mib(f.guestSize)}` +
        `${f.pendingRanges ? `, ${f.pendingRanges} pending` : ''}${f.refused ? `, REFUSED: ${f.refused}` : ''}`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  return 0;
}
