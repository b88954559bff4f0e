// rawWindow: the offset/size window of a raw node from QEMU's json: pseudo-filename, and the
// disk options built from it (src/host/disk-image.ts): honoured when understood, refused otherwise.
import { describe, expect, it } from 'vitest';
import { diskImageOptions } from '../../../src/host/disk-image.js';
import { rawWindow, type VmDisk } from '../../../src/qmp/vm.js';

const json = (o: object) => `json:${JSON.stringify(o)}`;

describe('rawWindow', () => {
  it('reads offset and size; a plain filename or offset 0 without size has no window', () => {
    expect(rawWindow(json({ driver: 'raw', offset: 1048576, size: 4096, file: { driver: 'file', filename: '/x' } }), 4096)).toEqual({ window: { offset: 1048576, size: 4096 } });
    expect(rawWindow(json({ driver: 'raw', size: 4096, file: {} }), 4096)).toEqual({ window: { offset: 0, size: 4096 } });
    expect(rawWindow(json({ driver: 'raw', offset: '512', file: {} }), 1024)).toEqual({ window: { offset: 512, size: 1024 } });
    expect(rawWindow('/var/lib/img.raw', 1 << 20)).toEqual({});
    expect(rawWindow(json({ driver: 'raw', file: { driver: 'file', filename: '/x', 'aio': 'native' } }), 100)).toEqual({});
  });
  it('refuses what it cannot read or what disagrees with the virtual size', () => {
    expect(rawWindow('json:{not json', 10).unsupported).toMatch(/unreadable/);
    expect(rawWindow(json({ offset: -1 }), 10).unsupported).toMatch(/window/);
    expect(rawWindow(json({ offset: 0, size: 20 }), 10).unsupported).toMatch(/virtual size 10/);
    expect(rawWindow(json({ offset: 1.5 }), 10).unsupported).toMatch(/window/);
  });
});

describe('diskImageOptions', () => {
  const layer = { nodeName: 'n', format: 'raw', file: '/img', fileNodeName: 'f', protocol: 'file', readOnly: false, virtualSize: 4096 };
  const disk = (chain: VmDisk['chain']): VmDisk => ({
    qdevId: 'd', qomPath: null, device: null, serial: 's', nodeName: 'n', fileNodeName: 'f', format: chain[0]!.format, file: '/img', readOnly: false, virtualSize: 4096, chain,
  });
  it('passes the window and bounds a raw disk by QEMU\'s virtual size', () => {
    expect(diskImageOptions(disk([{ ...layer, window: { offset: 512, size: 4096 } }]))).toEqual({ options: { format: 'raw', backingChain: [], window: { offset: 512, size: 4096 }, virtualSize: 4096 } });
  });
  it('refuses a layer it does not understand instead of mapping it as a whole file', () => {
    expect(diskImageOptions(disk([{ ...layer, unsupported: 'raw node with unreadable options' }]))).toEqual({ refused: 'layer /img: raw node with unreadable options' });
    expect(diskImageOptions(disk([{ ...layer, format: 'vmdk' }]))).toMatchObject({ refused: /vmdk/ });
    expect(diskImageOptions(disk([{ ...layer, format: 'qcow2' }, { ...layer, format: 'vpc' }]))).toMatchObject({ refused: /vpc/ });
  });
});
