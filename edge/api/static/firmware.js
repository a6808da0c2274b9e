// streetbox status page, the "Firmware" section (issue 17): the deployments from
// GET /api/v1/deployments, each with its status, artifact, wave and counts, and per device its
// stage, a progress bar of the bytes the device acknowledged, and why it waits. Shown only to the
// tokens that may read them (firmware.view); any other answer hides the section. Read again on each
// snapshot, whenever a firmware.* event arrives, and every few seconds while a deployment is under
// way (a transfer's bytes move without events), one request at a time. Plain JS, no build step;
// everything shown is set as text, never as markup. status.js calls the hooks registered here.
'use strict';
(() => {
  const REFRESH_MS = 5000;
  /** devices shown per deployment; the rest are counted */
  const MAX_JOBS = 50;
  const STAGE_TEXT = {
    pending: 'pending',
    fetching: 'fetching',
    transferring: 'transferring',
    activating: 'activating',
    verifying: 'verifying',
    confirmed: 'confirmed',
    failed: 'failed',
    rolledBack: 'rolled back',
    cancelled: 'cancelled',
  };
  const UNDER_WAY = ['running', 'paused', 'ending'];

  let busy = false;
  let again = false;
  let timer = null;
  /** signed in: the page's helpers (status.js), null once signed out */
  let page = null;

  const $ = (id) => document.getElementById(id);

  async function load() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        const body = await answer();
        if (!page) return;
        if (body === null) hide();
        else render(body.deployments);
      } while (again && page);
    } finally {
      busy = false;
    }
  }

  /** The list, or null when this token may not read it (403), the gateway has no firmware service (404), or it failed. */
  async function answer() {
    try {
      const r = await page.api('/api/v1/deployments?limit=10');
      if (r.status !== 200) return null;
      const body = await r.json();
      return body && Array.isArray(body.deployments) ? body : null;
    } catch {
      return null;
    }
  }

  function hide() {
    $('firmware-section').hidden = true;
    $('deployments').replaceChildren();
    schedule(false);
  }

  /** Another read in REFRESH_MS while a deployment is under way; none otherwise. */
  function schedule(underWay) {
    clearTimeout(timer);
    timer = null;
    if (underWay && page) timer = setTimeout(() => void load(), REFRESH_MS);
  }

  const percent = (done, total) => (total > 0 ? Math.floor((done * 100) / total) : 0);

  function countsText(counts) {
    const parts = Object.keys(STAGE_TEXT)
      .filter((s) => counts && counts[s] > 0)
      .map((s) => counts[s] + ' ' + STAGE_TEXT[s]);
    return parts.length ? parts.join(', ') : 'no devices';
  }

  function render(deployments) {
    const { h, clear, time } = page;
    $('firmware-section').hidden = false;
    const ul = $('deployments');
    clear(ul);
    for (const d of deployments) {
      const a = d.artifact || {};
      const wave = d.waves > 0 ? ' · wave ' + Math.min(d.wave + 1, d.waves) + '/' + d.waves : '';
      const why = d.reason ? d.reason + (d.code ? ' (' + d.code + ')' : '') : d.code || '';
      const jobs = h('ul', { class: 'jobs' });
      for (const j of (d.jobs || []).slice(0, MAX_JOBS)) jobs.append(jobRow(h, j));
      if ((d.jobs || []).length > MAX_JOBS) jobs.append(h('li', { class: 'meta' }, (d.jobs.length - MAX_JOBS) + ' more device(s): streetbox deployments ' + d.id));
      const summary = h(
        'summary',
        null,
        time(d.at),
        ' ',
        h('b', null, d.id),
        ' ',
        h('b', { class: 'status ' + d.status }, d.status),
        ' ',
        h('span', { class: 'meta' }, (a.name || '') + ' ' + (a.version || '') + wave + ' · ' + countsText(d.counts)),
      );
      const item = h('details', { class: 'deployment' }, summary, why ? h('p', { class: 'meta reason' }, why) : null, jobs);
      // under way: open, so its progress shows; ended: one line, open on a click
      if (UNDER_WAY.includes(d.status)) item.open = true;
      ul.append(h('li', { 'data-deployment': d.id, 'data-status': d.status }, item));
    }
    if (deployments.length === 0) ul.append(h('li', { class: 'meta' }, 'no deployment recorded yet'));
    schedule(deployments.some((d) => UNDER_WAY.includes(d.status)));
  }

  function jobRow(h, j) {
    const pct = percent(j.bytesAcked, j.bytes);
    const bar = h('progress', { max: String(j.bytes > 0 ? j.bytes : 1), value: String(j.bytesAcked), 'aria-label': j.device + ' ' + pct + ' %' });
    const note = j.waiting ? 'waiting: ' + j.waiting : j.reason ? j.reason + (j.code ? ' (' + j.code + ')' : '') : j.code || '';
    return h(
      'li',
      { 'data-device': j.device, 'data-stage': j.stage },
      h('span', { class: 'device-id' }, j.device),
      ' ',
      h('b', { class: 'stage ' + j.stage }, STAGE_TEXT[j.stage] || String(j.stage)),
      ' ',
      bar,
      ' ',
      h('span', { class: 'pct' }, pct + ' %'),
      note ? ' ' : null,
      note ? h('span', { class: 'meta note' }, note) : null,
    );
  }

  const hooks = {
    /** a (new) live snapshot; `helpers`: { api, h, clear, time } of status.js */
    snapshot(helpers) {
      page = helpers;
      void load();
    },
    /** a deployment or a job moved on (firmware.deployment.*, firmware.job.*) */
    events(events) {
      if (page && events.some((e) => typeof e.kind === 'string' && e.kind.startsWith('firmware.'))) void load();
    },
    signOut() {
      page = null;
      hide();
    },
  };
  (window.streetboxSections = window.streetboxSections || []).push(hooks);
})();
