// parseDomainXml on a live XML of the shape libvirt 9 writes for a running q35 domain (disks on
// pcie-root-ports, backing chains with indexes, a hot-plugged channel), and its refusals.
import { describe, expect, it } from 'vitest';
import { channelDeviceXml, diskKey, LibvirtXmlError, parseDomainXml } from '../../../src/libvirt/index.js';

const LIVE = `<domain type='qemu' id='7'>
  <name>web1</name>
  <uuid>6c1f3e0a-55d1-4c5e-9a51-0d0c2b7e7a01</uuid>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='writeback'/>
      <source file='/var/lib/nova/instances/x/disk' index='2'/>
      <backingStore type='file' index='3'>
        <format type='qcow2'/>
        <source file='/var/lib/nova/instances/_base/abc'/>
        <backingStore type='file' index='4'>
          <format type='raw'/>
          <source file='/var/lib/nova/instances/_base/raw &amp; base'/>
          <backingStore/>
        </backingStore>
      </backingStore>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x03' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/srv/data.qcow2' index='1'/>
      <backingStore/>
      <target dev='vdb' bus='virtio'/>
      <serial>data</serial>
      <alias name='virtio-disk1'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x0a' function='0x0'/>
    </disk>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw'/>
      <source protocol='rbd' name='pool/img'/>
      <target dev='vdc' bus='virtio'/>
    </disk>
    <controller type='pci' index='0' model='pcie-root'><alias name='pcie.0'/></controller>
    <controller type='pci' index='1' model='pcie-root-port'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0' multifunction='on'/>
    </controller>
    <controller type='pci' index='3' model='pcie-root-port'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x2'/>
    </controller>
    <controller type='virtio-serial' index='0'><alias name='virtio-serial0'/></controller>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-7-web1/org.livemr.0'/>
      <target type='virtio' name='org.livemr.0' state='connected'/>
      <alias name='ua-livemr0'/>
      <address type='virtio-serial' controller='0' bus='0' port='1'/>
    </channel>
    <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>
    <serial type='pty'><target port='0'/></serial>
  </devices>
</domain>`;

describe('parseDomainXml', () => {
  it('reads disks with their image chain (top first), serial or none, and PCI path from the root bus', () => {
    const d = parseDomainXml(LIVE);
    expect([d.name, d.uuid, d.id, d.hasVirtioSerial]).toEqual(['web1', '6c1f3e0a-55d1-4c5e-9a51-0d0c2b7e7a01', 7, true]);
    expect(d.disks[0]).toEqual({
      dev: 'vda', bus: 'virtio', serial: null, alias: 'virtio-disk0', readonly: false,
      chain: [
        { file: '/var/lib/nova/instances/x/disk', format: 'qcow2', index: 2 },
        { file: '/var/lib/nova/instances/_base/abc', format: 'qcow2', index: 3 },
        { file: '/var/lib/nova/instances/_base/raw & base', format: 'raw', index: 4 },
      ],
      pci: { domain: 0, bus: 3, slot: 0, function: 0 },
      pciPath: ['02.2', '00.0'],
    });
    expect(d.disks[1]).toMatchObject({ dev: 'vdb', serial: 'data', chain: [{ file: '/srv/data.qcow2', format: 'qcow2', index: 1 }], pciPath: ['0a.0'] });
    expect(d.disks[2]).toMatchObject({ dev: 'vdc', chain: [], pci: null, pciPath: null });
    // named the way the guest helper names them (src/guest/disks.ts)
    expect(d.disks.map(diskKey)).toEqual(['pci:02.2/00.0', 'data', null]);
  });

  it('reads virtio channels with the socket path libvirt chose', () => {
    expect(parseDomainXml(LIVE).channels).toEqual([
      { name: 'org.livemr.0', type: 'unix', path: '/var/lib/libvirt/qemu/channel/target/domain-7-web1/org.livemr.0', alias: 'ua-livemr0', state: 'connected' },
      { name: 'com.redhat.spice.0', type: 'spicevmc', path: null, alias: null, state: null },
    ]);
  });

  it('gives an inactive definition id null, and refuses what is not a domain', () => {
    expect(parseDomainXml(LIVE.replace(" id='7'", '')).id).toBeNull();
    expect(() => parseDomainXml('<network/>')).toThrow(LibvirtXmlError);
    expect(() => parseDomainXml('<domain><name>x</name>')).toThrow(/does not parse|without/);
    expect(() => parseDomainXml('<domain><name>x</name><uuid>u</uuid><devices><disk type="file"/></devices></domain>')).toThrow(/without <target dev>/);
  });

  it('writes the channel device XML with the alias it is found by', () => {
    expect(channelDeviceXml()).toBe(`<channel type='unix'><source mode='bind'/><target type='virtio' name='org.livemr.0'/><alias name='ua-livemr0'/></channel>`);
    expect(channelDeviceXml("a'b")).toContain("name='a&#39;b'");
  });
});
