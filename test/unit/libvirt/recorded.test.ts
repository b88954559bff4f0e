// Decoding what a real libvirtd 9.0.0 sent (test/fixtures/libvirt/frames.json, recorded by
// record.mts in that folder): replies, an error reply and lifecycle events, byte for byte.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  decodeEvent, LIMITS, MessageStatus, MessageType, PacketSplitter, PROC, readDomain, readRemoteError, readTypedParam,
  typedNumber, XdrReader, type Packet,
} from '../../../src/libvirt/index.js';

const rec = JSON.parse(readFileSync(new URL('../../fixtures/libvirt/frames.json', import.meta.url), 'utf8')) as { libvirt: string; frames: { dir: string; hex: string }[] };
const packets = (dir: string): Packet[] => {
  const s = new PacketSplitter();
  return rec.frames.filter((f) => f.dir === dir).flatMap((f) => s.push(Buffer.from(f.hex, 'hex')));
};
const fromServer = packets('s2c');
const reply = (proc: number, status: number = MessageStatus.OK) =>
  fromServer.find((p) => p.header.type === MessageType.REPLY && p.header.procedure === proc && p.header.status === status)!;

describe(`frames recorded from ${rec.libvirt}`, () => {
  it('AUTH_LIST offers auth none to a local root client; the keepalive feature is supported', () => {
    const r = new XdrReader(reply(PROC.AUTH_LIST).payload);
    expect(r.array(LIMITS.AUTH_TYPE_LIST_MAX, (x) => x.int())).toEqual([0]);
    r.end();
    const f = new XdrReader(reply(PROC.CONNECT_SUPPORTS_FEATURE).payload);
    expect(f.int()).toBe(1);
    f.end();
  });

  it('an error reply decodes to VIR_ERR_NO_DOMAIN with the server\'s message', () => {
    const r = new XdrReader(reply(PROC.DOMAIN_LOOKUP_BY_NAME, MessageStatus.ERROR).payload);
    const e = readRemoteError(r);
    r.end();
    expect(e.code).toBe(42);
    expect(e.message).toContain("'livemr-no-such-domain'");
  });

  it('lookup, list, stats and version replies decode with nothing left over', () => {
    const look = new XdrReader(reply(PROC.DOMAIN_LOOKUP_BY_NAME).payload);
    const dom = readDomain(look);
    look.end();
    expect(dom).toMatchObject({ uuid: '6c1f3e0a-55d1-4c5e-9a51-0d0c2b7e7a01', id: -1 });
    expect(dom.name).toMatch(/^livemr-rec-\d+$/);

    const list = new XdrReader(reply(PROC.CONNECT_LIST_ALL_DOMAINS).payload);
    expect(list.array(LIMITS.DOMAIN_LIST_MAX, readDomain).map((d) => d.uuid)).toContain(dom.uuid);
    list.uint();
    list.end();

    const st = new XdrReader(reply(PROC.CONNECT_GET_ALL_DOMAIN_STATS).payload);
    const recs = st.array(LIMITS.GET_ALL_DOMAIN_STATS_MAX, (x) => ({ domain: readDomain(x), params: x.array(1000, readTypedParam) }));
    st.end();
    expect(recs).toHaveLength(1);
    expect(typedNumber(recs[0]!.params, 'state.state')).toBe(5); // VIR_DOMAIN_SHUTOFF

    const v = new XdrReader(reply(PROC.CONNECT_GET_LIB_VERSION).payload);
    expect(v.uhyper()).toBe(9000000n);
    v.end();
  });

  it('lifecycle events of define and undefine decode', () => {
    const evs = fromServer.filter((p) => p.header.type === MessageType.MESSAGE).map((p) => decodeEvent(p.header.procedure, p.payload));
    expect(evs.map((e) => e?.kind === 'lifecycle' && e.event)).toEqual(['DEFINED', 'UNDEFINED']);
    expect(evs[0]).toMatchObject({ domain: { uuid: '6c1f3e0a-55d1-4c5e-9a51-0d0c2b7e7a01', id: -1 } });
  });
});
