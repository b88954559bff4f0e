// HDFS PROVIDED storage: a snapshot of composed files as an fsimage + block alias map that a stock
// NameNode and DataNode serve as hdfs:// files, the DataNode reading through the FUSE mount (docs/hdfs.md).
export {
  exportProvided, DEFAULT_EXPORT_BLOCK_SIZE, DEFAULT_START_BLOCK_ID, HADOOP_3_4_LAYOUT_VERSION, PROVIDED_STORAGE_ID, TEXT_ALIAS_MAP_CLASS,
  type ExportOptions, type ExportResult, type ExportedFile,
} from './export.js';
export { imageBytes, versionFile, writeNameDir, IMAGE_NAME, ROOT_INODE_ID, PROVIDED_STORAGE_POLICY_ID, type NameDirSpec, type ImageFile } from './fsimage.js';
export { ExportError, type ExportErrorCode } from './errors.js';
