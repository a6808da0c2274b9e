/**
 * Application data units around a PDU: the RTU frame (address, PDU, CRC-16) and the TCP MBAP
 * header, plus the serial-line timing (character time, t1.5, t3.5) the RTU transport keeps.
 * The CRC-16 itself is crc.ts.
 */

import { putCrc } from './crc.js';

/** Modbus over serial line 2.5.1: [address][PDU][CRC lo][CRC hi]. */
export function encodeRtuFrame(unit: number, pdu: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(pdu.length + 3);
  frame[0] = unit;
  frame.set(pdu, 1);
  putCrc(frame, pdu.length + 1);
  return frame;
}

/**
 * The total length of a *response* RTU frame from its first bytes: a number, `undefined` when
 * more bytes are needed to tell, or -1 when the function code is not one we speak.
 */
export function rtuResponseLength(buf: Uint8Array, length = buf.length): number | undefined {
  if (length < 2) return undefined;
  const fc = buf[1]!;
  if (fc & 0x80) return 5; // address, fc|0x80, exception code, CRC (2)
  switch (fc) {
    case 1:
    case 2:
    case 3:
    case 4:
    // MODBUS Application Protocol V1.1b3 §6.14/§6.15: file record answers carry their data length at offset 2
    case 20:
    case 21:
      return length < 3 ? undefined : 5 + buf[2]!;
    case 5:
    case 6:
    case 15:
    case 16:
      return 8;
    default:
      return -1;
  }
}

/**
 * The total length of a *request* RTU frame from its first bytes (for servers), like
 * rtuResponseLength: FC 15/16 carry a byte count at offset 6, FC 20/21 at offset 2.
 */
export function rtuRequestLength(buf: Uint8Array, length = buf.length): number | undefined {
  if (length < 2) return undefined;
  switch (buf[1]) {
    case 1:
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
      return 8;
    case 15:
    case 16:
      return length < 7 ? undefined : 9 + buf[6]!;
    // MODBUS Application Protocol V1.1b3 §6.14/§6.15: request data length at offset 2
    case 20:
    case 21:
      return length < 3 ? undefined : 5 + buf[2]!;
    default:
      return -1;
  }
}

// ---------------------------------------------------------------------------------------
// Modbus Messaging on TCP/IP Implementation Guide V1.0b §3.1.3: MBAP header
// [transaction id (2)][protocol id = 0 (2)][length (2) = unit + PDU][unit id (1)]

export const MBAP_LENGTH = 7;

export function encodeMbap(transactionId: number, unit: number, pdu: Uint8Array): Buffer {
  const adu = Buffer.allocUnsafe(MBAP_LENGTH + pdu.length);
  adu.writeUInt16BE(transactionId & 0xffff, 0);
  adu.writeUInt16BE(0, 2);
  adu.writeUInt16BE(pdu.length + 1, 4);
  adu[6] = unit;
  adu.set(pdu, MBAP_LENGTH);
  return adu;
}

// ---------------------------------------------------------------------------------------
// Serial-line timing

export interface SerialTiming {
  /** bits on the wire per character: start + data + parity + stop */
  bitsPerChar: number;
  /** one character, µs */
  charUs: number;
  /** Modbus over serial line 2.5.1.1: max silence inside a frame, µs */
  t15Us: number;
  /** Modbus over serial line 2.5.1.1: min silence between frames, µs */
  t35Us: number;
}

export function serialTiming(baud: number, dataBits: number, parity: 'none' | 'even' | 'odd', stopBits: number): SerialTiming {
  const bitsPerChar = 1 + dataBits + (parity === 'none' ? 0 : 1) + stopBits;
  const charUs = (bitsPerChar * 1e6) / baud;
  // Modbus over serial line 2.5.1.1: above 19200 bps fixed values of 750 µs (t1.5) and
  // 1.750 ms (t3.5) are recommended.
  const fixed = baud > 19200;
  return {
    bitsPerChar,
    charUs,
    t15Us: fixed ? 750 : 1.5 * charUs,
    t35Us: fixed ? 1750 : 3.5 * charUs,
  };
}

/** Time on the wire for `bytes` characters, ms. */
export function wireMs(timing: SerialTiming, bytes: number): number {
  return (bytes * timing.charUs) / 1000;
}
