/** The embedded MQTT broker as main.ts and other components import it. */
export { createBroker, deviceKindFromConfig, MAX_SET_PAYLOAD, type BrokerComponent, type BrokerDeps } from './broker.js';
export { topicsFor, type Topics } from './topics.js';
