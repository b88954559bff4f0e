// What LiveMR reads from a domain's live XML (virDomainGetXMLDesc): each disk's target, serial,
// image chain (<source> then nested <backingStore>, top first) and PCI location, and each channel's
// socket path. libvirtd is trusted to send well-formed XML, but anything LiveMR relies on is checked
// and a missing piece is a LibvirtXmlError naming it, never a silent default.
//
// PCI location: a guest cannot see libvirt's bus *numbers* (its firmware numbers buses itself), but
// it sees the same topology: the slot.function of every bridge from the root bus down to the disk.
// `pciPath` is that list (e.g. ["02.3", "00.0"]); the guest derives the same list from the
// resolved /sys/block/vdX/device path. It identifies disks that have no <serial> (Nova's
// ephemeral root disks).
import { DOMParser, type Element } from '@xmldom/xmldom';
import { LibvirtXmlError } from './errors.js';

export interface ImageLayer {
  file: string;
  format: string;
  /** libvirt's index of this layer (block stats' backingIndex; "vda[N]" names it in calls) */
  index: number | null;
}

export interface PciAddress {
  domain: number;
  bus: number;
  slot: number;
  function: number;
}

export interface DomainDisk {
  /** target dev, e.g. "vda" */
  dev: string;
  bus: string;
  serial: string | null;
  alias: string | null;
  /** top image first; empty for a disk without a local file (network, empty cdrom) */
  chain: ImageLayer[];
  pci: PciAddress | null;
  /** slot.function of each hop from the root bus to the device (see above), or null */
  pciPath: string[] | null;
  readonly: boolean;
}

export interface DomainChannel {
  /** target name, e.g. "org.livemr.0" */
  name: string;
  type: string;
  /** unix socket path (libvirt picks it when the XML gave none) */
  path: string | null;
  alias: string | null;
  state: string | null;
}

export interface DomainDescription {
  name: string;
  uuid: string;
  /** live id, or null when the XML is not of a running domain */
  id: number | null;
  disks: DomainDisk[];
  channels: DomainChannel[];
  hasVirtioSerial: boolean;
}

const children = (el: Element, tag: string): Element[] => {
  const out: Element[] = [];
  for (let n = el.firstChild; n; n = n.nextSibling) if (n.nodeType === 1 && (n as Element).tagName === tag) out.push(n as Element);
  return out;
};
const child = (el: Element, tag: string): Element | undefined => children(el, tag)[0];
const text = (el: Element | undefined): string | null => (el ? (el.textContent ?? '').trim() : null);
const attr = (el: Element | undefined, name: string): string | null => (el?.hasAttribute(name) ? el.getAttribute(name) : null);

function num(el: Element, name: string, what: string): number {
  const v = attr(el, name);
  const n = v === null ? NaN : Number(v);
  if (!Number.isInteger(n) || n < 0) throw new LibvirtXmlError(`${what}: bad or missing ${name}='${v}'`);
  return n;
}

export function parseDomainXml(xml: string): DomainDescription {
  let doc;
  try {
    doc = new DOMParser({ onError: (level, msg) => { if (level !== 'warning') throw new Error(msg); } }).parseFromString(xml, 'text/xml');
  } catch (e) {
    throw new LibvirtXmlError(`domain XML does not parse: ${(e as Error).message}`);
  }
  const root = doc.documentElement;
  if (!root || root.tagName !== 'domain') throw new LibvirtXmlError('not a <domain> document');
  const name = text(child(root, 'name'));
  const uuid = text(child(root, 'uuid'));
  if (!name || !uuid) throw new LibvirtXmlError('domain XML without <name> or <uuid>');
  const idAttr = attr(root, 'id');
  const devices = child(root, 'devices');
  if (!devices) throw new LibvirtXmlError(`domain ${name}: no <devices>`);

  // PCI controllers by index, to walk from a device up to the root bus
  const pciControllers = new Map<number, Element>();
  for (const c of children(devices, 'controller')) {
    if (attr(c, 'type') === 'pci') pciControllers.set(num(c, 'index', `domain ${name}: pci controller`), c);
  }
  const pciOf = (el: Element): PciAddress | null => {
    const a = child(el, 'address');
    if (!a || attr(a, 'type') !== 'pci') return null;
    const w = `domain ${name}: pci address`;
    return { domain: num(a, 'domain', w), bus: num(a, 'bus', w), slot: num(a, 'slot', w), function: num(a, 'function', w) };
  };
  const hop = (a: PciAddress) => `${a.slot.toString(16).padStart(2, '0')}.${a.function.toString(16)}`;
  const pciPathOf = (a: PciAddress | null, depth = 0): string[] | null => {
    if (!a || depth > 32) return null;
    const ctl = pciControllers.get(a.bus);
    const model = attr(ctl, 'model');
    if (a.bus === 0 || model === 'pcie-root' || model === 'pci-root') return [hop(a)];
    if (!ctl) return null;
    const up = pciPathOf(pciOf(ctl), depth + 1);
    return up ? [...up, hop(a)] : null;
  };

  const disks: DomainDisk[] = [];
  for (const d of children(devices, 'disk')) {
    const target = child(d, 'target');
    const dev = attr(target, 'dev');
    if (!dev) throw new LibvirtXmlError(`domain ${name}: a <disk> without <target dev>`);
    const chain: ImageLayer[] = [];
    const topFormat = attr(child(d, 'driver'), 'type') ?? 'raw';
    const layer = (el: Element, format: string) => {
      const src = child(el, 'source');
      const file = attr(src, 'file') ?? attr(src, 'dev');
      const idx = attr(src, 'index') ?? attr(el, 'index');
      return file ? { file, format, index: idx === null ? null : Number(idx) } : null;
    };
    if (attr(d, 'type') === 'file' || attr(d, 'type') === 'block') {
      const top = layer(d, topFormat);
      if (top) {
        chain.push(top);
        let bs = child(d, 'backingStore');
        for (let depth = 0; bs && attr(bs, 'type') && depth < 256; depth++) {
          const fmt = attr(child(bs, 'format'), 'type') ?? 'raw';
          const l = layer(bs, fmt);
          if (!l) break; // a network layer: the chain stops being local
          chain.push(l);
          bs = child(bs, 'backingStore');
        }
      }
    }
    const pci = pciOf(d);
    disks.push({
      dev, bus: attr(target, 'bus') ?? '', serial: text(child(d, 'serial')) || null, alias: attr(child(d, 'alias'), 'name'),
      chain, pci, pciPath: pciPathOf(pci), readonly: !!child(d, 'readonly'),
    });
  }

  const channels: DomainChannel[] = [];
  for (const c of children(devices, 'channel')) {
    const target = child(c, 'target');
    if (attr(target, 'type') !== 'virtio') continue;
    const cname = attr(target, 'name');
    if (!cname) continue;
    channels.push({
      name: cname, type: attr(c, 'type') ?? '', path: attr(child(c, 'source'), 'path'),
      alias: attr(child(c, 'alias'), 'name'), state: attr(target, 'state'),
    });
  }
  const hasVirtioSerial = children(devices, 'controller').some((c) => attr(c, 'type') === 'virtio-serial');
  return { name, uuid, id: idAttr === null || idAttr === '-1' ? null : Number(idAttr), disks, channels, hasVirtioSerial };
}

/**
 * The name the guest helper reports for this disk (src/guest/disks.ts): its serial, else
 * "pci:" + its PCI path; null when neither exists (the disk cannot be shared from).
 */
export function diskKey(d: Pick<DomainDisk, 'serial' | 'pciPath'>): string | null {
  return d.serial ?? (d.pciPath ? `pci:${d.pciPath.join('/')}` : null);
}

/** A unique-per-VM alias for libvirt ("ua-" prefix = user alias, kept across live changes). */
export const LIVEMR_CHANNEL_ALIAS = 'ua-livemr0';

/** The channel LiveMR hot-plugs: libvirt binds the socket itself (its path is read back from the live XML). */
export function channelDeviceXml(portName = 'org.livemr.0', alias = LIVEMR_CHANNEL_ALIAS): string {
  const esc = (s: string) => s.replace(/[<>&']/g, (ch) => `&#${ch.charCodeAt(0)};`);
  return `<channel type='unix'><source mode='bind'/><target type='virtio' name='${esc(portName)}'/><alias name='${esc(alias)}'/></channel>`;
}
