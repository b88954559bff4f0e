// `livemr image map|read`: the disk image mapper from the command line.
import { UsageError } from './main.js';
import { formatQemuMapJson, openImage, toQemuMap, type BackingSpec, type ImageFormat, type OpenImageOptions } from '../image/index.js';

const USAGE = `usage:
  livemr image map IMAGE [--json] [OPTIONS]          extents, like qemu-img map (--json: its JSON shape + "file")
  livemr image read IMAGE OFFSET LENGTH [OPTIONS]    the guest-visible bytes, to stdout
options:
  -f, --format raw|qcow2         format of IMAGE (probed by default)
  --backing-chain LIST           layers below IMAGE, nearest first, comma-separated [FORMAT:]PATH
                                 ('' = no backing file); default: the backing names in the headers
  --snapshot NAME                map an internal snapshot (id or name) instead of the active L1
  --data-file PATH               external data file of IMAGE
  --offset N --length N          (map) restrict to a guest range`;

function parseChain(list: string): BackingSpec[] {
  if (list === '') return [];
  return list.split(',').map((item) => {
    const m = /^(raw|qcow2):(.+)$/.exec(item);
    return m ? { format: m[1] as ImageFormat, file: m[2]! } : { file: item };
  });
}

function parseNumber(s: string | undefined, what: string): number {
  if (s === undefined || !/^(0x[0-9a-f]+|\d+)$/i.test(s)) throw new UsageError(`${what} must be a non-negative integer, got '${s ?? ''}'\n${USAGE}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} is too large`);
  return n;
}

interface Parsed { positional: string[]; json: boolean; open: OpenImageOptions; offset?: number; length?: number }

function parse(argv: string[]): Parsed {
  const out: Parsed = { positional: [], json: false, open: {} };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '--json') out.json = true;
    else if (a === '-f' || a === '--format') {
      const f = value();
      if (f !== 'raw' && f !== 'qcow2') throw new UsageError(`unknown format '${f}'`);
      out.open.format = f;
    } else if (a === '--backing-chain') out.open.backingChain = parseChain(value());
    else if (a === '--snapshot') out.open.snapshot = value();
    else if (a === '--data-file') out.open.dataFile = value();
    else if (a === '--offset') out.offset = parseNumber(value(), '--offset');
    else if (a === '--length') out.length = parseNumber(value(), '--length');
    else if (a === '-h' || a === '--help') throw new UsageError(USAGE);
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}\n${USAGE}`);
    else out.positional.push(a);
  }
  return out;
}

/** Write to stdout; resolves false once the reader has gone away (EPIPE), so output just stops. */
function write(chunk: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    process.stdout.write(chunk, (err) => resolve(!err));
  });
}

export async function run(argv: string[]): Promise<number> {
  process.stdout.on('error', () => {}); // EPIPE is reported to write()'s callback
  const [sub, ...rest] = argv;
  const p = parse(rest);
  if (sub === 'map') {
    if (p.positional.length !== 1) throw new UsageError(USAGE);
    const img = await openImage(p.positional[0]!, p.open);
    try {
      const offset = p.offset ?? 0;
      const entries = toQemuMap(await img.map(offset, p.length ?? img.size - offset));
      if (p.json) {
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
  }
  if (sub === 'read') {
    if (p.positional.length !== 3) throw new UsageError(USAGE);
    const offset = parseNumber(p.positional[1], 'OFFSET');
    const length = parseNumber(p.positional[2], 'LENGTH');
    const img = await openImage(p.positional[0]!, p.open);
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
  }
  throw new UsageError(USAGE);
}
