/**
 * Shared by the streetbox nodes. The gateway puts its runtime interface into Node-RED's settings
 * (edge/flows/runtime.ts, `RED.settings.streetbox`) before the flows start; outside a streetbox
 * gateway the nodes show "not connected" and do nothing.
 */
'use strict';

const { commandShorthand } = require('./commandShorthand.js');

/** The gateway's runtime, or null (the node's status says why). */
function runtimeOf(RED, node) {
  let sb = null;
  try {
    sb = RED.settings.streetbox || null;
  } catch (_err) {
    sb = null;
  }
  if (!sb) {
    node.status({ fill: 'red', shape: 'ring', text: 'not connected to a streetbox gateway' });
    node.warn('streetbox runtime not available (is this Node-RED embedded in a streetbox gateway?)');
  }
  return sb;
}

/** "a, b ,c" → ["a","b","c"]; empty → []. */
function splitList(text) {
  if (typeof text !== 'string') return [];
  return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

/** A filter from a comma list with `*` wildcards ("loop*_count, mode"); empty matches everything. */
function matcher(text) {
  const items = splitList(text);
  if (items.length === 0) return () => true;
  const res = items.map((p) => new RegExp('^' + p.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*') + '$'));
  return (value) => typeof value === 'string' && res.some((re) => re.test(value));
}

/**
 * A token bucket: at most `perSecond` messages a second (bursts up to the same number). A node
 * past its limit drops messages and counts them, so a fast producer cannot fill memory with
 * queued messages.
 */
class RateLimit {
  constructor(perSecond) {
    this.rate = perSecond > 0 ? perSecond : Infinity;
    this.tokens = this.rate;
    this.last = Date.now();
    this.dropped = 0;
  }
  take() {
    if (this.rate === Infinity) return true;
    const now = Date.now();
    this.tokens = Math.min(this.rate, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.dropped++;
    return false;
  }
}

/** A target from "group:stationsplein" / "device:lamp-ctrl-01" or { kind, id }; null if neither. */
function parseTarget(t) {
  if (t && typeof t === 'object' && (t.kind === 'device' || t.kind === 'group') && typeof t.id === 'string' && t.id) return { kind: t.kind, id: t.id };
  if (typeof t === 'string') {
    const m = /^(device|group):(.+)$/.exec(t.trim());
    if (m) return { kind: m[1], id: m[2] };
  }
  return null;
}

const FINAL = new Set(['verified', 'failed', 'expired', 'rejected']);

function errorText(err) {
  return err && typeof err.message === 'string' ? err.message : String(err);
}

module.exports = { runtimeOf, splitList, matcher, RateLimit, parseTarget, FINAL, errorText, commandShorthand };
