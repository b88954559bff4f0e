// The namespace the gateway serves: a root directory of composed files. A host agent's namespace is
// its own compositions (bytes served here); an aggregator's is the union of its agents' (bytes
// served by the agent that holds them, reached by a redirect).

import { compositionName, hdfsName, type ComposedFile, type CompositionSource } from './source.js';

/** The host that holds a file's bytes, for block locations and redirects. */
export interface DataLocation {
  /** host name of the KVM host (what YARN / Spark match against their node names) */
  host: string;
  /** "ip:port" of the agent's WebHDFS endpoint (a DataNode's "name") */
  addr: string;
  /** base URL of the agent's WebHDFS endpoint, e.g. http://host:9870 */
  url: string;
}

export interface FileEntry {
  /** the file's name in the root directory */
  name: string;
  length: number;
  mtimeMs: number;
  location: DataLocation;
  /** the composition itself when this process serves its bytes */
  local?: ComposedFile;
}

export interface Namespace {
  /** all files, sorted by name (byte order, like HDFS listings) */
  list(): FileEntry[];
  get(name: string): FileEntry | undefined;
}

export const byName = (a: { name: string }, b: { name: string }): number =>
  Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));

/** A host agent's namespace: the compositions of `source`, read live on every request. */
export class LocalNamespace implements Namespace {
  constructor(
    private readonly source: CompositionSource,
    /** set once the gateway listens (the port may be chosen by the kernel) */
    public location: DataLocation,
  ) {}

  get(name: string): FileEntry | undefined {
    const comp = compositionName(name);
    const f = comp === undefined ? undefined : this.source.get(comp);
    return f && this.entry(f);
  }

  list(): FileEntry[] {
    const out: FileEntry[] = [];
    for (const n of this.source.names()) {
      const f = this.source.get(n);
      if (f) out.push(this.entry(f));
    }
    return out.sort(byName);
  }

  private entry(f: ComposedFile): FileEntry {
    return { name: hdfsName(f.name), length: f.segments.size, mtimeMs: f.mtimeMs, location: this.location, local: f };
  }
}
