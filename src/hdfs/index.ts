// WebHDFS gateway: Hadoop reads composed files with no copy (docs/hdfs.md).
export { startGateway, createHandler, DEFAULT_BLOCK_SIZE, GATEWAY_DEFAULTS, PREFIX, type Gateway, type GatewayLimits, type GatewayOptions } from './server.js';
export { LocalNamespace, type Namespace, type FileEntry, type DataLocation } from './namespace.js';
export { storeSource, hdfsName, compositionName, type CompositionSource, type ComposedFile, type SourceEvent } from './source.js';
export { MountSource } from './mount-source.js';
export { Aggregator } from './aggregator.js';
export { AgentReporter, type ReporterOptions } from './agent.js';
export { parseReport, REPORT_PATH, type Report, type ReportedFile } from './report.js';
export { composeFromLocal, parseComposeConfig, readComposeConfig, publishedFileResolver, type GuestFileResolver, type ComposeConfig, type ComposeSink } from './compose-from-local.js';
export { runAgentGateway, runAggregator, type CommonOptions, type Running } from './daemon.js';
export { WebHdfsError } from './errors.js';
export { blocksOf } from './blocks.js';
export { admitLocalUids, isLoopback, peerUid } from './peer.js';
