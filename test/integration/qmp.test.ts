// The QMP client against a real QEMU with no guest (-machine none): the block graph comes from
// -blockdev nodes, writes are driven with the monitor's qemu-io, events are QEMU's own.

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QmpClient } from '../../src/qmp/protocol/client.js';
import { DisconnectedError, ExecuteError } from '../../src/qmp/protocol/errors.js';
import {
  queryBlockGraph,
  queryNamedBlockNodes,
  setWriteThreshold,
  watchWriteThreshold,
  type ThresholdCrossing,
} from '../../src/qmp/vocab/block.js';
import { cont, queryStatus, stop } from '../../src/qmp/vocab/machine.js';
import { qcow2, startQemu, tempDir, type TestQemu } from '../unit/qmp/support/qemu.js';

let dir = '';
let qemu: TestQemu | undefined;
let client: QmpClient | undefined;
let tcpPort = 0;
const files: Record<string, string> = {};

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

beforeAll(async () => {
  dir = tempDir('livemr-qmp-');
  files.base = qcow2(dir, 'base.qcow2');
  files.mid = qcow2(dir, 'mid.qcow2', { backing: files.base });
  files.top = qcow2(dir, 'top.qcow2', { backing: files.mid });
  tcpPort = await freePort();
  qemu = await startQemu(dir, [
    '-machine', 'none',
    '-qmp', `tcp:127.0.0.1:${tcpPort},server=on,wait=off`,
    '-blockdev', `driver=file,filename=${files.top},node-name=top-file`,
    '-blockdev', 'driver=qcow2,file=top-file,node-name=top-fmt',
  ]);
  client = await QmpClient.connect(qemu.qmp[0]!);
});

afterAll(async () => {
  await client?.close();
  await qemu?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

async function qemuIo(c: QmpClient, node: string, cmd: string): Promise<string> {
  const out = await c.execute<string>('human-monitor-command', { 'command-line': `qemu-io ${node} "${cmd}"` });
  // qemu-io prints its report on QEMU's stdout; the monitor only returns errors.
  expect(out).toBe('');
  return out;
}

describe('QMP against qemu-system-x86_64 -machine none', () => {
  it('greets and negotiates', () => {
    expect(client!.greeting.version.qemu.major).toBeGreaterThanOrEqual(7);
    expect(client!.greeting.capabilities).toContain('oob');
  });

  it('also speaks over TCP', async () => {
    const tcp = await QmpClient.connect(`tcp:127.0.0.1:${tcpPort}`);
    expect((await queryStatus(tcp)).running).toBe(true);
    await tcp.close();
  });

  it('keeps many commands in flight and matches each reply to its command', async () => {
    const kinds = ['query-status', 'query-version', 'no-such-command', 'query-named-block-nodes'] as const;
    const calls = Array.from({ length: 100 }, (_, i) => {
      const kind = kinds[i % kinds.length]!;
      const args = kind === 'query-named-block-nodes' ? { flat: i % 8 === 3 ? 'not-a-bool' : true } : undefined;
      type Outcome = { kind: string; i: number; r?: unknown; e?: unknown };
      return client!.execute(kind, args).then(
        (r): Outcome => ({ kind, i, r }),
        (e: unknown): Outcome => ({ kind, i, e }),
      );
    });
    expect(client!.inFlight).toBe(100);
    for (const res of await Promise.all(calls)) {
      if (res.kind === 'query-status') expect(res).toMatchObject({ r: { status: 'running' } });
      if (res.kind === 'query-version') expect(res).toMatchObject({ r: { qemu: { major: 7 } } });
      if (res.kind === 'no-such-command') {
        expect(res.e).toBeInstanceOf(ExecuteError);
        expect(res.e).toMatchObject({ errorClass: 'CommandNotFound', command: 'no-such-command' });
        expect((res.e as ExecuteError).desc).toContain('no-such-command');
      }
      if (res.kind === 'query-named-block-nodes') {
        if (res.i % 8 === 3) expect(res.e).toMatchObject({ errorClass: 'GenericError' });
        else expect(Array.isArray(res.r)).toBe(true);
      }
    }
    expect(client!.inFlight).toBe(0);
  });

  it('lists the flat block graph with every node of the backing chain', async () => {
    const nodes = await queryNamedBlockNodes(client!);
    const byName = new Map(nodes.map((n) => [n.nodeName, n]));
    expect(byName.get('top-fmt')).toMatchObject({ drv: 'qcow2', file: files.top, readOnly: false });
    expect(byName.get('top-file')).toMatchObject({ drv: 'file', file: files.top });
    // Backing nodes are opened by QEMU itself (auto-named), one format and one protocol node each.
    for (const f of [files.mid, files.base]) {
      expect(nodes.filter((n) => n.file === f).map((n) => n.drv).sort()).toEqual(['file', 'qcow2']);
    }
    const top = byName.get('top-fmt')!;
    expect(top.raw.backing_file).toBe(files.mid);
    const graph = await queryBlockGraph(client!);
    const id = new Map(graph.nodes.map((n) => [n.name, n.id]));
    const name = new Map(graph.nodes.map((n) => [n.id, n.name]));
    const backingOfTop = graph.edges.find((e) => e.parent === id.get('top-fmt') && e.name === 'backing');
    expect(byName.get(name.get(backingOfTop!.child)!)).toMatchObject({ drv: 'qcow2', file: files.mid });
  });

  it('BLOCK_WRITE_THRESHOLD fires on the file node and is re-armed after each firing', async () => {
    const crossings: ThresholdCrossing[] = [];
    let wake = () => {};
    const watch = await watchWriteThreshold(client!, {
      nodeName: 'top-file',
      threshold: 512 * 1024,
      step: 64 * 1024,
      onCrossing: (c) => {
        crossings.push(c);
        wake();
      },
    });
    const crossed = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`only ${crossings.length} crossings`)), 10_000);
        wake = () => {
          if (crossings.length < n) return;
          clearTimeout(t);
          resolve();
        };
        wake();
      });
    const armedAt = async (value: number) => {
      for (let i = 0; i < 100; i++) {
        const n = (await queryNamedBlockNodes(client!)).find((x) => x.nodeName === 'top-file')!;
        if (n.writeThreshold === value) return;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`threshold never re-armed at ${value}`);
    };

    await qemuIo(client!, 'top-fmt', 'write -P 0x55 0 1M');
    await crossed(1);
    expect(crossings[0]).toMatchObject({ nodeName: 'top-file', threshold: 512 * 1024 });
    expect(crossings[0]!.offset).toBeGreaterThan(512 * 1024);
    expect(crossings[0]!.offset).toBeLessThanOrEqual(fs.statSync(files.top!).size);
    await armedAt(crossings[0]!.offset + 64 * 1024);

    await qemuIo(client!, 'top-fmt', 'write -P 0x66 32M 2M');
    await crossed(2);
    expect(crossings[1]!.threshold).toBe(crossings[0]!.offset + 64 * 1024);
    expect(crossings[1]!.offset).toBeGreaterThan(crossings[1]!.threshold);
    expect(watch.count).toBe(2);

    await watch.stop();
    await watch.done;
    const n = (await queryNamedBlockNodes(client!)).find((x) => x.nodeName === 'top-file')!;
    expect(n.writeThreshold).toBe(0);
  });

  it('a threshold on an unknown node is an ExecuteError with class and desc', async () => {
    const e = await setWriteThreshold(client!, 'no-such-node', 1).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ExecuteError);
    expect((e as ExecuteError).errorClass).toBe('GenericError');
    expect((e as ExecuteError).desc).toContain('no-such-node');
  });

  it('stop/cont change the run state and emit STOP/RESUME', async () => {
    const l = client!.listen({ names: ['STOP', 'RESUME'] });
    await stop(client!);
    expect(await queryStatus(client!)).toEqual({ status: 'paused', running: false });
    await cont(client!);
    expect(await queryStatus(client!)).toEqual({ status: 'running', running: true });
    expect((await l.get()).event).toBe('STOP');
    expect((await l.get()).event).toBe('RESUME');
    l.close();
  });

  it('when QEMU quits, listeners get SHUTDOWN and then the disconnect', async () => {
    const c = client!;
    const l = c.listen({ names: ['SHUTDOWN'] });
    await c.execute('quit');
    expect(qemu!.log()).toMatch(/wrote 1048576\/1048576 bytes at offset 0/);
    const ev = await l.get();
    expect(ev.data).toMatchObject({ guest: false, reason: 'host-qmp-quit' });
    expect(await c.closed).toBeInstanceOf(DisconnectedError);
    await expect(l.get()).rejects.toBeInstanceOf(DisconnectedError);
    await expect(c.execute('query-status')).rejects.toMatchObject({ name: 'StateError' });
    expect(fs.existsSync(path.join(dir, 'top.qcow2'))).toBe(true);
  });
});
