// The libvirt RPC client against a real libvirtd (started by test/harness/libvirtd.ts) and one
// TCG domain booting the test image: lookups, live XML, channel hot-plug with device events, block
// threshold and its event, bulk stats, block I/O tuning, blkio weight, lifecycle events, and a
// libvirtd restart under a live session. One boot for the whole file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import {
  LibvirtClient, LibvirtRpcError, parseDomainXml, LibvirtSession, StatsFlags, StatsTypes, typedNumber, typedString, VIR_ERR,
  type DomainEvent, type DomainRef,
} from '../../src/libvirt/index.js';
import { startLibvirtd, type Libvirtd, type LibvirtGuest } from '../harness/libvirtd.js';
import { until } from '../harness/wait.js';

let lv: Libvirtd;
let guest: LibvirtGuest;
let session: LibvirtSession;
const events: DomainEvent[] = [];
let dom: DomainRef;

const CHANNEL_XML = `<channel type='unix'><source mode='bind'/><target type='virtio' name='org.livemr.0'/><alias name='ua-livemr0'/></channel>`;

beforeAll(async () => {
  lv = await startLibvirtd();
  guest = await lv.defineAndStart({ name: 'lvclient' });
  session = new LibvirtSession({ uri: lv.uri, log: (m) => console.error(`[session] ${m}`) });
  session.subscribe(guest.name, (ev) => events.push(ev));
  const c = await session.start();
  dom = await c.lookupDomain(guest.name);
}, 240_000);

afterAll(async () => {
  await session?.stop();
  await lv?.stop();
}, 60_000);

type EventOf<K extends DomainEvent['kind']> = Extract<DomainEvent, { kind: K }>;
function eventOf<K extends DomainEvent['kind']>(kind: K, pred: (e: EventOf<K>) => boolean = () => true): Promise<EventOf<K>> {
  return until(`${kind} event`, () => events.find((e) => e.kind === kind && pred(e as EventOf<K>)) as EventOf<K> | undefined, 30_000);
}

describe('libvirt client against libvirtd', () => {
  it('opens the URI, looks domains up and lists them, with libvirt error codes on failure', async () => {
    const c = await session.client();
    expect(await c.libVersion()).toBeGreaterThanOrEqual(9_000_000);
    expect(dom.name).toBe(guest.name);
    expect(dom.id).toBeGreaterThan(0);
    expect(dom.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect((await c.listDomains()).map((d) => d.name)).toContain(guest.name);
    expect(lv.virsh('domuuid', guest.name).trim()).toBe(dom.uuid);
    const err = await c.lookupDomain('livemr-no-such-domain').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LibvirtRpcError);
    expect((err as LibvirtRpcError).virCode).toBe(VIR_ERR.NO_DOMAIN);
    expect((err as LibvirtRpcError).virCodeName).toBe('VIR_ERR_NO_DOMAIN');
    expect((await c.domainState(dom)).state).toBe('RUNNING');
  });

  it('reads the live XML with every disk, its overlay and the overlay\'s backing store', async () => {
    const xml = await (await session.client()).domainXml(dom);
    for (const d of guest.disks) {
      expect(xml).toContain(`<source file='${d.overlay}'`);
      expect(xml).toContain(`<source file='${d.base}'`);
      expect(xml).toContain(`<target dev='${d.dev}' bus='virtio'/>`);
    }
    expect(xml).toMatch(/<backingStore type='file' index='\d+'>/);
    expect(xml).toContain(`<serial>data</serial>`);
    const desc = parseDomainXml(xml);
    expect(desc.id).toBe(dom.id);
    for (const d of guest.disks) {
      const disk = desc.disks.find((x) => x.dev === d.dev)!;
      expect(disk.chain.map((l) => [l.file, l.format])).toEqual([[d.overlay, 'qcow2'], [d.base, 'qcow2']]);
      expect(disk.serial).toBe(d.serial);
      // the guest sees the same slot.function hops from the root bus (how disks without a serial are matched)
      const sysfs = (await guest.sh(`readlink -f /sys/block/${d.dev}/device`)).trim();
      const hops = sysfs.split('/').filter((c) => /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(c)).map((c) => c.slice(8));
      expect(disk.pciPath, sysfs).toEqual(hops);
    }
    expect(desc.channels.map((c) => c.name)).toContain('org.livemr.ctl');
  });

  it('hot-plugs the org.livemr.0 channel: DEVICE_ADDED, a socket path in the live XML, the port in the guest', async () => {
    const c = await session.client();
    await c.attachDevice(dom, CHANNEL_XML);
    await eventOf('device-added', (e) => e.alias === 'ua-livemr0');
    const xml = await c.domainXml(dom);
    const path = /<source mode='bind' path='([^']+\/org\.livemr\.0)'\/>/.exec(xml)?.[1];
    expect(path, xml).toBeTruthy();
    expect(existsSync(path!)).toBe(true);
    const names = await guest.sh('cat /sys/class/virtio-ports/*/name');
    expect(names.split('\n')).toContain('org.livemr.0');
    // by XML the device must match the live one (with libvirt's socket path); by alias is simpler
    const byXml = await c.detachDevice(dom, CHANNEL_XML).catch((e: unknown) => e);
    expect((byXml as LibvirtRpcError).virCode).toBe(VIR_ERR.DEVICE_MISSING);
    await c.detachDeviceAlias(dom, 'ua-livemr0');
    await eventOf('device-removed', (e) => e.alias === 'ua-livemr0');
    expect(await c.domainXml(dom)).not.toContain('org.livemr.0');
  });

  it('arms a write threshold that fires BLOCK_THRESHOLD once the guest writes past it', async () => {
    const c = await session.client();
    const stats = async () => (await c.allDomainStats([dom], StatsTypes.BLOCK, StatsFlags.BACKING))[0]!.params;
    const before = await stats();
    const n = typedNumber(before, 'block.count')!;
    const idx = [...Array(n).keys()].find((i) => typedString(before, `block.${i}.name`) === 'vdb' && typedNumber(before, `block.${i}.backingIndex`) !== undefined
      && typedString(before, `block.${i}.path`) === guest.disks[1]!.overlay)!;
    expect(idx, JSON.stringify(before, (_, v) => (typeof v === 'bigint' ? String(v) : v))).toBeDefined();
    const alloc = typedNumber(before, `block.${idx}.allocation`)!;
    const wrBefore = typedNumber(before, `block.${idx}.wr.bytes`)!;
    const threshold = alloc + 1024 * 1024;
    await c.setBlockThreshold(dom, 'vdb', threshold);
    expect(typedNumber(await stats(), `block.${idx}.threshold`)).toBe(threshold);
    await guest.sh('dd if=/dev/urandom of=/mnt/data/lv-threshold bs=1M count=4 conv=fsync 2>/dev/null');
    const ev = await eventOf('block-threshold');
    expect(ev.dev).toMatch(/^vdb(\[\d+\])?$/);
    expect(Number(ev.threshold)).toBe(threshold);
    expect(ev.excess > 0n).toBe(true);
    const after = await stats();
    expect(typedNumber(after, `block.${idx}.wr.bytes`)!).toBeGreaterThanOrEqual(wrBefore + 4 * 1024 * 1024);
    expect(typedNumber(after, `block.${idx}.threshold`) ?? 0).toBe(0); // one-shot: disarmed once it fired
    // the bulk call also reports the backing layer of the same disk
    const layers = [...Array(typedNumber(after, 'block.count')!).keys()].filter((i) => typedString(after, `block.${i}.name`) === 'vdb');
    expect(layers.map((i) => typedString(after, `block.${i}.path`))).toContain(guest.disks[1]!.base);
  });

  it('sets and reads back block I/O limits and the blkio weight, as virsh sees them', async () => {
    const c = await session.client();
    await c.setBlockIoTune(dom, 'vdb', [{ field: 'total_iops_sec', type: 'ullong', value: 750n }]);
    expect(typedNumber(await c.blockIoTune(dom, 'vdb'), 'total_iops_sec')).toBe(750);
    expect(lv.virsh('blkdeviotune', guest.name, 'vdb')).toMatch(/total_iops_sec\s*:\s*750/);
    await c.setBlockIoTune(dom, 'vdb', [{ field: 'total_iops_sec', type: 'ullong', value: 0n }]);
    expect(typedNumber(await c.blockIoTune(dom, 'vdb'), 'total_iops_sec')).toBe(0);

    await c.setBlkioParameters(dom, [{ field: 'weight', type: 'uint', value: 321 }]);
    expect(typedNumber(await c.blkioParameters(dom), 'weight')).toBe(321);
    expect(lv.virsh('blkiotune', guest.name)).toMatch(/weight\s*:\s*321/);
    const bad = await c.setBlkioParameters(dom, [{ field: 'livemr_no_such_field', type: 'uint', value: 5 }]).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(LibvirtRpcError);
    expect([VIR_ERR.INVALID_ARG, VIR_ERR.ARGUMENT_UNSUPPORTED]).toContain((bad as LibvirtRpcError).virCode);
  });

  it('survives a libvirtd restart: the domain keeps running, the session reconnects and events flow again', async () => {
    const qemu = guest.qemuPid();
    const gen = session.generation;
    await lv.restart();
    await until('session reconnected', () => session.generation > gen && session.connected, 60_000);
    expect(guest.qemuPid()).toBe(qemu);
    await guest.sh('true'); // the guest is still there and answering
    const c = await session.client();
    expect((await c.domainState(dom)).state).toBe('RUNNING');
    events.length = 0;
    await c.attachDevice(dom, CHANNEL_XML);
    await eventOf('device-added', (e) => e.alias === 'ua-livemr0');
  });

  it('reports STOPPED on destroy and STARTED on start; a live attach does not survive the restart', async () => {
    events.length = 0;
    guest.destroy();
    const stopped = await eventOf('lifecycle', (e) => e.event === 'STOPPED');
    expect(stopped.detail).toBe(1); // VIR_DOMAIN_EVENT_STOPPED_DESTROYED
    lv.virsh('start', guest.name);
    await eventOf('lifecycle', (e) => e.event === 'STARTED');
    const c = await session.client();
    const again = await c.lookupDomain(guest.name);
    expect(again.uuid).toBe(dom.uuid);
    expect(again.id).not.toBe(dom.id);
    expect(await c.domainXml(again)).not.toContain('org.livemr.0');
    guest.destroy();
  });

  it('a second client can connect alongside and close cleanly', async () => {
    const c2 = await LibvirtClient.connect({ uri: lv.uri });
    expect((await c2.listDomains(2 /* inactive */)).map((d) => d.name)).toContain(guest.name);
    await c2.close();
    expect(await c2.closed).toBeNull();
  });
});
