/**
 * Runs a pymodbus 3.0 client under /usr/bin/python3 against a server (TCP or RTU) and returns
 * the results of a script of operations: an independent client for the simulator tests.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PYTHON } from './pymodbus.js';

const SCRIPT = fileURLToPath(new URL('./pymodbus_client.py', import.meta.url));

export type PyOp =
  | { op: 'read_holding' | 'read_input' | 'read_coils' | 'read_discrete'; unit: number; address: number; count: number }
  | { op: 'write_register'; unit: number; address: number; value: number }
  | { op: 'write_registers'; unit: number; address: number; values: number[] }
  | { op: 'write_coil'; unit: number; address: number; value: boolean };

export interface PyResult {
  ok: boolean;
  values?: (number | boolean)[];
  exception?: number;
  error?: string;
}

export function runPyClient(target: { tcp: number } | { rtu: string; baud?: number }, ops: PyOp[], timeoutS = 2): Promise<PyResult[]> {
  const args = [SCRIPT, ...('tcp' in target ? ['--tcp', String(target.tcp)] : ['--rtu', target.rtu, '--baud', String(target.baud ?? 9600)]), '--timeout', String(timeoutS)];
  return new Promise((resolve, reject) => {
    const child = execFile(PYTHON, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pymodbus client failed: ${err.message}\n${stderr}`));
      else resolve(JSON.parse(stdout) as PyResult[]);
    });
    child.stdin!.end(JSON.stringify(ops));
  });
}
