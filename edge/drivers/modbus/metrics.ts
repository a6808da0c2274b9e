/**
 * The Modbus buses' counters, in the driver's registry (edge/metrics.ts), one series per bus:
 * rendered on /metrics as `streetbox_modbus_*_total{bus="…"}` and shown per bus in
 * GET /api/v1/status. The bulk counters (firmware blocks, the scheduler's bulk priority) say
 * how much of the line's time transfers took.
 */
import { MetricsRegistry, type Family, type MetricSample, type Series } from '../../metrics.js';
import type { TransportCounters } from './transport/types.js';

type CounterName = keyof TransportCounters;

const FAMILIES: Record<CounterName, readonly [name: string, help: string]> = {
  requests: ['streetbox_modbus_requests_total', 'Modbus requests sent, per bus'],
  responses: ['streetbox_modbus_responses_total', 'Modbus answers taken (exception answers included), per bus'],
  timeouts: ['streetbox_modbus_timeouts_total', 'Modbus requests without a complete answer within the timeout, per bus'],
  crcErrors: ['streetbox_modbus_crc_errors_total', 'RTU answers with a bad CRC-16, per bus'],
  frameErrors: ['streetbox_modbus_frame_errors_total', 'truncated frames, gaps over t1.5, unknown function codes, bad MBAP headers, per bus'],
  discardedUnit: ['streetbox_modbus_discarded_unit_total', 'complete answers from another unit than the one asked, per bus'],
  discardedTransaction: ['streetbox_modbus_discarded_transaction_total', 'TCP answers with another transaction id than the one in flight (late answers), per bus'],
  discardedBytes: ['streetbox_modbus_discarded_bytes_total', 'bytes received outside any answer, per bus'],
  connects: ['streetbox_modbus_connects_total', 'times the bus was opened (serial port) or connected (TCP)'],
};

const NAMES = Object.keys(FAMILIES) as CounterName[];

/** The counters of one bus: series to count into, and their values. */
export type BusCounters = Readonly<Record<CounterName, Series>> & { snapshot(): TransportCounters };

/** The bulk counters of one bus. */
export interface BulkCounters {
  /** line time held by bulk transactions, seconds */
  seconds: Series;
  /** bulk transactions (retries count again) */
  transactions: Series;
}

export class ModbusMetrics {
  private readonly registry = new MetricsRegistry();
  private readonly families = {} as Record<CounterName, Family<'bus'>>;
  private readonly bulkSeconds: Family<'bus'>;
  private readonly bulkTransactions: Family<'bus'>;

  constructor() {
    for (const k of NAMES) this.families[k] = this.registry.counter(FAMILIES[k][0], FAMILIES[k][1], ['bus']);
    this.bulkSeconds = this.registry.counter('streetbox_modbus_bulk_seconds_total', 'line time held by bulk transactions (firmware blocks), per bus', ['bus']);
    this.bulkTransactions = this.registry.counter('streetbox_modbus_bulk_transactions_total', 'bulk transactions (firmware blocks, retries included), per bus', ['bus']);
  }

  /** The bulk counters of bus `busId` (made at 0 on first use). */
  bulk(busId: string): BulkCounters {
    return { seconds: this.bulkSeconds.labels({ bus: busId }), transactions: this.bulkTransactions.labels({ bus: busId }) };
  }

  /** The counters of bus `busId` (made at 0 on first use). */
  bus(busId: string): BusCounters {
    const series = {} as Record<CounterName, Series>;
    for (const k of NAMES) series[k] = this.families[k].labels({ bus: busId });
    return {
      ...series,
      snapshot: () => {
        const out = {} as TransportCounters;
        for (const k of NAMES) out[k] = series[k].value;
        return out;
      },
    };
  }

  samples(): MetricSample[] {
    return this.registry.samples();
  }
}
