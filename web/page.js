// The operator's page: reads the handler's JSON (api/...), posts its
// actions (actions/...), refreshes itself. Every URL is relative to the
// handler's own path, found from where the page is (.../ or
// .../events/ID), so the handler may be mounted under any path (a <base>
// would do it, but the Content-Security-Policy has base-uri 'none'). What
// comes from the spool is put on the page as text (textContent, append of
// strings), never as markup.
'use strict';

(function () {
  // Kept: history.pushState moves the page between the two.
  const BASE = new URL(/\/events\/[^/]+$/.test(location.pathname) ? '../' : './', location.href).href;
  const REFRESH_MS = 5000;
  const CHART_EVERY = 6; // refreshes: the chart every 30 s
  const $ = (id) => document.getElementById(id);

  let session = { csrf: null, actions: false };
  let chart = null;
  let chartData = null;
  let openId = null;
  let ticks = 0;
  const rows = new Map(); // destination name -> its row's cells

  function url(path) {
    return new URL(path, BASE);
  }

  // An element with a class and a text, and children (elements or text).
  function el(tag, cls, text, ...kids) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  class HttpError extends Error {
    constructor(status, text) {
      super(text);
      this.status = status;
    }
  }

  async function answer(r) {
    let body = null;
    try {
      body = await r.json();
    } catch (e) {
      body = null;
    }
    if (!r.ok) throw new HttpError(r.status, (body && body.error) || 'HTTP ' + r.status);
    return body;
  }

  async function getJSON(path) {
    const r = await fetch(url(path), {
      credentials: 'same-origin',
      cache: 'no-store',
      headers: { Accept: 'application/json' },
    });
    return answer(r);
  }

  async function post(path, fields) {
    const body = new URLSearchParams(fields);
    body.set('csrf', session.csrf || '');
    const r = await fetch(url(path), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { Accept: 'application/json' },
      body: body,
    });
    return answer(r);
  }

  // ---- text ----

  function age(secs) {
    if (secs === null || secs === undefined) return '–';
    if (secs >= 86400) return Math.floor(secs / 86400) + 'd ' + Math.floor((secs % 86400) / 3600) + 'h';
    if (secs >= 3600) return Math.floor(secs / 3600) + 'h ' + Math.floor((secs % 3600) / 60) + 'm';
    if (secs >= 60) return Math.floor(secs / 60) + 'm ' + (secs % 60) + 's';
    return secs + 's';
  }

  function when(iso) {
    return iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '–';
  }

  function failure(status, error) {
    if (!status && !error) return '';
    return (status ? status + ' ' : '') + (error || '');
  }

  function setState(text, isError) {
    const s = $('state');
    s.textContent = text;
    s.classList.toggle('error', !!isError);
  }

  // The state line for a failed read: a link to the login form on 401.
  function showError(e) {
    if (e instanceof HttpError && e.status === 401) {
      const s = $('state');
      s.textContent = 'not logged in: ';
      const a = el('a', null, 'log in');
      a.href = url('login').href;
      s.append(a);
      s.classList.add('error');
      return;
    }
    setState('refresh failed: ' + e.message, true);
  }

  // ---- destinations ----

  function makeRow(name) {
    const tr = el('tr');
    tr.dataset.dest = name;
    const cells = {};
    for (const k of ['name', 'pending', 'retrying', 'dead', 'delivered', 'oldest', 'breaker', 'error']) {
      const numeric = ['pending', 'retrying', 'dead', 'delivered'].includes(k);
      cells[k] = el('td', numeric ? 'num ' + k : k === 'error' ? 'err' : k);
      tr.append(cells[k]);
    }
    if (session.actions) {
      const td = el('td', 'actions');
      cells.retry = el('button', null, 'Retry dead letters');
      cells.retry.type = 'button';
      cells.retry.addEventListener('click', () => retryDead(name, cells.retry));
      const replay = el('button', null, 'Replay…');
      replay.type = 'button';
      replay.addEventListener('click', () => openReplay(name));
      td.append(cells.retry, replay);
      tr.append(td);
    }
    return { tr: tr, cells: cells };
  }

  function fillRow(row, d) {
    const c = row.cells;
    c.name.textContent = d.name + (d.configured ? '' : ' (not configured)');
    c.pending.textContent = d.pending;
    c.retrying.textContent = d.retrying;
    c.dead.textContent = d.dead;
    c.delivered.textContent = d.delivered;
    for (const k of ['pending', 'retrying', 'dead', 'delivered']) c[k].classList.toggle('zero', d[k] === 0);
    c.oldest.textContent = age(d.oldest_pending_seconds);
    c.oldest.title = d.oldest_pending || '';
    const b = d.breaker;
    c.breaker.textContent = b ? (b.state === 'open' ? 'open since ' + when(b.opened) : 'closed') : '–';
    c.breaker.classList.toggle('open', !!(b && b.state === 'open'));
    c.error.textContent = failure(d.last_status, d.last_error);
    if (c.retry) c.retry.disabled = !d.configured || d.dead === 0;
  }

  function renderDests(list) {
    const tbody = $('dests').tBodies[0];
    const seen = new Set();
    for (const d of list) {
      seen.add(d.name);
      let row = rows.get(d.name);
      if (!row) {
        row = makeRow(d.name);
        rows.set(d.name, row);
      }
      fillRow(row, d);
      tbody.append(row.tr); // in the API's order
    }
    for (const [name, row] of rows) {
      if (!seen.has(name)) {
        row.tr.remove();
        rows.delete(name);
      }
    }
    if (list.length === 0 && tbody.rows.length === 0) {
      const tr = el('tr', null, null, el('td', 'muted', 'no destination configured'));
      tbody.append(tr);
    }
  }

  // ---- actions ----

  function actionResult(text, isError) {
    const r = $('action-result');
    r.textContent = text;
    r.classList.toggle('error', !!isError);
  }

  async function retryDead(name, button) {
    button.disabled = true;
    try {
      const a = await post('actions/retry', { dest: name });
      actionResult(a.destination + ': ' + a.retried + ' dead letters queued again');
      await refresh();
    } catch (e) {
      actionResult(name + ': retry failed: ' + e.message, true);
      button.disabled = false;
    }
  }

  function openReplay(name) {
    const f = $('replay');
    f.dataset.dest = name;
    $('replay-dest').textContent = name;
    f.hidden = false;
    f.elements.since.focus();
  }

  async function submitReplay(ev) {
    ev.preventDefault();
    const f = $('replay');
    const name = f.dataset.dest;
    try {
      const a = await post('actions/replay', {
        dest: name,
        since: f.elements.since.value.trim(),
        until: f.elements.until.value.trim(),
      });
      actionResult(a.destination + ': ' + a.queued + ' events queued again');
      f.hidden = true;
      await refresh();
    } catch (e) {
      actionResult(name + ': replay failed: ' + e.message, true);
    }
  }

  // ---- chart ----

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function chartSize() {
    const w = $('chart').clientWidth || 600;
    return { width: w, height: w < 500 ? 200 : 260 };
  }

  function makeChart(data) {
    const axis = { stroke: cssVar('--muted'), grid: { stroke: cssVar('--line'), width: 1 }, ticks: { stroke: cssVar('--line') } };
    const opts = Object.assign(chartSize(), {
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(5, max)] } },
      series: [
        {},
        { label: 'received', stroke: cssVar('--received'), width: 2, points: { show: false } },
        { label: 'delivered', stroke: cssVar('--delivered'), width: 2, points: { show: false } },
      ],
      axes: [axis, Object.assign({ size: 50 }, axis)],
    });
    $('chart').textContent = '';
    return new uPlot(opts, data, $('chart'));
  }

  function renderChart(c) {
    chartData = [c.t, c.received, c.delivered];
    // How many minutes have anything: for people (an empty chart says why
    // below) and for the browser test.
    $('chart').dataset.points = String(c.t.filter((t, i) => c.received[i] || c.delivered[i]).length);
    $('chart-hours').textContent = String(Math.round(c.t.length / 60));
    $('chart-note').textContent = 'Delivered: deliveries (one per destination) of events received since ' + when(c.delivered_since) + '.';
    if (typeof uPlot === 'undefined') return;
    if (!chart) chart = makeChart(chartData);
    else chart.setData(chartData);
  }

  // ---- events ----

  // "dest: dead 410 gone" for each failed delivery of an event.
  function failedDeliveries(e) {
    const out = [];
    for (const [dest, d] of Object.entries(e.deliveries || {})) {
      if (d.state === 'dead' || d.state === 'retrying')
        out.push(dest + ': ' + d.state + ' ' + failure(d.last_status, d.last_error));
    }
    return out.join('; ');
  }

  function eventItem(e, withWhy) {
    const open = el('button', 'link', e.id.slice(0, 12));
    open.type = 'button';
    open.title = e.id;
    open.addEventListener('click', () => openEvent(e.id, true));
    const li = el('li', null, null,
      el('span', 'muted', when(e.received)),
      open,
      el('span', null, e.type),
      el('span', 'mono', e.address || ''),
      el('span', 'mono muted', e.message_id || ''));
    li.dataset.id = e.id;
    if (withWhy) li.append(el('span', 'why', failedDeliveries(e)));
    return li;
  }

  function renderList(ul, events, withWhy, empty) {
    ul.textContent = '';
    for (const e of events) ul.append(eventItem(e, withWhy));
    if (events.length === 0) ul.append(el('li', 'muted', empty));
  }

  function renderEvent(e) {
    $('event-id').textContent = e.id;
    const facts = $('event-facts');
    facts.textContent = '';
    for (const [k, v] of [['Received', when(e.received)], ['Type', e.type],
      ['MessageId', e.message_id || '–'], ['Address', e.address || '–']]) {
      facts.append(el('dt', null, k), el('dd', 'mono', v));
    }
    const tbody = $('attempts').tBodies[0];
    tbody.textContent = '';
    for (const [dest, d] of Object.entries(e.deliveries || {})) {
      tbody.append(el('tr', null, null,
        el('td', null, dest),
        el('td', d.state, d.state),
        el('td', 'num', d.attempts),
        el('td', 'num', d.last_status || '–'),
        el('td', null, when(d.next_attempt)),
        el('td', 'err', d.last_error || '')));
    }
    let body = e.body;
    try {
      body = JSON.stringify(JSON.parse(e.body), null, 2);
    } catch (x) {
      body = e.body;
    }
    $('event-body').textContent = body;
    $('event').hidden = false;
  }

  async function openEvent(id, push) {
    try {
      const a = await getJSON('api/event?id=' + encodeURIComponent(id));
      openId = a.event.id;
      renderEvent(a.event);
      if (push) history.pushState({ id: openId }, '', url('events/' + openId).href);
      if (push) $('event').scrollIntoView({ block: 'start' });
    } catch (e) {
      $('search-note').textContent = 'event ' + id + ': ' + e.message;
    }
  }

  function closeEvent(push) {
    openId = null;
    $('event').hidden = true;
    if (push) history.pushState({}, '', url('./').href);
  }

  async function search(ev) {
    ev.preventDefault();
    const q = $('search').elements.q.value.trim();
    if (!q) return;
    const note = $('search-note');
    try {
      const a = await getJSON('api/search?q=' + encodeURIComponent(q));
      const by = { id: 'by event id', message_id: 'by MessageId', address: 'by Address' }[a.by];
      note.textContent = a.events.length
        ? a.events.length + ' found ' + by
        : 'nothing found (an Address is looked for among the newest ' + a.address_scan + ' events only)';
      renderList($('found'), a.events, false, 'no event');
      if (a.events.length === 1) openEvent(a.events[0].id, true);
    } catch (e) {
      note.textContent = 'search failed: ' + e.message;
    }
  }

  // ---- refreshing ----

  // sessionRead: the first time, the session's JSON, read alongside the
  // rest rather than before it.
  async function refresh(sessionRead) {
    const withChart = ticks++ % CHART_EVERY === 0;
    const [s, status, failures, c] = await Promise.all([
      sessionRead || Promise.resolve(null),
      getJSON('api/status'),
      getJSON('api/failures'),
      withChart ? getJSON('api/chart') : Promise.resolve(null),
    ]);
    if (s) {
      session = s;
      for (const th of document.querySelectorAll('.actions-col')) th.hidden = !session.actions;
    }
    renderDests(status.destinations);
    if (s) performance.mark('slh-table-filled');
    renderList($('failures'), failures.events, true, 'no failures');
    if (c) renderChart(c);
    if (openId) {
      const e = await getJSON('api/event?id=' + encodeURIComponent(openId));
      if (openId === e.event.id) renderEvent(e.event);
    }
    setState('updated ' + new Date().toLocaleTimeString() + ', every ' + REFRESH_MS / 1000 + ' s');
  }

  async function loop() {
    try {
      await refresh();
    } catch (e) {
      showError(e);
    }
    setTimeout(loop, REFRESH_MS);
  }

  // The event the address names (.../events/ID), if any.
  function eventInPath() {
    const m = /\/events\/([^/]+)$/.exec(location.pathname);
    return m ? decodeURIComponent(m[1]) : null;
  }

  async function start() {
    $('search').addEventListener('submit', search);
    $('replay').addEventListener('submit', submitReplay);
    $('replay-cancel').addEventListener('click', () => { $('replay').hidden = true; });
    $('event-close').addEventListener('click', () => closeEvent(true));
    window.addEventListener('popstate', () => {
      const id = eventInPath();
      if (id) openEvent(id, false);
      else closeEvent(false);
    });
    window.addEventListener('resize', () => { if (chart) chart.setSize(chartSize()); });
    matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
      if (chart && chartData) {
        chart.destroy();
        chart = makeChart(chartData);
      }
    });
    const id = eventInPath();
    if (id) openEvent(id, false);
    try {
      await refresh(getJSON('api/session'));
      performance.mark('slh-chart-drawn');
      document.body.dataset.loaded = 'yes';
    } catch (e) {
      showError(e);
    }
    setTimeout(loop, REFRESH_MS);
  }

  start();
})();
