// The native addon's table validation and its two-level lookup, checked against the JS segment
// list (the addon is built by scripts/build-native-fuse.sh, which bootstrap runs before tests).
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../../src/fs/native.js';
import { SegmentList, ZERO_SOURCE } from '../../../src/fs/segments.js';

const native = loadNative();

function table(l: SegmentList, sources = ['/a', '/b']) {
  return { ...l.table(), mtimeMs: 0, directIo: false, sources, sourcesJson: JSON.stringify(sources) };
}

describe('native addon tables', () => {
  it('finds the same segment as the JS list for every probed offset (10^5 segments, odd lengths)', () => {
    const l = new SegmentList();
    for (let i = 0; i < 100_000; i++) l.append(i % 5 === 4 ? ZERO_SOURCE : i % 2, i * 1_000_003, 1 + ((i * 7919) % 4099));
    const t = table(l);
    const positions = new Float64Array(200_000);
    for (let i = 0; i < positions.length; i++) positions[i] = Math.floor(Math.random() * l.size);
    positions[0] = 0;
    positions[1] = l.size - 1;
    for (let k = 0; k < 64; k++) positions[2 + k] = l.get(64 * 1000 + k).at; // block edges of the top index
    let want = 0;
    for (const p of positions) want += l.find(p);
    const r = native.benchLookup(t, positions, 1);
    expect(r.checksum).toBe(want);
    expect(r.tableBytes / l.count).toBeLessThan(21);
  });

  it('rejects tables that are not contiguous, have bad sources, or a wrong size', () => {
    const l = new SegmentList();
    l.append(0, 0, 10);
    l.append(1, 50, 10);
    const good = table(l);
    const pos = new Float64Array([0, 5, 15]);
    expect(native.benchLookup(good, pos, 1).checksum).toBe(1);
    const bad = (patch: object) => () => native.benchLookup({ ...good, ...patch }, pos, 1);
    expect(bad({ coff: new Float64Array([1, 10]) })).toThrow(/contiguous/); // must start at 0
    expect(bad({ coff: new Float64Array([0, 0]) })).toThrow(/positive lengths/);
    expect(bad({ coff: new Float64Array([0, 25]) })).toThrow(/positive lengths/); // beyond size
    expect(bad({ src: new Uint32Array([0, 7]) })).toThrow(/valid sources/);
    expect(bad({ size: 10 })).toThrow(/positive lengths/);
    expect(bad({ n: 3 })).toThrow(/malformed/);
    expect(bad({ sources: [1, 2] })).toThrow(/strings/);
    expect(bad({ coff: [0, 10] })).toThrow(/malformed/);
  });
});
