// The control panel (docs/panel.md): what the CLI starts.
export { Panel, API, checkGuestPath } from './server.js';
export { loadPanelConfig, parsePanelConfig, type PanelConfig } from './config.js';
