// XDR shapes of the remote_protocol.x structures LiveMR sends and receives: domains, typed
// parameters, the error struct, and the domain event messages. Procedure arguments are written
// next to their calls in client.ts; everything here is shared or decoded from the server.
import { LibvirtProtocolError } from './errors.js';
import {
  BLOCK_JOB_STATUSES, BLOCK_JOB_TYPES, LIFECYCLE_NAMES, LIMITS, PROC, TypedParamType,
  type LifecycleEventName, type TypedParamTypeName,
} from './protocol.js';
import { XdrReader, XdrWriter } from './xdr.js';

/** remote_nonnull_domain: how the protocol names a domain. `id` is -1 while the domain is shut off. */
export interface DomainRef {
  name: string;
  /** canonical 8-4-4-4-12 hex form */
  uuid: string;
  id: number;
}

export function uuidToString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function uuidToBytes(s: string): Buffer {
  const h = s.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(h)) throw new RangeError(`bad UUID '${s}'`);
  return Buffer.from(h, 'hex');
}

export function writeDomain(w: XdrWriter, d: DomainRef): void {
  w.string(d.name, LIMITS.STRING_MAX).fixedOpaque(uuidToBytes(d.uuid), LIMITS.UUID_BYTES).int(d.id);
}

export function readDomain(r: XdrReader): DomainRef {
  const name = r.string(LIMITS.STRING_MAX);
  const uuid = uuidToString(r.fixedOpaque(LIMITS.UUID_BYTES));
  return { name, uuid, id: r.int() };
}

/**
 * virTypedParameter. 64-bit values are bigints so nothing is rounded; `typedNumber` converts them
 * for callers that know their magnitude (byte counters, sizes).
 */
export type TypedParam =
  | { field: string; type: 'int' | 'uint' | 'double'; value: number }
  | { field: string; type: 'llong' | 'ullong'; value: bigint }
  | { field: string; type: 'boolean'; value: boolean }
  | { field: string; type: 'string'; value: string };

const TYPE_NAMES = new Map<number, TypedParamTypeName>(Object.entries(TypedParamType).map(([k, v]) => [v, k as TypedParamTypeName]));

export function writeTypedParam(w: XdrWriter, p: TypedParam): void {
  w.string(p.field, LIMITS.STRING_MAX).int(TypedParamType[p.type]);
  switch (p.type) {
    case 'int': w.int(p.value); break;
    case 'uint': w.uint(p.value); break;
    case 'llong': w.hyper(p.value); break;
    case 'ullong': w.uhyper(p.value); break;
    case 'double': w.double(p.value); break;
    case 'boolean': w.int(p.value ? 1 : 0); break;
    case 'string': w.string(p.value, LIMITS.STRING_MAX); break;
  }
}

export function readTypedParam(r: XdrReader): TypedParam {
  const field = r.string(LIMITS.STRING_MAX);
  const code = r.int();
  const type = TYPE_NAMES.get(code);
  switch (type) {
    case 'int': return { field, type, value: r.int() };
    case 'uint': return { field, type, value: r.uint() };
    case 'llong': return { field, type, value: r.hyper() };
    case 'ullong': return { field, type, value: r.uhyper() };
    case 'double': return { field, type, value: r.double() };
    case 'boolean': return { field, type, value: r.int() !== 0 };
    case 'string': return { field, type, value: r.string(LIMITS.STRING_MAX) };
    default: throw new LibvirtProtocolError(`typed parameter '${field}' has unknown type ${code}`);
  }
}

/** A parameter's value as a JS number (64-bit values above 2^53 lose their low bits), or undefined. */
export function typedNumber(params: readonly TypedParam[], field: string): number | undefined {
  const p = params.find((x) => x.field === field);
  if (!p) return undefined;
  if (typeof p.value === 'number') return p.value;
  if (typeof p.value === 'bigint') return Number(p.value);
  if (typeof p.value === 'boolean') return p.value ? 1 : 0;
  return undefined;
}

export function typedString(params: readonly TypedParam[], field: string): string | undefined {
  const p = params.find((x) => x.field === field);
  return p?.type === 'string' ? p.value : undefined;
}

/** remote_error, as sent with status ERROR. */
export interface RemoteError {
  code: number;
  domain: number;
  message: string | null;
  level: number;
  dom: DomainRef | null;
  str1: string | null;
  str2: string | null;
  str3: string | null;
  int1: number;
  int2: number;
}

export function readRemoteError(r: XdrReader): RemoteError {
  const str = (x: XdrReader) => x.string(LIMITS.STRING_MAX);
  const code = r.int();
  const domain = r.int();
  const message = r.optional(str);
  const level = r.int();
  const dom = r.optional(readDomain);
  const str1 = r.optional(str);
  const str2 = r.optional(str);
  const str3 = r.optional(str);
  const int1 = r.int();
  const int2 = r.int();
  r.optional((x) => { x.string(LIMITS.STRING_MAX); x.fixedOpaque(LIMITS.UUID_BYTES); }); // net: unused
  return { code, domain, message, level, dom, str1, str2, str3, int1, int2 };
}

export function writeRemoteError(w: XdrWriter, e: RemoteError): void {
  const str = (x: XdrWriter, s: string) => { x.string(s, LIMITS.STRING_MAX); };
  w.int(e.code).int(e.domain).optional(e.message, str).int(e.level).optional(e.dom, writeDomain)
    .optional(e.str1, str).optional(e.str2, str).optional(e.str3, str).int(e.int1).int(e.int2).optional(null, () => {});
}

/** Domain events, as the server sends them for callbacks registered with REGISTER_ANY. */
export type DomainEvent =
  | { kind: 'lifecycle'; callbackId: number; domain: DomainRef; event: LifecycleEventName | `UNKNOWN_${number}`; detail: number }
  | { kind: 'reboot'; callbackId: number; domain: DomainRef }
  | {
    kind: 'block-job'; callbackId: number; domain: DomainRef;
    /** target dev (BLOCK_JOB_2, e.g. "vda") or image path (BLOCK_JOB) */
    disk: string; byPath: boolean; job: string; status: string;
  }
  | { kind: 'block-threshold'; callbackId: number; domain: DomainRef; dev: string; path: string | null; threshold: bigint; excess: bigint }
  | { kind: 'device-added'; callbackId: number; domain: DomainRef; alias: string }
  | { kind: 'device-removed'; callbackId: number; domain: DomainRef; alias: string };

const named = (names: readonly string[], i: number) => names[i] ?? `UNKNOWN_${i}`;

/** Decodes an event packet's payload; undefined for event procedures LiveMR does not subscribe to. */
export function decodeEvent(procedure: number, payload: Buffer): DomainEvent | undefined {
  const r = new XdrReader(payload, `event ${procedure}`);
  let ev: DomainEvent;
  switch (procedure) {
    case PROC.DOMAIN_EVENT_CALLBACK_LIFECYCLE: {
      const callbackId = r.int();
      const domain = readDomain(r);
      const event = named(LIFECYCLE_NAMES, r.int()) as LifecycleEventName;
      ev = { kind: 'lifecycle', callbackId, domain, event, detail: r.int() };
      break;
    }
    case PROC.DOMAIN_EVENT_CALLBACK_REBOOT:
      ev = { kind: 'reboot', callbackId: r.int(), domain: readDomain(r) };
      break;
    case PROC.DOMAIN_EVENT_CALLBACK_BLOCK_JOB:
    case PROC.DOMAIN_EVENT_BLOCK_JOB_2: {
      const callbackId = r.int();
      const domain = readDomain(r);
      const disk = r.string(LIMITS.STRING_MAX);
      const job = named(BLOCK_JOB_TYPES, r.int());
      const status = named(BLOCK_JOB_STATUSES, r.int());
      ev = { kind: 'block-job', callbackId, domain, disk, byPath: procedure === PROC.DOMAIN_EVENT_CALLBACK_BLOCK_JOB, job, status };
      break;
    }
    case PROC.DOMAIN_EVENT_BLOCK_THRESHOLD: {
      const callbackId = r.int();
      const domain = readDomain(r);
      const dev = r.string(LIMITS.STRING_MAX);
      const path = r.optional((x) => x.string(LIMITS.STRING_MAX));
      ev = { kind: 'block-threshold', callbackId, domain, dev, path, threshold: r.uhyper(), excess: r.uhyper() };
      break;
    }
    case PROC.DOMAIN_EVENT_CALLBACK_DEVICE_ADDED:
    case PROC.DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED: {
      const callbackId = r.int();
      const domain = readDomain(r);
      const alias = r.string(LIMITS.STRING_MAX);
      ev = procedure === PROC.DOMAIN_EVENT_CALLBACK_DEVICE_ADDED
        ? { kind: 'device-added', callbackId, domain, alias }
        : { kind: 'device-removed', callbackId, domain, alias };
      break;
    }
    default:
      return undefined;
  }
  r.end();
  return ev;
}
