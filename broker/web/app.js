// app.js - the dashboard's behaviour: polls petreld's admin API (/api/v1/...)
// and fills the page. Stats every second (rates come from the deltas of the
// broker's running totals), the client list and the deepest queues every few
// seconds, the retained tree less often. It asks for a bearer token when the
// API answers 401 and shows a banner while the broker cannot be reached.
// Everything the API returns is attacker-influenced (client ids, user names,
// topics): it reaches the page only through textContent and attributes.
'use strict';

(() => {
  const TOKEN_KEY = 'petrel.token';
  const WINDOW_MS = 5 * 60 * 1000;
  const STATS_MS = 1000;
  const LISTS_MS = 3000;
  const RETAINED_MS = 15000;
  const REQUEST_TIMEOUT_MS = 4000;
  const CLIENTS_PAGE = 20;
  const RETAINED_MAX = 10000;   // topics drawn in the tree at most

  const $ = (id) => document.getElementById(id);

  // ------------------------------------------------------------ formatting

  const intFmt = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => (Number.isFinite(n) ? intFmt.format(Math.round(n)) : '–');

  function fmtRate(v) {
    if (!Number.isFinite(v)) return '–';
    if (v >= 10000) return `${(v / 1000).toFixed(1)} k`;
    if (v >= 100 || v === 0) return fmtInt(v);
    return v.toFixed(1);
  }

  function fmtBytes(n) {
    if (!Number.isFinite(n)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return i === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 1 : 0)} ${units[i]}`;
  }

  function fmtDuration(s) {
    if (s === null || s === undefined) return 'never';
    if (!Number.isFinite(s)) return '–';
    s = Math.max(0, Math.round(s));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function fmtMs(v) {
    if (!Number.isFinite(v)) return '–';
    return v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(0)} ms`;
  }

  // Puts a figure in an element: its text and, for tests and tools, its raw value.
  function setFigure(id, value, text) {
    const e = $(id);
    e.textContent = text;
    e.dataset.value = Number.isFinite(value) ? String(value) : '';
  }

  function cell(text, cls) {
    const td = document.createElement('td');
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  }

  // A client id cell: the id in full on hover, "(empty)" for the empty id.
  function idCell(id) {
    const td = cell(id === '' ? '(empty)' : id, 'id');
    td.title = id;
    return td;
  }

  // A cell with one button that acts on its row (after a confirmation).
  function actionCell(text, cls, label, onClick) {
    const td = document.createElement('td');
    td.className = 'action';
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.className = `danger small ${cls}`;
    btn.textContent = text;
    btn.setAttribute('aria-label', label);
    btn.addEventListener('click', onClick);
    td.appendChild(btn);
    return td;
  }

  let toastTimer = 0;
  function toast(text, bad) {
    const t = $('toast');
    t.textContent = text;
    t.classList.toggle('bad', !!bad);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  // ------------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message || code || `HTTP ${status}`);
      this.status = status;
      this.code = code;
    }
  }

  let token = sessionStorage.getItem(TOKEN_KEY) || '';

  // One API call; resolves to the parsed JSON body. Rejects with ApiError
  // (status 0: the broker could not be reached or did not answer in time).
  async function api(method, path) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    let res;
    try {
      res = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit',
                                signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (e) {
      throw new ApiError(0, 'unreachable', 'The broker did not answer.');
    }
    reachable();   // it answered, whatever the status
    let body = null;
    try { body = await res.json(); } catch (e) { body = null; }
    if (!res.ok) {
      const err = new ApiError(res.status, body && body.error, body && body.message);
      if (res.status === 401) needToken(token ? 'The broker refused this token.' : '');
      throw err;
    }
    if (body === null) throw new ApiError(res.status, 'bad_response', 'The answer was not JSON.');
    return body;
  }

  const enc = encodeURIComponent;

  // ----------------------------------------------------- token and banner

  // After a 401 the pollers stop (each refused request would be another
  // line in the broker's log) until a token is given or forgotten.
  let tokenBlocked = false;

  function needToken(error) {
    if (tokenBlocked) return;
    tokenBlocked = true;
    setLive('token', 'token needed');
    showBanner('token', 'This broker needs an access token: use the Token button at the top right.');
    openTokenDialog(error);
  }

  function openTokenDialog(error) {
    const err = $('token-error');
    err.textContent = error || '';
    err.hidden = !error;
    $('token-input').value = '';
    if (!$('token-dialog').open) $('token-dialog').showModal();
  }

  function useToken(value) {
    token = value;
    if (token) sessionStorage.setItem(TOKEN_KEY, token); else sessionStorage.removeItem(TOKEN_KEY);
    tokenBlocked = false;
    hideBanner('token');
    pollNow();
  }

  $('token-form').addEventListener('submit', () => useToken($('token-input').value.trim()));
  $('token-forget').addEventListener('click', () => {
    $('token-dialog').close();
    useToken('');
  });
  $('token-button').addEventListener('click', () => openTokenDialog(''));

  function setLive(state, text) {
    const live = $('live');
    live.dataset.state = state;
    live.textContent = text;
  }

  function showBanner(kind, text) {
    const b = $('banner');
    b.dataset.kind = kind;
    b.textContent = text;
    b.hidden = false;
  }

  function hideBanner(kind) {
    if ($('banner').dataset.kind === kind) $('banner').hidden = true;
  }

  let downSince = 0;

  function unreachable() {
    if (!downSince) downSince = Date.now();
    const at = new Date(downSince).toLocaleTimeString();
    showBanner('down', `Cannot reach the broker at ${location.host} since ${at}. Retrying every second…`);
    setLive('down', 'unreachable');
    document.body.classList.add('stale');   // the figures shown are old
  }

  function reachable() {
    if (downSince) {
      downSince = 0;
      hideBanner('down');
      document.body.classList.remove('stale');
      toast('The broker is reachable again.');
      pollNow();
    }
  }

  // A failed call of a card: unreachable and 401 are page-wide, the rest
  // is said in the card itself.
  function cardError(card, e) {
    if (e.status === 0) { unreachable(); return; }
    if (e.status === 401) return;
    const note = card.querySelector('.card-error') || card.appendChild(document.createElement('p'));
    note.className = 'card-error';
    note.textContent = `${e.message} (HTTP ${e.status})`;
  }

  function cardOk(card) {
    const note = card.querySelector('.card-error');
    if (note) note.remove();
  }

  // ------------------------------------------------------------------ stats

  const charts = {
    connections: new PetrelChart.Chart($('chart-connections'),
      { format: fmtInt, label: 'Connections over the last 5 minutes' }),
    received: new PetrelChart.Chart($('chart-received'),
      { format: fmtRate, label: 'Messages received per second over the last 5 minutes' }),
    sent: new PetrelChart.Chart($('chart-sent'),
      { format: fmtRate, label: 'Messages sent per second over the last 5 minutes' }),
    dropped: new PetrelChart.Chart($('chart-dropped'),
      { format: fmtRate, label: 'Messages dropped per second over the last 5 minutes' }),
    latency: new PetrelChart.Chart($('chart-latency'),
      { series: 2, format: fmtMs, label: 'Store commit latency p50 and p99 over the last 5 minutes' }),
  };

  let prev = null;   // the previous stats answer, for rates

  function rate(s, p, key, dt) {
    const d = s[key] - p[key];
    return d >= 0 ? d / dt : NaN;
  }

  function showStats(s) {
    const now = Number.isFinite(s.time_ms) ? s.time_ms : Date.now();
    // A broker that restarted (uptime went back) starts new series.
    if (prev && (s.uptime_seconds < prev.s.uptime_seconds || now <= prev.now)) {
      prev = null;
      for (const c of Object.values(charts)) c.clear();
    }
    $('node').textContent = s.node || '';
    $('version').textContent = s.version ? `v${s.version}` : '';
    $('uptime').textContent = fmtDuration(s.uptime_seconds);
    setLive('live', 'live');

    setFigure('connections', s.connections, fmtInt(s.connections));
    charts.connections.push(now, [s.connections]);
    // Per transport (tcp, tls, ws, wss), from the per-listener counts.
    const by = new Map();
    for (const l of s.connections_by_listener || []) {
      by.set(l.transport, (by.get(l.transport) || 0) + (l.connections || 0));
    }
    $('connections-by').textContent = [...by].map(([t, n]) => `${t} ${fmtInt(n)}`).join(' · ');

    setFigure('sessions-online', s.sessions_online, fmtInt(s.sessions_online));
    setFigure('sessions-offline', s.sessions_offline, fmtInt(s.sessions_offline));
    setFigure('subscriptions', s.subscriptions, fmtInt(s.subscriptions));
    setFigure('retained-messages', s.retained_messages, fmtInt(s.retained_messages));
    $('retained-bytes').textContent = fmtBytes(s.retained_bytes);
    setFigure('queued-messages', s.queued_messages, fmtInt(s.queued_messages));
    $('queued-bytes').textContent = fmtBytes(s.queued_bytes);
    setFigure('dropped-total', s.messages_dropped, fmtInt(s.messages_dropped));

    const st = s.store || {};
    setFigure('commit-p50', st.commit_p50_ms, fmtMs(st.commit_p50_ms));
    setFigure('commit-p99', st.commit_p99_ms, fmtMs(st.commit_p99_ms));
    const status = $('store-status');
    status.textContent = st.status || '–';
    status.dataset.state = st.status === 'ok' ? 'live' : 'down';
    charts.latency.push(now, [st.commit_p50_ms || 0, st.commit_p99_ms || 0]);

    if (prev) {
      const dt = (now - prev.now) / 1000;
      const r = {
        received: rate(s, prev.s, 'messages_received', dt),
        sent: rate(s, prev.s, 'messages_sent', dt),
        dropped: rate(s, prev.s, 'messages_dropped', dt),
      };
      for (const k of Object.keys(r)) {
        setFigure(`rate-${k}`, r[k], fmtRate(r[k]));
        charts[k].push(now, Number.isFinite(r[k]) ? [r[k]] : null);
      }
      $('bytes-in-rate').textContent = fmtBytes(Math.round(rate(s, prev.s, 'bytes_received', dt)));
      $('bytes-out-rate').textContent = fmtBytes(Math.round(rate(s, prev.s, 'bytes_sent', dt)));
      const commits = (st.commits || 0) - ((prev.s.store || {}).commits || 0);
      setFigure('commit-rate', commits / dt, fmtRate(commits >= 0 ? commits / dt : NaN));
    }
    $('tile-dropped').classList.toggle('alert', ($('rate-dropped').dataset.value || 0) > 0);
    for (const c of Object.values(charts)) c.draw(now);
    prev = { s, now };
  }

  // While the broker is away the charts get a gap and slide on.
  function statsGap() {
    if (!prev) return;
    const now = prev.now + (Date.now() - prev.local);
    for (const c of Object.values(charts)) { c.push(now, null); c.draw(now); }
  }

  async function pollStats() {
    try {
      const s = await api('GET', 'api/v1/stats');
      showStats(s);
      if (prev) prev.local = Date.now();
    } catch (e) {
      if (e.status === 0) { unreachable(); statsGap(); }
    }
  }

  // ----------------------------------------------------------- deepest queues

  let queuesSeen = '';

  async function pollQueues() {
    const card = $('queues-card');
    let r;
    try {
      r = await api('GET', 'api/v1/sessions?sort=queued&limit=10');
    } catch (e) { cardError(card, e); return; }
    cardOk(card);
    const rows = (r.sessions || []).filter((s) => s.queued_messages > 0);
    const body = $('queues').tBodies[0];
    const seen = JSON.stringify(rows.map((s) => [s.client_id, s.online, s.queued_messages, s.queued_bytes]));
    if (seen === queuesSeen) {
      // Only the ages move: update them in place (the buttons stay).
      rows.forEach((s, i) => {
        const tr = body.rows[i];
        if (!tr) return;
        tr.cells[4].textContent = fmtDuration(s.age_seconds);
        tr.cells[5].textContent = fmtDuration(s.expires_in_seconds);
      });
      return;
    }
    queuesSeen = seen;
    body.replaceChildren(...rows.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.clientId = s.client_id;
      const state = cell(s.online ? 'online' : 'offline', 'state');
      state.dataset.state = s.online ? 'live' : 'idle';
      const btnCell = actionCell('Delete', 'delete-session', `Delete the session of ${s.client_id}`,
                                 () => askDeleteSession(s.client_id, s.queued_messages));
      tr.append(idCell(s.client_id), state, cell(fmtInt(s.queued_messages), 'num'),
                cell(fmtBytes(s.queued_bytes), 'num'), cell(fmtDuration(s.age_seconds), 'num'),
                cell(fmtDuration(s.expires_in_seconds), 'num'), btnCell);
      return tr;
    }));
    $('queues-empty').hidden = rows.length > 0;
  }

  function askDeleteSession(id, queued) {
    confirmThen('Delete session?', 'Delete',
      ['The broker forgets the session of ', code(id), ` with its subscriptions and its ${fmtInt(queued)}`
       + ' queued messages, and disconnects the client if it is online.'],
      async () => {
        try {
          await api('DELETE', `api/v1/sessions/${enc(id)}`);
          toast(`Deleted the session of ${id}.`);
        } catch (e) {
          changeFailed(e, 'deleting', `${id} had no session any more.`, `delete the session of ${id}`);
        }
        queuesSeen = '';
        clients.seen = '';
        pollQueues();
        pollClients();
        runStats();
      });
  }

  // ----------------------------------------------------------------- clients

  // Paging: `cursors` holds the `after` of every page before this one.
  const clients = { prefix: '', after: '', cursors: [], next: null, seen: '' };

  function clientsQuery() {
    let q = `api/v1/clients?limit=${CLIENTS_PAGE}`;
    if (clients.prefix) q += `&prefix=${enc(clients.prefix)}`;
    if (clients.after) q += `&after=${enc(clients.after)}`;
    return q;
  }

  async function pollClients() {
    const card = $('clients-card');
    const query = clientsQuery();
    let r;
    try {
      r = await api('GET', query);
    } catch (e) { cardError(card, e); return; }
    if (query !== clientsQuery()) return;   // the filter or page changed meanwhile
    cardOk(card);
    const list = r.clients || [];
    clients.next = r.next || null;
    $('clients-next').disabled = !clients.next;
    $('clients-prev').disabled = clients.cursors.length === 0;
    $('clients-page').textContent = `page ${clients.cursors.length + 1}`;
    // An empty page after the first (its clients left): back to the first.
    if (list.length === 0 && clients.cursors.length > 0) { firstPage(); return; }
    const seen = JSON.stringify(list.map((c) => [c.client_id, c.username, c.address, c.protocol,
      c.transport, Math.floor(c.connected_seconds / 60), c.inflight, c.queued_messages]));
    if (seen === clients.seen) {
      // Only the durations move: update them in place.
      const rows = $('clients').tBodies[0].rows;
      list.forEach((c, i) => { if (rows[i]) rows[i].cells[4].textContent = fmtDuration(c.connected_seconds); });
      return;
    }
    clients.seen = seen;
    $('clients').tBodies[0].replaceChildren(...list.map(clientRow));
    $('clients-empty').hidden = list.length > 0;
    $('clients-empty').textContent = clients.prefix ?
      'No connected client has an id with this prefix.' : 'No client connected.';
  }

  function clientRow(c) {
    const tr = document.createElement('tr');
    tr.dataset.clientId = c.client_id;
    const user = cell(c.username === null || c.username === undefined ? '—' : c.username, 'user');
    const proto = cell(`${c.protocol || '?'} ${c.transport || ''}`.trim(), 'proto');
    const btnCell = actionCell('Disconnect', 'disconnect', `Disconnect ${c.client_id}`,
                               () => askDisconnect(c.client_id, tr));
    tr.append(idCell(c.client_id), user, cell(c.address || '', 'addr'), proto, cell(fmtDuration(c.connected_seconds), 'num'),
              cell(fmtInt(c.inflight), 'num'), cell(fmtInt(c.queued_messages), 'num'), btnCell);
    return tr;
  }

  function firstPage() {
    clients.after = '';
    clients.cursors = [];
    clients.seen = '';
    pollClients();
  }

  $('clients-next').addEventListener('click', () => {
    if (!clients.next) return;
    clients.cursors.push(clients.after);
    clients.after = clients.next;
    clients.seen = '';
    pollClients();
  });
  $('clients-prev').addEventListener('click', () => {
    if (clients.cursors.length === 0) return;
    clients.after = clients.cursors.pop();
    clients.seen = '';
    pollClients();
  });

  let filterTimer = 0;
  $('clients-prefix').addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      clients.prefix = $('clients-prefix').value;
      firstPage();
    }, 250);
  });
  $('clients-filter').addEventListener('submit', (e) => {
    e.preventDefault();
    clearTimeout(filterTimer);
    clients.prefix = $('clients-prefix').value;
    firstPage();
  });

  // Changes are confirmed first, in a dialog that names what they act on
  // (as text). `then` runs only on "ok".
  let pending = null;

  function confirmThen(title, okLabel, parts, then) {
    pending = then;
    $('confirm-title').textContent = title;
    $('confirm-ok').textContent = okLabel;
    $('confirm-text').replaceChildren(...parts);
    $('confirm-dialog').returnValue = '';
    $('confirm-dialog').showModal();
  }

  $('confirm-dialog').addEventListener('close', () => {
    const then = pending;
    pending = null;
    if (then && $('confirm-dialog').returnValue === 'ok') then();
  });

  // What a refused change says: 403 is a read-only token, 404 something
  // already gone; 401 has asked for a token already.
  function changeFailed(e, doing, goneText, what) {
    if (e.status === 403) toast(`This token may only read: ${doing} needs an admin token.`, true);
    else if (e.status === 404) toast(goneText);
    else if (e.status !== 401) toast(`Could not ${what}: ${e.message}`, true);
  }

  function code(text) {
    const c = document.createElement('code');
    c.textContent = text === '' ? '(empty)' : text;
    return c;
  }

  function askDisconnect(id, row) {
    confirmThen('Disconnect client?', 'Disconnect',
      ['The broker closes the connection of ', code(id),
       '. Its session stays as long as its expiry allows; the client may reconnect.'],
      async () => {
        try {
          await api('POST', `api/v1/clients/${enc(id)}/disconnect`);
          row.remove();
          toast(`Disconnected ${id}.`);
        } catch (e) {
          changeFailed(e, 'disconnecting', `${id} was no longer connected.`, `disconnect ${id}`);
        }
        clients.seen = '';
        pollClients();
        runStats();   // the counts change at once, not at the next poll
      });
  }

  // ---------------------------------------------------------------- retained

  function askDeleteRetained(topic) {
    confirmThen('Delete retained message?', 'Delete',
      ['New subscribers of ', code(topic), ' will no longer receive its retained message.'],
      async () => {
        try {
          await api('DELETE', `api/v1/retained?topic=${enc(topic)}`);
          toast(`Deleted the retained message of ${topic}.`);
        } catch (e) {
          changeFailed(e, 'deleting', `${topic} had no retained message any more.`, `delete ${topic}`);
        }
        pollRetained();
        runStats();
      });
  }

  const tree = new PetrelTree.Tree($('retained-tree'), fmtBytes, askDeleteRetained);
  let retainedBusy = false;
  let retainedSeen = '';

  async function pollRetained() {
    if (retainedBusy) return;
    retainedBusy = true;
    const card = $('retained-card');
    try {
      const items = [];
      let after = null;
      let more = false;
      do {
        let q = 'api/v1/retained?filter=%23&limit=1000';
        if (after !== null) q += `&after=${enc(after)}`;
        const r = await api('GET', q);
        items.push(...(r.retained || []));
        after = r.next || null;
        more = after !== null && items.length < RETAINED_MAX;
      } while (more);
      cardOk(card);
      const seen = JSON.stringify(items);
      if (seen === retainedSeen) return;   // unchanged: keep the tree as the user left it
      retainedSeen = seen;
      const n = tree.render(items);
      $('retained-empty').hidden = n > 0;
      $('retained-count').textContent = n === 0 ? '' :
        `${fmtInt(n)} topic${n === 1 ? '' : 's'}${after !== null ? ' (first ones)' : ''}`;
    } catch (e) {
      cardError(card, e);
    } finally {
      retainedBusy = false;
    }
  }

  $('retained-refresh').addEventListener('click', pollRetained);

  // ----------------------------------------------------------------- polling

  // Each poller runs on its own period, never twice at once.
  function every(ms, fn) {
    let busy = false;
    const run = async () => {
      if (busy || tokenBlocked) return;
      busy = true;
      try { await fn(); } finally { busy = false; }
    };
    run();
    setInterval(run, ms);
    return run;
  }

  const runStats = every(STATS_MS, pollStats);
  const runLists = every(LISTS_MS, () => Promise.all([pollClients(), pollQueues()]));
  const runRetained = every(RETAINED_MS, pollRetained);

  // After a token was given or the broker came back: refresh at once.
  function pollNow() {
    runStats();
    runLists();
    runRetained();
  }
})();
