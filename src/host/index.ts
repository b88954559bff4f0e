// The host agent (docs/host.md): what other folders (cli, panel, hdfs) use of it.
export { HostAgent, statusSocketPath, type AgentStatus, type CompositionsEvent } from './agent.js';
export { AgentClient, AgentRequestError, agentRequest, agentStateDir } from './agent-client.js';
export { BigLogError, BigLogs, type BigLogInfo, type BigLogSource } from './biglog.js';
export { ConfigError, loadConfig, parseConfig, type AgentConfig, type VmConfig } from './config.js';
export { QmpControl, type VmControl, type VmControlSession, type VmEvent } from './control/index.js';
export { createLogger, type Level, type Logger } from './log.js';
export { Metrics } from './metrics.js';
export { compositionName, escapePath, unescapePath, VM_NAME } from './naming.js';
export { SHARE_RECORD_STATUS, nextShareStatus, type ShareRecord, type ShareRecordStatus } from './shares.js';
export { VmLink, type SharedFileStatus, type SourceChange, type VmLinkDeps, type VmStatus } from './vm-link.js';
