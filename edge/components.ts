/**
 * The components a configuration asks for, in start order (they stop in reverse):
 * simulators first (so the drivers find their peers), then drivers, control, broker, API,
 * flows and upstream sync.
 */
import type { Component, GatewayContext } from './component.js';

export async function buildComponents(ctx: GatewayContext): Promise<Component[]> {
  const components: Component[] = [];
  void ctx;
  return components;
}
