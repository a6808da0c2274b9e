/**
 * The timing of an RS-485 line, for simulators on a PTY (which carries bytes at memory speed
 * whatever the baud). // Modbus over serial line V1.02 §2.5.1.1: a character is
 * start + 8 data + parity-or-second-stop + stop = 11 bits; frames are separated by at least
 * 3.5 character times (fixed at 1.75 ms above 19200 baud).
 */
export interface WireTime {
  baud: number;
  /** bits on the wire per character: 11 for 8E1, 8O1 and 8N2; 10 for 8N1 */
  bitsPerChar: number;
}

/** ms to carry `bytes` characters. */
export function charsMs(w: WireTime, bytes: number): number {
  return (bytes * w.bitsPerChar * 1000) / w.baud;
}

/** The t3.5 inter-frame silence in ms. // Modbus over serial line V1.02 §2.5.1.1 */
export function t35Ms(w: WireTime): number {
  return w.baud > 19200 ? 1.75 : charsMs(w, 3.5);
}

/**
 * The shortest time one read transaction can take on the line: the request, the slave's
 * t3.5 end-of-frame silence, the response, and the master's t3.5 before the next request.
 */
export function transactionMs(w: WireTime, requestBytes: number, responseBytes: number): number {
  return charsMs(w, requestBytes + responseBytes) + 2 * t35Ms(w);
}

/**
 * Runs `fn` at `at` (performance.now() ms) with sub-millisecond precision: a timer for
 * the bulk of the wait, then a short setImmediate spin. Never runs `fn` synchronously.
 * Returns a cancel function.
 */
export function runAt(at: number, fn: () => void): () => void {
  let cancelled = false;
  let timer: NodeJS.Timeout | null = null;
  let immediate: NodeJS.Immediate | null = null;
  const spin = (): void => {
    immediate = null;
    if (cancelled) return;
    if (performance.now() >= at) fn();
    else immediate = setImmediate(spin);
  };
  const wait = at - performance.now();
  if (wait > 2) {
    timer = setTimeout(() => {
      timer = null;
      spin();
    }, wait - 1.5);
  } else immediate = setImmediate(spin);
  return () => {
    cancelled = true;
    if (timer) clearTimeout(timer);
    if (immediate) clearImmediate(immediate);
  };
}
