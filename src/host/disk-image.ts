// How a guest disk as QEMU runs it (src/qmp VmDisk) is opened by the image mapper: formats, the
// backing chain from the live block graph, a qcow2 external data file, the window of a raw node
// opened with `offset`/`size`, and QEMU's virtual size as the bound of a raw disk. A layer whose
// options the mapper does not understand is refused instead of mapped as if it had none.
import type { OpenImageOptions } from '../image/index.js';
import type { VmDisk } from '../qmp/index.js';

export function diskImageOptions(d: VmDisk): { options: OpenImageOptions } | { refused: string } {
  if (d.format !== 'qcow2' && d.format !== 'raw') return { refused: `format ${d.format} is not supported for zero-copy reads` };
  const bad = d.chain.find((l) => l.unsupported !== undefined || (l.format !== 'qcow2' && l.format !== 'raw'));
  if (bad) return { refused: `layer ${bad.file}: ${bad.unsupported ?? `format ${bad.format} is not supported`}` };
  const top = d.chain[0];
  return {
    options: {
      format: d.format,
      backingChain: d.chain.slice(1).map((l) => ({ file: l.file, format: l.format as 'qcow2' | 'raw', ...(l.window ? { window: l.window } : {}) })),
      ...(top?.dataFile ? { dataFile: top.dataFile } : {}),
      ...(top?.window ? { window: top.window } : {}),
      // a raw disk's size is QEMU's (the file may have grown on the host since QEMU opened it)
      ...(d.format === 'raw' ? { virtualSize: d.virtualSize } : {}),
    },
  };
}
