// streetbox status page, the controls (issue 19): per group (the "Groups" section) and per device
// (device.js calls window.streetboxControl.render in its view). A light's slider starts at its level
// now and follows it until the user touches it; dim, on, off, override (a hold and a reason) and
// release; a traffic controller's mode and program, and a program request that a dry run must pass
// first. Each command sent is followed from the live feed until it is final (#pending and the
// control's own line); a refusal shows its reason. The controls only for roles that may (as the API
// decides: a viewer sees levels, no controls). Plain JS, no build step; everything shown is set as
// text, never as markup. status.js calls the hooks registered at the end.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const FINAL = ['verified', 'failed', 'expired', 'rejected'];
  /** where a status stands on a command's road (edge/control/api.ts statusRank): rows only move forward */
  const rank = (status) => (FINAL.includes(status) ? 2 : status === 'sent' ? 1 : 0);
  const MODES = ['off', 'flashing', 'fixed-time', 'vehicle-actuated', 'manual'];
  const REQUESTS = ['none', 'active', 'rejected', 'expired'];
  /** the points of roles mode, activeProgram and requestStatus (edge/profiles/traffic-controller.yaml) */
  const TRAFFIC = { mode: 'mode', program: 'active_program', request: 'request_status' };
  /** an override's hold; 0: until a time the user picks */
  const HOLDS = [900, 3600, 14400, 0];
  /** a program request's dead-man expiry (the controller's register is uint16 seconds) */
  const EXPIRIES = [120, 300, 600, 900, 1800, 3600];
  /** edge/control/validate.ts MAX_DURATION_S */
  const MAX_HOLD_S = 31 * 86400;
  const MAX_PENDING = 5;
  /** rows of the feed kept by id, for a command whose row arrives before the POST's answer */
  const MAX_SEEN = 50;

  /** the page's helpers (status.js); null once signed out */
  let page = null;
  /** command id → { row, views, done }: commands sent from this page, until final */
  const sent = new Map();
  const seen = new Map();
  /** group id → { level: the text of its level now, control } */
  const groups = new Map();
  let groupsKey = null;

  const holdText = (s) => (s === 0 ? 'until…' : s % 3600 === 0 ? s / 3600 + ' h' : s % 60 === 0 ? s / 60 + ' min' : s + ' s');
  const commandsPath = (target) => '/api/v1/' + (target.kind === 'group' ? 'groups/' : 'devices/') + encodeURIComponent(target.id) + '/commands';

  /** "40 %", "40–60 %" when the lights disagree, "—" when none has said. */
  function levelText(levels) {
    const known = levels.filter((l) => typeof l === 'number');
    if (known.length === 0) return '—';
    const lo = Math.min(...known);
    const hi = Math.max(...known);
    return (lo === hi ? String(lo) : lo + '–' + hi) + ' %';
  }
  /** the level a slider shows for these lights: their mean, null when none has said */
  function levelValue(levels) {
    const known = levels.filter((l) => typeof l === 'number');
    return known.length === 0 ? null : Math.round(known.reduce((a, b) => a + b, 0) / known.length);
  }

  function button(action, text, onClick, type) {
    const b = page.h('button', { type: type || 'button', 'data-action': action }, text);
    if (onClick) b.addEventListener('click', onClick);
    return b;
  }
  const field = (text, input, cls) => page.h('label', { class: cls ? 'field ' + cls : 'field' }, page.h('span', null, text), input);
  const select = (values, text, chosen) => page.h('select', null, ...values.map((v) => page.h('option', v === chosen ? { value: String(v), selected: '' } : { value: String(v) }, text(v))));

  /** POSTs a command body; { status, body } (body {} when not JSON). Signs out when the token is gone. */
  async function post(target, body) {
    const r = await page.api(commandsPath(target), { method: 'POST', body: JSON.stringify(body) });
    const answer = await r.json().catch(() => ({}));
    if (r.status === 401) page.signOut('Your token is no longer accepted. Sign in again.');
    return { status: r.status, body: answer || {} };
  }

  // ---- commands sent, followed to their end ------------------------------------------------------

  /**
   * Sends a command from a control and follows it: a row in #pending and the control's `outcome`
   * line, both moved on by the feed's rows until final; `done(row)` then (the control lets its
   * slider follow the level again).
   */
  async function command(target, body, outcome, done) {
    const { action, ...params } = body;
    const entry = { row: { id: null, action, params, target: { kind: target.kind, id: target.id }, source: { principal: 'you' }, status: 'sending' }, views: [outcome], done };
    const li = page.h('li', null);
    $('pending').prepend(li);
    while ($('pending').children.length > MAX_PENDING) $('pending').lastChild.remove();
    $('dim-section').hidden = false;
    entry.views.push(li);
    show(entry);
    let answer;
    try {
      answer = await post(target, body);
    } catch {
      return finish(entry, { status: 'failed', why: 'the gateway did not answer' });
    }
    if (typeof answer.body.id === 'string') entry.row.id = answer.body.id;
    if (answer.status !== 202 || !entry.row.id) return finish(entry, { status: 'rejected', why: (answer.body.error || 'refused') + ' (' + answer.status + ')' });
    entry.row.status = answer.body.status || 'queued';
    sent.set(entry.row.id, entry);
    show(entry);
    const early = seen.get(entry.row.id);
    if (early) follow(early);
    else if (rank(entry.row.status) === 2) finish(entry, {});
  }

  function finish(entry, change) {
    Object.assign(entry.row, change);
    show(entry);
    sent.delete(entry.row.id);
    if (entry.done) entry.done(entry.row);
  }

  /** A command row of the feed: moves a command sent from here on (never backwards). */
  function follow(c) {
    seen.delete(c.id);
    seen.set(c.id, c);
    if (seen.size > MAX_SEEN) seen.delete(seen.keys().next().value);
    const entry = sent.get(c.id);
    if (!entry || rank(c.status) < rank(entry.row.status)) return;
    const why = c.result && typeof c.result.error === 'string' ? c.result.error : '';
    entry.row = { ...c, source: { principal: 'you' }, why };
    if (rank(c.status) === 2) finish(entry, {});
    else show(entry);
  }

  /** "dim 35 % → group main by you: verified", a refusal's reason, an override's hold and reason, a program. */
  function show(entry) {
    if (!page) return; // signed out meanwhile
    const { h } = page;
    const c = entry.row;
    const p = c.params || {};
    const extra = [];
    if (c.action === 'program') extra.push(p.program === 0 ? 'release' : 'program ' + p.program + (p.expiresInS ? ' for ' + holdText(p.expiresInS) : ''));
    if (typeof p.durationS === 'number') extra.push('for ' + holdText(p.durationS));
    if (p.reason) extra.push(p.reason);
    for (const v of entry.views) {
      v.replaceChildren(page.commandText(c), h('b', { class: c.status }, c.status), c.why ? ': ' + c.why : '', extra.length ? h('span', { class: 'meta' }, ' · ' + extra.join(' · ')) : '');
      v.dataset.status = c.status;
      if (c.id) v.dataset.command = c.id;
    }
  }

  // ---- lights ------------------------------------------------------------------------------------

  /**
   * The controls of a light or a group of lights: a level slider (at `level` until the user touches
   * it), Dim / On / Off / Release, and an override with its hold and reason. setLevel(level) moves
   * the slider to the level now, unless the user has touched it since its last command ended.
   */
  function lightControls(target, level) {
    const { h } = page;
    let touched = false;
    const slider = h('input', { type: 'range', min: '0', max: '100', step: '1', value: String(level === null ? 100 : level), 'aria-label': 'level for ' + (target.name || target.id) });
    const out = h('output', null, slider.value + ' %');
    const touch = () => (touched = true);
    slider.addEventListener('pointerdown', touch);
    slider.addEventListener('keydown', touch);
    slider.addEventListener('input', () => {
      touched = true;
      out.textContent = slider.value + ' %';
    });
    const outcome = h('p', { class: 'outcome', role: 'status' });
    // once the command ends, the slider follows the level again (unless it is being dragged)
    const send = (body) => void command(target, body, outcome, () => (touched = document.activeElement === slider));
    const buttons = h(
      'div',
      { class: 'buttons' },
      button('dim', 'Dim', () => send({ action: 'dim', level: Number(slider.value) })),
      button('on', 'On', () => send({ action: 'on' })),
      button('off', 'Off', () => send({ action: 'off' })),
      button('release', 'Release', () => send({ action: 'release' })),
    );
    const el = h('div', { class: 'controls' }, h('label', { class: 'level' }, h('span', null, 'Level'), slider, out), buttons, overrideForm(target, () => Number(slider.value), send), outcome);
    return {
      el,
      setLevel(now) {
        if (touched || now === null || now === undefined) return;
        slider.value = String(now);
        out.textContent = slider.value + ' %';
      },
    };
  }

  /** Override at the slider's level: a hold (15 min … 4 h, or until a time in the gateway's zone) and a reason, both required. */
  function overrideForm(target, level, send) {
    const { h } = page;
    const hold = select(HOLDS, holdText, 3600);
    const until = h('input', { type: 'datetime-local' });
    const untilField = field('until (gateway time)', until);
    untilField.hidden = true;
    hold.addEventListener('change', () => {
      untilField.hidden = hold.value !== '0';
      until.required = !untilField.hidden;
      if (!until.value) until.value = page.iso(Date.now() + 3600000).slice(0, 16);
    });
    until.addEventListener('input', () => until.setCustomValidity(''));
    const reason = h('input', { type: 'text', required: '', maxlength: '200', pattern: '.*\\S.*', placeholder: 'why (kept with the command)', autocomplete: 'off' });
    const form = h('form', { class: 'override' }, field('Hold', hold), untilField, field('Reason', reason, 'wide'), button('override', 'Override', null, 'submit'));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const durationS = hold.value === '0' ? untilSeconds(until) : Number(hold.value);
      if (durationS === null) return;
      send({ action: 'override', level: level(), durationS, reason: reason.value.trim() });
    });
    return h('details', { class: 'more' }, h('summary', null, 'Override…'), form);
  }

  /** Seconds from now until the input's wall time in the gateway's zone; null (and says why) when not in (now, now + 31 days]. */
  function untilSeconds(input) {
    const s = Math.round((zonedMs(input.value) - Date.now()) / 1000);
    const ok = Number.isFinite(s) && s > 0 && s <= MAX_HOLD_S;
    input.setCustomValidity(ok ? '' : 'a time after now, within 31 days');
    input.reportValidity();
    return ok ? s : null;
  }

  /** "2026-12-04T23:00" read in the gateway's zone (the offset of that instant, as ctx.iso says it). */
  function zonedMs(local) {
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d$/.test(local)) return NaN;
    const at = (ms) => Date.parse(local + ':00' + page.iso(ms).slice(-6));
    return at(at(Date.now()));
  }

  // ---- traffic controllers -----------------------------------------------------------------------

  function trafficText(values) {
    const v = (point) => (values && values[point] && typeof values[point].v === 'number' ? values[point].v : null);
    const mode = v(TRAFFIC.mode);
    const program = v(TRAFFIC.program);
    const request = v(TRAFFIC.request);
    return [
      'mode ' + (mode === null ? '—' : (MODES[mode] || 'unknown') + ' (' + mode + ')'),
      'program ' + (program === null ? '—' : program === 0 ? 'none' : program),
      'request ' + (request === null ? '—' : REQUESTS[request] || String(request)),
    ].join(' · ');
  }

  /**
   * A program request: program and expiry, "Dry run" (what the control plane would answer; nothing
   * is sent to the controller), and "Request", enabled only by a dry run that passed for the
   * fields as they are; "Release request" hands the controller back to its own plan.
   */
  function programForm(target) {
    const { h } = page;
    const program = h('input', { type: 'number', min: '1', max: '65535', step: '1', required: '', inputmode: 'numeric' });
    const expiry = select(EXPIRIES, holdText, 300);
    const answer = h('p', { class: 'answer', role: 'status' }, 'A dry run first: Request is enabled when it passes.');
    const outcome = h('p', { class: 'outcome', role: 'status' });
    let passed = null;
    const fields = () => program.value + '/' + expiry.value;
    const request = button('program', 'Request', () => {
      passed = null;
      request.disabled = true;
      answer.textContent = 'Requested. A new request (or a renewal) needs a new dry run.';
      answer.className = 'answer';
      void command(target, { action: 'program', program: Number(program.value), expiresInS: Number(expiry.value) }, outcome);
    });
    request.disabled = true;
    const changed = () => {
      if (passed === null) return;
      passed = null;
      request.disabled = true;
      answer.textContent = 'Changed: dry run again.';
      answer.className = 'answer';
    };
    program.addEventListener('input', changed);
    expiry.addEventListener('change', changed);
    const dry = button('dry-run', 'Dry run', () => {
      if (!program.reportValidity()) return;
      const asked = fields();
      dry.disabled = true;
      answer.textContent = 'asking…';
      void dryRun(target, { action: 'program', program: Number(program.value), expiresInS: Number(expiry.value), dryRun: true })
        .then((r) => {
          answer.textContent = r.text;
          answer.className = 'answer ' + (r.ok ? 'verified' : 'rejected');
          passed = r.ok && asked === fields() ? asked : null;
          request.disabled = passed === null;
        })
        .finally(() => (dry.disabled = false));
    });
    const release = button('release', 'Release request', () => void command(target, { action: 'release' }, outcome));
    return h('form', { class: 'program' }, field('Program', program), field('Expiry', expiry), h('div', { class: 'buttons' }, dry, request, release), answer, outcome);
  }

  /** A dry run's answer as text: accepted (with the controller's mode and whether it renews) or why not. */
  async function dryRun(target, body) {
    let r;
    try {
      r = await post(target, body);
    } catch {
      return { ok: false, text: 'No answer from the gateway.' };
    }
    if (!page) return { ok: false, text: '' }; // signed out meanwhile
    if (r.status !== 202) return { ok: false, text: 'Would be refused (' + r.status + '): ' + (r.body.error || 'refused') };
    const got = await page.api('/api/v1/commands/' + encodeURIComponent(r.body.id)).then((x) => x.json()).catch(() => null);
    const res = (got && got.result) || {};
    if (res.accepted !== true) return { ok: false, text: 'Would be refused: ' + (res.error || 'no answer') };
    const parts = ['program ' + res.program + ' for ' + holdText(res.expiresInS)];
    if (res.mode) parts.push('controller in ' + (MODES[res.mode.value] || res.mode.name) + ' mode');
    if (res.online === false) parts.push('but it is offline now');
    if (res.renews) parts.push('renews the active request');
    return { ok: true, text: 'Would be accepted: ' + parts.join(', ') + '. Whether it knows the program is the controller’s to say.' };
  }

  // ---- a device, in the device view (device.js) --------------------------------------------------

  function deviceView(target, info) {
    const { h } = page;
    const may = page.may || {};
    const kind = info && info.kind;
    if (kind === 'lighting') {
      const now = h('span', { class: 'now' }, levelText([info.level]));
      const controls = may.commandLighting ? lightControls(target, info.level ?? null) : null;
      return {
        el: h('div', { class: 'control', 'data-control': target.id }, h('p', { class: 'state' }, 'Level now: ', now), controls ? controls.el : null),
        update(next) {
          now.textContent = levelText([next.level]);
          if (controls) controls.setLevel(next.level);
        },
      };
    }
    if (kind === 'traffic') {
      const state = h('p', { class: 'state' }, trafficText(info.values));
      return {
        el: h('div', { class: 'control', 'data-control': target.id }, state, may.commandTraffic ? programForm(target) : null),
        update: (next) => (state.textContent = trafficText(next.values)),
      };
    }
    return { el: h('div', { class: 'control', 'data-control': target.id }), update() {} };
  }

  window.streetboxControl = {
    /** Builds the controls of `target` ({ kind, id, name }) into `el`; { update(info) } refreshes them (see the file's comment). */
    render(el, ctx, target, info) {
      page = ctx;
      const view = deviceView(target, info || {});
      el.replaceChildren(view.el);
      return { update: (next) => view.update(next || {}) };
    },
  };

  // ---- the groups (#groups) ----------------------------------------------------------------------

  /** One row per group for a role that may command lighting (none otherwise); rebuilt only when the groups change. */
  function renderGroups(s) {
    const may = !!(s.may && s.may.commandLighting);
    const list = may && Array.isArray(s.groups) ? s.groups : [];
    // commands sent from a device's view show in #pending too
    $('dim-section').hidden = list.length === 0 && $('pending').children.length === 0;
    const key = list.join('\u0000');
    if (key === groupsKey) return;
    groupsKey = key;
    groups.clear();
    const { h } = page;
    const rows = list.map((g) => {
      const level = h('span', { class: 'meta now' }, '');
      const control = lightControls({ kind: 'group', id: g, name: g }, null);
      groups.set(g, { level, control });
      return h('div', { class: 'group', 'data-group-row': g }, h('div', { class: 'head' }, h('b', null, g), level), control.el);
    });
    $('groups').replaceChildren(...rows);
  }

  /** Each group's members and their level now (the status rows' `level`), on the row and its slider. */
  function groupLevels(devices) {
    for (const [g, row] of groups) {
      const members = (devices || []).filter((d) => Array.isArray(d.groups) && d.groups.includes(g));
      const levels = members.map((d) => d.level);
      row.level.textContent = members.length + (members.length === 1 ? ' light' : ' lights') + ' · ' + levelText(levels);
      row.control.setLevel(levelValue(levels));
    }
  }

  const hooks = {
    snapshot(ctx, s) {
      page = ctx;
      renderGroups(s);
      for (const c of s.commands || []) follow(c);
    },
    status(s) {
      if (page) groupLevels(s.devices);
    },
    commands(rows) {
      if (page) for (const c of rows) follow(c);
    },
    signOut() {
      page = null;
      groupsKey = null;
      groups.clear();
      sent.clear();
      seen.clear();
      $('groups').replaceChildren();
      $('pending').replaceChildren();
      $('dim-section').hidden = true;
    },
  };
  (window.streetboxSections = window.streetboxSections || []).push(hooks);
})();
