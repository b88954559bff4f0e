// Block lists of composed files. A composed file is not stored in HDFS blocks; the gateway reports
// fixed-size pseudo-blocks so that input formats split it and schedulers place tasks on the host
// whose disk images hold the data. The list follows the live length: a file that crosses a block
// boundary has one more block on the next request.

export interface Block {
  offset: number;
  length: number;
}

/** The blocks of a file of `size` bytes that overlap [offset, offset+length). */
export function blocksOf(size: number, blockSize: number, offset = 0, length = Number.MAX_SAFE_INTEGER): Block[] {
  if (!(Number.isSafeInteger(blockSize) && blockSize > 0)) throw new RangeError(`bad block size ${blockSize}`);
  const end = Math.min(size, offset + Math.min(length, Number.MAX_SAFE_INTEGER - offset));
  const out: Block[] = [];
  if (offset >= size || end <= offset) return out;
  for (let at = Math.floor(offset / blockSize) * blockSize; at < end; at += blockSize)
    out.push({ offset: at, length: Math.min(blockSize, size - at) });
  return out;
}
