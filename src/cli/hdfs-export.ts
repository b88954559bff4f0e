// `livemr hdfs export`: composed files → an HDFS PROVIDED image + alias map (docs/hdfs.md).
import { exportProvided, type ExportOptions } from '../provided/index.js';
import { command, parseCount, UsageError } from './args.js';

function parseSize(v: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(v);
  const n = m ? Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase()) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`bad size '${v}'`);
  return n;
}

export const exportCmd = command({
  name: 'hdfs export',
  summary: 'snapshot composed files on the FUSE mount as HDFS PROVIDED storage (fsimage + alias map) for a NameNode and DataNode',
  args: '[NAME...]',
  positionals: [0, Infinity],
  options: {
    mount: { type: 'string', arg: 'DIR', help: 'the FUSE mount of the composed files (required): names and lengths are taken here' },
    out: { type: 'string', arg: 'DIR', help: 'output directory, must not exist (required)' },
    'mount-path': { type: 'string', arg: 'DIR', help: "the mount's path as the DataNode sees it (default: --mount)" },
    'block-size': { type: 'string', arg: 'BYTES|128m', help: 'HDFS block size of the exported files (default 128m)' },
    owner: { type: 'string', arg: 'USER', help: "the files' owner in HDFS (default livemr)" },
    group: { type: 'string', arg: 'GROUP', help: "the files' group in HDFS (default livemr)" },
    'cluster-id': { type: 'string', arg: 'CID', help: 'the NameNode cluster id (default: a new CID-<uuid>)' },
    'block-pool-id': { type: 'string', arg: 'BPID', help: 'the block pool id (default: a new one)' },
    'layout-version': { type: 'string', arg: 'N', help: "the NameNode's layout version (default -67: Hadoop 3.4; -66 for 3.3)" },
    'start-block-id': { type: 'string', arg: 'N', help: 'block ids start after N (default 1073741824, as fs2img)' },
    'allow-growth': { type: 'string', arg: "x,y|'*'", help: "files that may grow after the export: no path handle, so reads go on past changes (default none: any change to a file fails its reads)" },
    json: { type: 'boolean', help: 'print the result as JSON' },
  },
  notes: 'NAMEs are composed files (livemr_x or x); none: every livemr_* file on the mount.\n' +
    'The image is a snapshot: a file that changes later fails to read, one in --allow-growth keeps its exported length;\n' +
    're-export and restart the NameNode and DataNode to refresh.',
  async run({ values, positionals }) {
    if (values.mount === undefined) throw new UsageError('--mount DIR is required');
    if (values.out === undefined) throw new UsageError('--out DIR is required');
    const o: ExportOptions = { mount: values.mount, out: values.out, names: positionals };
    if (values['mount-path'] !== undefined) o.mountPath = values['mount-path'];
    if (values['block-size'] !== undefined) o.blockSize = parseSize(values['block-size']);
    if (values.owner !== undefined) o.owner = values.owner;
    if (values.group !== undefined) o.group = values.group;
    if (values['cluster-id'] !== undefined) o.clusterId = values['cluster-id'];
    if (values['block-pool-id'] !== undefined) o.blockPoolId = values['block-pool-id'];
    if (values['layout-version'] !== undefined) {
      const v = values['layout-version'];
      if (!/^-\d+$/.test(v)) throw new UsageError(`--layout-version must be a negative integer, got '${v}'`);
      o.layoutVersion = Number(v);
    }
    const g = values['allow-growth'];
    if (g !== undefined) o.allowGrowth = g === '*' ? '*' : g.split(',').filter(Boolean);
    if (values['start-block-id'] !== undefined) o.startBlockId = parseCount(values['start-block-id'], '--start-block-id');
    const r = exportProvided(o);
    if (values.json) {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      return 0;
    }
    const blocks = r.files.reduce((n, f) => n + f.blocks.length, 0);
    const bytes = r.files.reduce((n, f) => n + f.length, 0);
    process.stdout.write([
      `exported ${r.files.length} files (${bytes} bytes, ${blocks} PROVIDED blocks of ${r.blockSize}) to ${r.out}`,
      ...r.files.map((f) => `  /${f.name}  ${f.length} bytes  ${f.blocks.length} blocks  → ${f.uri}${f.exact ? '' : '  (may grow)'}`),
      `NameNode:  dfs.namenode.name.dir = file://${r.nameDir}  (it writes its edits there)`,
      `alias map: ${r.aliasMap}`,
      `DataNode:  dfs.datanode.data.dir += ${r.providedDataDir}`,
      `settings:  ${r.siteXml}`,
      '',
    ].join('\n'));
    return 0;
  },
});
