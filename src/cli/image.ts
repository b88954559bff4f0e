// `livemr image map|read`: the disk image mapper from the command line.
import { command, parseCount, UsageError, type Values } from './args.js';
import { formatQemuMapJson, openImage, toQemuMap, type BackingSpec, type ImageFormat, type OpenImageOptions } from '../image/index.js';

const OPEN = {
  format: { type: 'string', short: 'f', arg: 'raw|qcow2', help: 'format of IMAGE (probed by default)' },
  'backing-chain': { type: 'string', arg: 'LIST', help: "layers below IMAGE, nearest first, comma-separated [FORMAT:]PATH ('' = no backing file); default: the backing names in the headers" },
  snapshot: { type: 'string', arg: 'NAME', help: 'map an internal snapshot (id or name) instead of the active L1' },
  'data-file': { type: 'string', arg: 'PATH', help: 'external data file of IMAGE' },
} as const;

function parseChain(list: string): BackingSpec[] {
  if (list === '') return [];
  return list.split(',').map((item) => {
    const m = /^(raw|qcow2):(.+)$/.exec(item);
    return m ? { format: m[1] as ImageFormat, file: m[2]! } : { file: item };
  });
}

function openOptions(v: Values<typeof OPEN>): OpenImageOptions {
  const o: OpenImageOptions = {};
  if (v.format !== undefined) {
    if (v.format !== 'raw' && v.format !== 'qcow2') throw new UsageError(`unknown format '${v.format}'`);
    o.format = v.format;
  }
  if (v['backing-chain'] !== undefined) o.backingChain = parseChain(v['backing-chain']);
  if (v.snapshot !== undefined) o.snapshot = v.snapshot;
  if (v['data-file'] !== undefined) o.dataFile = v['data-file'];
  return o;
}

/** Write to stdout; resolves false once the reader has gone away (EPIPE), so output just stops. */
function write(chunk: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    process.stdout.write(chunk, (err) => resolve(!err));
  });
}

const map = command({
  name: 'image map',
  summary: 'extents of IMAGE, like qemu-img map (--json: its JSON shape plus "file")',
  args: 'IMAGE',
  positionals: 1,
  options: {
    json: { type: 'boolean', help: 'qemu-img map --output=json shape, plus the file of each extent' },
    offset: { type: 'string', arg: 'N', help: 'restrict to the guest range starting at N' },
    length: { type: 'string', arg: 'N', help: 'restrict to N bytes of guest range' },
    ...OPEN,
  },
  async run({ values, positionals }) {
    process.stdout.on('error', () => {}); // EPIPE is reported to write()'s callback
    const img = await openImage(positionals[0]!, openOptions(values));
    try {
      const offset = values.offset === undefined ? 0 : parseCount(values.offset, '--offset');
      const length = values.length === undefined ? img.size - offset : parseCount(values.length, '--length');
      const entries = toQemuMap(await img.map(offset, length));
      if (values.json) {
        await write(formatQemuMapJson(entries));
      } else {
        const lines = ['Offset           Length           Mapped to        Depth  Kind        File'];
        for (const e of entries) {
          const kind = !e.present ? 'unalloc' : e.zero ? 'zero' : e.offset === undefined ? 'compressed' : 'data';
          lines.push(`0x${e.start.toString(16).padEnd(14)} 0x${e.length.toString(16).padEnd(14)} ${e.offset === undefined ? '-'.padEnd(16) : '0x' + e.offset.toString(16).padEnd(14)} ${String(e.depth).padEnd(6)} ${kind.padEnd(11)} ${e.file ?? ''}`);
        }
        await write(Buffer.from(lines.join('\n') + '\n'));
      }
    } finally {
      await img.close();
    }
    return 0;
  },
});

const read = command({
  name: 'image read',
  summary: 'the guest-visible bytes of IMAGE at OFFSET, LENGTH bytes, to stdout',
  args: 'IMAGE OFFSET LENGTH',
  positionals: 3,
  options: OPEN,
  async run({ values, positionals }) {
    process.stdout.on('error', () => {});
    const offset = parseCount(positionals[1], 'OFFSET');
    const length = parseCount(positionals[2], 'LENGTH');
    const img = await openImage(positionals[0]!, openOptions(values));
    try {
      const chunk = 4 * 1024 * 1024;
      if (offset + length > img.size) throw new UsageError(`range ${offset}+${length} is outside the disk (${img.size} bytes)`);
      for (let at = offset; at < offset + length; at += chunk) {
        if (!(await write(await img.read(at, Math.min(chunk, offset + length - at))))) break;
      }
    } finally {
      await img.close();
    }
    return 0;
  },
});

export const commands = [map, read];
