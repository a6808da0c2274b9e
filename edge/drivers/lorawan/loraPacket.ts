/**
 * lora-packet (CommonJS, `module.exports = modules` at run time, `export default` in its
 * types) re-exported with types that hold under NodeNext.
 */
import lp from 'lora-packet';

type Modules = typeof lp.default;

export const loraPacket: Modules = ((lp as unknown as { default?: Modules }).default ?? lp) as Modules;
export type LoraPacket = ReturnType<Modules['fromWire']>;
export type LoraPacketFields = Parameters<Modules['fromFields']>[0];
