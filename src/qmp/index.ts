// LiveMR's QMP client: the protocol layer (./protocol), the vocabulary LiveMR uses (./vocab), and the
// VM model built from the live block graph (./vm). See docs/qmp.md.
export * from './protocol/index.js';
export * from './vocab/block.js';
export * from './vocab/machine.js';
export * from './vocab/channel.js';
export * from './vocab/events.js';
export * from './vm.js';
