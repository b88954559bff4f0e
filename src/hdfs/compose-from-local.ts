// The paper's composeFromLocal: a config of {vm: guest_path} pairs becomes one composed file that
// Hadoop reads through the gateway. Each guest file is resolved to its segments (byte ranges of the
// VM's disk images, zero fill for holes) by a GuestFileResolver, and the pieces are concatenated in
// config order into livemr_NAME. The usual resolver reads the composition the host agent publishes
// for each shared guest file (livemr_<vm>_<escaped path>, src/host/naming.ts). The result holds the
// files as they are when it is made; run it again to take in later growth.
//
// Config (JSON):  {"name": "weblogs", "files": {"vm1": "/var/log/app.log", "vm2": "/var/log/app.log"}}
// or, to list a VM more than once, "files": [{"vm1": "/a.log"}, {"vm1": "/b.log"}].

import * as fs from 'node:fs';
import { LiveMrError } from '../errors/index.js';
import { checkName, type ResolvedSegment, type SegmentSpec } from '../fs/index.js';
import { compositionName, VM_NAME } from '../host/index.js';

export interface GuestFileRef {
  vm: string;
  path: string;
}

export interface ComposeConfig {
  name: string;
  files: GuestFileRef[];
}

/** Turns a file inside a running guest into the segments of its current bytes. */
export interface GuestFileResolver {
  resolve(ref: GuestFileRef): Promise<SegmentSpec[]>;
}

/** Where the composed file is created: the store (in process) or the mount daemon's control socket. */
export interface ComposeSink {
  compose(name: string, segments: SegmentSpec[]): Promise<{ size: number }> | { size: number };
}

export class ComposeConfigError extends LiveMrError {
  override name = 'ComposeConfigError';
  readonly code = 'HDFS_COMPOSE_CONFIG';
}

const MAX_FILES = 10_000;

export function parseComposeConfig(v: unknown, nameOverride?: string): ComposeConfig {
  const bad = (why: string): never => {
    throw new ComposeConfigError(`compose-from-local config: ${why}`);
  };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) bad('expected an object with "name" and "files"');
  const o = v as Record<string, unknown>;
  const name = nameOverride ?? o.name;
  if (typeof name !== 'string') bad('"name" (the composed file is livemr_NAME) is missing');
  try {
    checkName(name as string);
  } catch (e) {
    bad((e as Error).message);
  }
  const pairs: [string, unknown][] = [];
  if (Array.isArray(o.files)) {
    o.files.forEach((p, i) => {
      if (typeof p !== 'object' || p === null || Object.keys(p).length !== 1) bad(`files[${i}] must be one {vm: guest_path} pair`);
      pairs.push(Object.entries(p as object)[0]!);
    });
  } else if (typeof o.files === 'object' && o.files !== null) pairs.push(...Object.entries(o.files));
  else bad('"files" must map VMs to guest paths');
  if (pairs.length === 0) bad('"files" is empty');
  if (pairs.length > MAX_FILES) bad(`more than ${MAX_FILES} files`);
  const files = pairs.map(([vm, p]) => {
    if (!VM_NAME.test(vm)) bad(`bad VM name '${vm}'`);
    if (typeof p !== 'string' || !p.startsWith('/') || p.includes('\0') || p.length > 4096) bad(`${vm}: guest path must be absolute`);
    return { vm, path: p as string };
  });
  return { name: name as string, files };
}

export function readComposeConfig(file: string, nameOverride?: string): ComposeConfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ComposeConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ComposeConfigError(`${file} is not JSON: ${(e as Error).message}`);
  }
  return parseComposeConfig(v, nameOverride);
}

/** Resolves every guest file, then creates livemr_NAME as their concatenation in one step. */
export async function composeFromLocal(cfg: ComposeConfig, resolver: GuestFileResolver, sink: ComposeSink): Promise<{ name: string; size: number; files: number }> {
  const segments: SegmentSpec[] = [];
  for (const ref of cfg.files) {
    const segs = await resolver.resolve(ref).catch((e: Error) => {
      throw new Error(`${ref.vm}:${ref.path}: ${e.message}`);
    });
    segments.push(...segs);
  }
  if (segments.length === 0) throw new ComposeConfigError(`all files of ${cfg.name} are empty`);
  const info = await sink.compose(cfg.name, segments);
  return { name: cfg.name, size: info.size, files: cfg.files.length };
}

/**
 * Resolves a guest file through the composition the host agent publishes for it; `segments` reads a
 * composition's segments (the store, or the mount daemon's control socket) and fails for a missing one.
 */
export function publishedFileResolver(segments: (name: string) => Promise<ResolvedSegment[]> | ResolvedSegment[]): GuestFileResolver {
  return {
    async resolve(ref) {
      const name = compositionName(ref.vm, ref.path);
      let segs: ResolvedSegment[];
      try {
        segs = await segments(name);
      } catch (e) {
        throw new Error(`not shared by the host agent (no composition ${name}: ${(e as Error).message}); add it to the VM's shared files`, { cause: e });
      }
      return segs.map((s) => (s.file === null ? { zero: true, length: s.length } : { file: s.file, offset: s.offset, length: s.length }));
    },
  };
}
