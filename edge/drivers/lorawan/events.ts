/**
 * The driver's events, written to the store: what the uplink handler and the downlink sender
 * tell observers (joins, each step of a downlink, TX_ACK errors). An event is one member of the
 * union store/eventKinds.ts declares, so its kind decides its detail: an emitter cannot write a
 * detail its readers do not expect. A store that refuses the row is logged, never thrown into
 * the radio path.
 */
import type { Clock } from '../../clock.js';
import type { Logger } from '../../log.js';
import type { Store } from '../../store/api.js';
import type { EventDetails, EventKind, Severity } from '../../store/types.js';

export type LorawanEventKind = Extract<EventKind, `lorawan.${string}`>;

/** A lorawan.* event as an emitter hands it over (the sink stamps the time): the kind decides the detail. */
export type LorawanEvent = {
  [K in LorawanEventKind]: { device: string | null; kind: K; severity: Severity; detail: EventDetails[K] };
}[LorawanEventKind];

/** Where the LoRaWAN parts report what happened. */
export interface LorawanEvents {
  emit(event: LorawanEvent): void;
}

/** The events sink of the running driver: the gateway's store, stamped with the clock. */
export class StoreEvents implements LorawanEvents {
  private readonly store: Pick<Store, 'appendEvent'>;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(store: Pick<Store, 'appendEvent'>, clock: Clock, log: Logger) {
    this.store = store;
    this.clock = clock;
    this.log = log;
  }

  emit(event: LorawanEvent): void {
    try {
      this.store.appendEvent({ ...event, ts: this.clock.now() });
    } catch (err) {
      this.log.error({ err, kind: event.kind }, 'could not store a lorawan event');
    }
  }
}
