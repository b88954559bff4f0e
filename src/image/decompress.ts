// Decompression of one qcow2 compressed cluster. The stored stream may be followed by unrelated
// bytes (the tail of its last sector, or the next compressed cluster), and must inflate to exactly
// one cluster; output is never allowed to grow beyond the cluster size.
import { inflateRawSync, constants } from 'node:zlib';
import { decompress as zstdDecompress } from 'fzstd';

/** Throws a plain Error on bad data; the caller wraps it into a CorruptImageError. */
export function decompressCluster(kind: 'deflate' | 'zstd', input: Buffer, clusterSize: number): Buffer {
  return kind === 'deflate' ? inflateCluster(input, clusterSize) : unzstdCluster(input, clusterSize);
}

function inflateCluster(input: Buffer, clusterSize: number): Buffer {
  // Z_SYNC_FLUSH: like QEMU, accept a stream that has produced a full cluster even if its end
  // marker is cut off; maxOutputLength bounds memory.
  let out: Buffer;
  try {
    out = inflateRawSync(input, { finishFlush: constants.Z_SYNC_FLUSH, maxOutputLength: clusterSize });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new Error('deflate stream inflates beyond one cluster', { cause: err });
    throw err;
  }
  if (out.length !== clusterSize) throw new Error(`deflate stream inflates to ${out.length} bytes, not one cluster (${clusterSize})`);
  return out;
}

function unzstdCluster(input: Buffer, clusterSize: number): Buffer {
  const frame = input.subarray(0, zstdFrameLength(input, clusterSize));
  const out = Buffer.alloc(clusterSize);
  zstdDecompress(frame, out);
  return out;
}

/**
 * Length of the zstd frame at the start of `b` (RFC 8878 §3.1.1), checking it describes at most one
 * cluster. Walking the block headers tells where the frame ends, so trailing bytes are ignored.
 */
export function zstdFrameLength(b: Buffer, clusterSize: number): number {
  if (b.length < 6 || b.readUInt32LE(0) !== 0xfd2fb528) throw new Error('not a zstd frame');
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6, singleSegment = (fhd >> 5) & 1, checksum = (fhd >> 2) & 1, dictFlag = fhd & 3;
  if (fhd & 0x08) throw new Error('zstd frame header reserved bit set');
  if (dictFlag !== 0) throw new Error('zstd dictionaries are not used by qcow2');
  let at = 5 + (singleSegment ? 0 : 1);
  const fcsBytes = fcsFlag === 0 ? singleSegment : 1 << fcsFlag;
  if (at + fcsBytes > b.length) throw new Error('truncated zstd frame header');
  if (fcsBytes > 0) {
    let fcs = 0;
    for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + b[at + i]!;
    if (fcsBytes === 2) fcs += 256;
    if (fcs !== clusterSize) throw new Error(`zstd frame content size ${fcs} is not one cluster (${clusterSize})`);
  }
  at += fcsBytes;
  // Each block header advances at least 3 bytes, so this loop ends.
  for (;;) {
    if (at + 3 > b.length) throw new Error('truncated zstd block header');
    const bh = b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16);
    const last = bh & 1, type = (bh >> 1) & 3, size = bh >>> 3;
    if (type === 3) throw new Error('reserved zstd block type');
    at += 3 + (type === 1 ? 1 : size);
    if (at > b.length) throw new Error('truncated zstd block');
    if (last) break;
  }
  at += checksum * 4;
  if (at > b.length) throw new Error('truncated zstd checksum');
  return at;
}
