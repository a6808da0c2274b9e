/** Embedded Node-RED as main.ts imports it (DESIGN.md: components talk through edge/<x>/index.ts). */
export { createFlowsComponent, type FlowsComponent, type FlowsDeps, type FlowsHost } from './flowsComponent.js';
export { DEFAULT_FLOW_FILE, NODES_DIR, SECRET_ENV, preparePaths, type FlowPaths } from './settings.js';
export { nightCheck, type StreetboxRuntime, type FlowGlobals } from './runtime.js';
