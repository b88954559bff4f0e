import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { MountSource, type SourceEvent } from '../../../src/hdfs/index.js';
import { sendRange } from '../../../src/hdfs/reader.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

async function readAll(file: Parameters<typeof sendRange>[0], offset: number, length: number): Promise<Buffer> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  await sendRange(file, offset, length, out);
  return Buffer.concat(chunks);
}

describe('MountSource: the gateway over the FUSE mount directory', () => {
  it('lists livemr_* files, follows growth and removal on rescan, and reads the mounted bytes', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'livemr-ms-'));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, 'livemr_a'), 'hello');
    fs.writeFileSync(path.join(dir, 'other'), 'x');
    fs.mkdirSync(path.join(dir, 'livemr_dir'));
    const src = MountSource.open(dir, { pollMs: 60_000 });
    try {
      expect(src.names()).toEqual(['a']);
      const events: SourceEvent[] = [];
      src.subscribe((e) => events.push(e));
      const a = src.get('a')!;
      expect(a.segments.size).toBe(5);
      expect((await readAll(a, 1, 4)).toString()).toBe('ello');

      fs.appendFileSync(path.join(dir, 'livemr_a'), ' world');
      fs.writeFileSync(path.join(dir, 'livemr_b'), 'b');
      src.scan();
      expect(a.segments.size).toBe(11); // the handle given out earlier sees the growth
      expect((await readAll(a, 6, 5)).toString()).toBe('world');
      expect(events).toEqual([{ type: 'change', name: 'a' }, { type: 'change', name: 'b' }]);
      src.scan();
      expect(events).toHaveLength(2); // nothing changed, nothing emitted

      fs.rmSync(path.join(dir, 'livemr_a'));
      src.scan();
      expect(events.at(-1)).toEqual({ type: 'remove', name: 'a' });
      expect(src.get('a')).toBeUndefined();
      expect(src.names()).toEqual(['b']);
    } finally {
      src.close();
    }
  });

  it('fails at open when the mount cannot be read', () => {
    expect(() => MountSource.open('/nonexistent/livemr-mount')).toThrow(/ENOENT/);
  });
});
