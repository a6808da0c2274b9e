/** A socat PTY pair for tests: the simulated RS-485 line (see edge/sim/pty.ts). */
export { openPtyPair, type PtyPair } from '../../edge/sim/pty.js';
