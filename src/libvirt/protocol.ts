// Numbers of libvirt's RPC protocol, from libvirt's src/rpc/virnetprotocol.x (framing),
// src/rpc/virkeepaliveprotocol.x, src/remote/remote_protocol.x (procedures and limits),
// include/libvirt/*.h (event ids, flags) and virterror.h (error codes). Only what LiveMR uses.
// These numbers are part of libvirt's wire ABI: they never change once released.

/** virNetMessageHeader: prog, vers, proc, type, serial, status (6 × 4 bytes), after a 4-byte length. */
export const HEADER_BYTES = 24;
export const LEN_BYTES = 4;
/** VIR_NET_MESSAGE_MAX: the largest packet (without the length word) either side may send. */
export const MESSAGE_MAX = 33554432;

export const REMOTE_PROGRAM = 0x20008086;
export const REMOTE_PROTOCOL_VERSION = 1;
export const QEMU_PROGRAM = 0x20008087;
export const KEEPALIVE_PROGRAM = 0x6b656570; // 'keep'
export const KEEPALIVE_PROTOCOL_VERSION = 1;
export const KEEPALIVE_PROC = { PING: 1, PONG: 2 } as const;

export const MessageType = { CALL: 0, REPLY: 1, MESSAGE: 2, STREAM: 3, CALL_WITH_FDS: 4, REPLY_WITH_FDS: 5, STREAM_HOLE: 6 } as const;
export const MessageStatus = { OK: 0, ERROR: 1, CONTINUE: 2 } as const;

/** Limits from remote_protocol.x, enforced when decoding. */
export const LIMITS = {
  STRING_MAX: 4194304,
  DOMAIN_LIST_MAX: 16384,
  AUTH_TYPE_LIST_MAX: 20,
  BLKIO_PARAMETERS_MAX: 16,
  BLOCK_IO_TUNE_PARAMETERS_MAX: 32,
  GET_ALL_DOMAIN_STATS_MAX: 4096,
  /** typed parameters per stats record (REMOTE_CONNECT_GET_ALL_DOMAIN_STATS_MAX bounds the records) */
  DOMAIN_STATS_PARAMS_MAX: 262144,
  UUID_BYTES: 16,
} as const;

/** REMOTE_PROC_* used by LiveMR. */
export const PROC = {
  CONNECT_OPEN: 1,
  CONNECT_CLOSE: 2,
  DOMAIN_GET_XML_DESC: 14,
  DOMAIN_LOOKUP_BY_NAME: 23,
  CONNECT_SUPPORTS_FEATURE: 60,
  AUTH_LIST: 66,
  CONNECT_GET_LIB_VERSION: 157,
  DOMAIN_ATTACH_DEVICE_FLAGS: 160,
  DOMAIN_DETACH_DEVICE_FLAGS: 161,
  DOMAIN_SET_BLKIO_PARAMETERS: 205,
  DOMAIN_GET_BLKIO_PARAMETERS: 206,
  DOMAIN_GET_STATE: 212,
  DOMAIN_SET_BLOCK_IO_TUNE: 252,
  DOMAIN_GET_BLOCK_IO_TUNE: 253,
  CONNECT_LIST_ALL_DOMAINS: 273,
  CONNECT_DOMAIN_EVENT_CALLBACK_REGISTER_ANY: 316,
  CONNECT_DOMAIN_EVENT_CALLBACK_DEREGISTER_ANY: 317,
  DOMAIN_EVENT_CALLBACK_LIFECYCLE: 318,
  DOMAIN_EVENT_CALLBACK_REBOOT: 319,
  DOMAIN_EVENT_CALLBACK_BLOCK_JOB: 326,
  DOMAIN_EVENT_CALLBACK_DEVICE_REMOVED: 333,
  DOMAIN_EVENT_BLOCK_JOB_2: 339,
  CONNECT_GET_ALL_DOMAIN_STATS: 344,
  DOMAIN_EVENT_CALLBACK_DEVICE_ADDED: 354,
  DOMAIN_EVENT_BLOCK_THRESHOLD: 385,
  DOMAIN_SET_BLOCK_THRESHOLD: 386,
  DOMAIN_DETACH_DEVICE_ALIAS: 392,
} as const;

export const PROC_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(PROC).map(([k, v]) => [v, k]));

/** REMOTE_AUTH_* */
export const AuthType = { NONE: 0, SASL: 1, POLKIT: 2 } as const;

/** VIR_DRV_FEATURE_* asked with CONNECT_SUPPORTS_FEATURE. */
export const Feature = { TYPED_PARAM_STRING: 9, PROGRAM_KEEPALIVE: 10, REMOTE_EVENT_CALLBACK: 14 } as const;

/** VIR_DOMAIN_EVENT_ID_* */
export const EventId = {
  LIFECYCLE: 0,
  REBOOT: 1,
  BLOCK_JOB: 8,
  DEVICE_REMOVED: 15,
  BLOCK_JOB_2: 16,
  DEVICE_ADDED: 19,
  BLOCK_THRESHOLD: 24,
} as const;
export type EventIdName = keyof typeof EventId;

/** virDomainEventType (lifecycle `event`) */
export const LifecycleEvent = {
  DEFINED: 0, UNDEFINED: 1, STARTED: 2, SUSPENDED: 3, RESUMED: 4, STOPPED: 5, SHUTDOWN: 6, PMSUSPENDED: 7, CRASHED: 8,
} as const;
export type LifecycleEventName = keyof typeof LifecycleEvent;
export const LIFECYCLE_NAMES: readonly LifecycleEventName[] = [
  'DEFINED', 'UNDEFINED', 'STARTED', 'SUSPENDED', 'RESUMED', 'STOPPED', 'SHUTDOWN', 'PMSUSPENDED', 'CRASHED',
];
/** virDomainEventStoppedDetailType */
export const StoppedDetail = { SHUTDOWN: 0, DESTROYED: 1, CRASHED: 2, MIGRATED: 3, SAVED: 4, FAILED: 5, FROM_SNAPSHOT: 6 } as const;

/** virDomainBlockJobType / virConnectDomainEventBlockJobStatus */
export const BLOCK_JOB_TYPES = ['UNKNOWN', 'PULL', 'COPY', 'COMMIT', 'ACTIVE_COMMIT', 'BACKUP'] as const;
export const BLOCK_JOB_STATUSES = ['COMPLETED', 'FAILED', 'CANCELED', 'READY'] as const;

/** virDomainState */
export const DOMAIN_STATES = ['NOSTATE', 'RUNNING', 'BLOCKED', 'PAUSED', 'SHUTDOWN', 'SHUTOFF', 'CRASHED', 'PMSUSPENDED'] as const;

/** virConnectListAllDomainsFlags */
export const ListFlags = { ACTIVE: 1, INACTIVE: 2, PERSISTENT: 4, TRANSIENT: 8, RUNNING: 16, PAUSED: 32, SHUTOFF: 64 } as const;
/** virDomainModificationImpact / virDomainDeviceModifyFlags */
export const Affect = { CURRENT: 0, LIVE: 1, CONFIG: 2 } as const;
/** virDomainXMLFlags */
export const XmlFlags = { SECURE: 1, INACTIVE: 2 } as const;
/** VIR_TYPED_PARAM_STRING_OKAY: the caller accepts string-typed parameters in the answer */
export const TYPED_PARAM_STRING_OKAY = 4;
/** virDomainStatsTypes */
export const StatsTypes = { STATE: 1, CPU_TOTAL: 2, BALLOON: 4, VCPU: 8, INTERFACE: 16, BLOCK: 32 } as const;
/** virConnectGetAllDomainStatsFlags */
export const StatsFlags = { ACTIVE: 1, INACTIVE: 2, RUNNING: 16, NOWAIT: 0x20000000, BACKING: 0x40000000, ENFORCE_STATS: 0x80000000 } as const;

/** virTypedParameterType */
export const TypedParamType = { int: 1, uint: 2, llong: 3, ullong: 4, double: 5, boolean: 6, string: 7 } as const;
export type TypedParamTypeName = keyof typeof TypedParamType;

/** virErrorNumber values LiveMR branches on. */
export const VIR_ERR = {
  OK: 0, INTERNAL_ERROR: 1, NO_SUPPORT: 3, NO_CONNECT: 5, INVALID_CONN: 6, INVALID_DOMAIN: 7, INVALID_ARG: 8,
  OPERATION_FAILED: 9, XML_ERROR: 27, DOM_EXIST: 28, OPERATION_DENIED: 29, XML_DETAIL: 35, SYSTEM_ERROR: 38, RPC: 39,
  NO_DOMAIN: 42, AUTH_FAILED: 45, OPERATION_INVALID: 55, CONFIG_UNSUPPORTED: 67, OPERATION_TIMEOUT: 68,
  ARGUMENT_UNSUPPORTED: 74, OPERATION_ABORTED: 78, OPERATION_UNSUPPORTED: 84, AGENT_UNRESPONSIVE: 86,
  RESOURCE_BUSY: 87, ACCESS_DENIED: 88, AUTH_UNAVAILABLE: 94, DEVICE_MISSING: 99,
} as const;

const ERR_NAMES = new Map<number, string>(Object.entries(VIR_ERR).map(([k, v]) => [v, `VIR_ERR_${k}`]));
export function errorCodeName(code: number): string {
  return ERR_NAMES.get(code) ?? `VIR_ERR_${code}`;
}
