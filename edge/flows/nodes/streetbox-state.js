/**
 * streetbox state: the latest value of every point of a device (the last polled, stored or not),
 * from the store (no bus traffic). msg.payload maps point → value; msg.state keeps each value's time, unit and quality.
 */
'use strict';

const { runtimeOf } = require('./lib.js');

module.exports = function (RED) {
  function StreetboxStateNode(config) {
    RED.nodes.createNode(this, config);
    const node = this;
    const sb = runtimeOf(RED, node);
    if (!sb) return;

    node.on('input', (msg, send, done) => {
      const device = (config.device || '').trim() || msg.device;
      if (typeof device !== 'string' || device === '') {
        done(new Error('no device: configure one or give msg.device'));
        return;
      }
      const state = sb.latest(device);
      const point = (config.point || '').trim() || msg.point;
      msg.device = device;
      msg.state = state;
      if (typeof point === 'string' && point !== '') {
        msg.point = point;
        msg.payload = state[point] ? state[point].value : null;
      } else {
        msg.payload = Object.fromEntries(Object.entries(state).map(([k, v]) => [k, v.value]));
      }
      send(msg);
      done();
    });
  }
  RED.nodes.registerType('streetbox state', StreetboxStateNode);
};
