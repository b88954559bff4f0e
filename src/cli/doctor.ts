// `livemr doctor`: one verdict per check of what this host needs; exit 1 when one fails.
import { existsSync, readFileSync } from 'node:fs';
import { failed, formatResults, hostProbe, runChecks, type CheckResult, type DoctorOptions } from '../doctor/index.js';
import { loadConfig } from '../host/index.js';
import { command } from './args.js';

const DEFAULT_CONFIG = '/etc/livemr/agent.json';

/** The libvirt URI a configuration names (top-level "libvirt": URI or {"uri": URI}), if any. */
function libvirtOf(file: string): string | undefined {
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as { libvirt?: unknown };
    const l = raw.libvirt;
    if (typeof l === 'string') return l;
    if (typeof l === 'object' && l !== null && typeof (l as { uri?: unknown }).uri === 'string') return (l as { uri: string }).uri;
  } catch { /* loadConfig reports it */ }
  return undefined;
}

export const commands = [command({
  name: 'doctor',
  summary: 'check what this host needs: FUSE, libfuse3 and the addon, QEMU, libvirt, kernel features, directories',
  options: {
    config: { type: 'string', arg: 'FILE', help: `the agent configuration to check against (default ${DEFAULT_CONFIG} when it exists)` },
    state: { type: 'string', arg: 'DIR', help: 'state directory (default: the configuration\'s, else $LIVEMR_STATE or /var/lib/livemr)' },
    'run-dir': { type: 'string', arg: 'DIR', help: 'run directory for sockets (default: the configuration\'s, else /run/livemr)' },
    libvirt: { type: 'string', arg: 'URI', help: 'check that libvirt answers at URI (default: the configuration\'s "libvirt", else not checked)' },
    json: { type: 'boolean', help: 'the verdicts as JSON' },
  },
  notes: 'Verdicts: OK, WARN (optional or degraded), FAIL (exit 1), SKIP (not configured).',
  async run({ values }) {
    const file = values.config ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
    const results: CheckResult[] = [];
    const o: DoctorOptions = { stateDir: values.state ?? process.env.LIVEMR_STATE ?? '/var/lib/livemr', runDir: values['run-dir'] ?? '/run/livemr' };
    if (file) {
      try {
        const cfg = loadConfig(file);
        results.push({ name: 'configuration', verdict: 'ok', detail: `${file}: ${cfg.vms.length} VMs` });
        o.stateDir = values.state ?? cfg.stateDir;
        o.runDir = values['run-dir'] ?? cfg.runDir;
        o.mountpoint = cfg.mountpoint;
        if (cfg.group) o.group = cfg.group;
      } catch (e) {
        results.push({ name: 'configuration', verdict: 'fail', detail: (e as Error).message });
      }
      const uri = libvirtOf(file);
      if (uri) o.libvirt = uri;
    } else results.push({ name: 'configuration', verdict: 'skip', detail: `no --config and no ${DEFAULT_CONFIG}` });
    if (values.libvirt) o.libvirt = values.libvirt;
    results.push(...(await runChecks(hostProbe, o)));
    process.stdout.write(values.json ? `${JSON.stringify(results, null, 2)}\n` : formatResults(results));
    return failed(results) ? 1 : 0;
  },
})];
