// Where the gateway gets composed files from. A small interface so the gateway runs both inside the
// process that owns the composition store (events straight from the store) and apart from it
// (following the store's journal with inotify: JournalFollower in src/fs).

import { FILE_PREFIX, type CompositionStore, type SegmentList } from '../fs/index.js';

/** One composed file as the gateway reads it: live, mutated in place by its owner. */
export interface ComposedFile {
  /** the composition's name (the mount shows it as livemr_NAME) */
  readonly name: string;
  readonly segments: SegmentList;
  /** source file paths, indexed by the segments' source numbers */
  readonly sources: readonly string[];
  readonly mtimeMs: number;
}

export type SourceEvent = { type: 'change' | 'remove'; name: string };

export interface CompositionSource {
  names(): string[];
  get(name: string): ComposedFile | undefined;
  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: (ev: SourceEvent) => void): () => void;
}

/** The file name Hadoop sees for a composition: the same as on the FUSE mount. */
export const hdfsName = (name: string): string => FILE_PREFIX + name;

/** The composition name behind a Hadoop file name, or undefined if it cannot be one. */
export function compositionName(fileName: string): string | undefined {
  return fileName.startsWith(FILE_PREFIX) && fileName.length > FILE_PREFIX.length
    ? fileName.slice(FILE_PREFIX.length)
    : undefined;
}

/** A source over a store opened in this process (the mount daemon's, or the gateway's own). */
export function storeSource(store: CompositionStore): CompositionSource {
  return {
    names: () => store.list().map((c) => c.name),
    get: (name) => store.get(name),
    subscribe(listener) {
      const onChange = (name: string) => listener({ type: 'change', name });
      const onRemove = (name: string) => listener({ type: 'remove', name });
      store.on('change', onChange);
      store.on('remove', onRemove);
      return () => {
        store.off('change', onChange);
        store.off('remove', onRemove);
      };
    },
  };
}
