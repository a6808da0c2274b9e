/**
 * The shorthand a command may take instead of a JSON body, the same on every door that takes one:
 * the broker's set topics (on the gateway and upstream, edge/broker, cloud-sync) and the Node-RED
 * command node (streetbox-command.js). A bare level (`45`, "45") is a dim to it; a single word
 * ("ON", "off", "release", any case: Home Assistant and Zigbee2MQTT send "ON" / "OFF") is that
 * action. Anything else is null: the door hands the text on as it is, and the pipeline parses it as
 * JSON and refuses what is not a command, with the reason, and records it.
 *
 * CommonJS with no dependencies: Node-RED loads the nodes as CommonJS files from this folder, and
 * the gateway imports this file as a module (commandShorthand.d.ts gives it its types).
 */
'use strict';

const LEVEL = /^[+-]?\d{1,9}(\.\d{1,9})?$/;
const WORD = /^[A-Za-z]{1,32}$/;

/** `45` / "45" → { action: "dim", level: 45 }; "ON" → { action: "on" }; anything else → null. */
function commandShorthand(payload) {
  if (typeof payload === 'number') return { action: 'dim', level: payload };
  if (typeof payload !== 'string' || payload.length > 64) return null;
  const s = payload.trim();
  if (LEVEL.test(s)) return { action: 'dim', level: Number(s) };
  if (WORD.test(s)) return { action: s.toLowerCase() };
  return null;
}

module.exports = { commandShorthand };
