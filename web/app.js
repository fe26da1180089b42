/*
 * The review dashboard: status counters, the patterns by potential monthly
 * savings, a pattern's weekly chart, examples and history, and the moves
 * the key's scopes allow.  Everything comes from the service's /v1 API
 * with the key the user typed, sent as a Bearer header.
 *
 * The key lives in sessionStorage only (this tab, until "Forget key" or the
 * tab closes): never in the URL, a cookie or localStorage.  The page has no
 * inline script or style, so it runs under a Content-Security-Policy of
 * default-src 'self'.
 */
'use strict';

(function () {
  const KEY_SLOT = 'patternd.key';
  const PAGE_SIZE = 20;
  const STATUSES = ['detected', 'candidate', 'approved', 'rejected', 'implemented', 'deprecated'];
  /* The status graph (docs/spec.md §5): the statuses each action moves a pattern from. */
  const ACTIONS = {
    approve: ['detected', 'candidate'],
    reject: ['detected', 'candidate'],
    implement: ['approved'],
    deprecate: ['approved', 'implemented'],
    reopen: ['rejected', 'deprecated'],
  };
  const NEEDS_REASON = { reject: true, deprecate: true };
  const DONE_WORDS = {
    approve: 'approved',
    reject: 'rejected',
    implement: 'marked implemented',
    deprecate: 'deprecated',
    reopen: 'reopened',
  };

  /* Numbers and dates in the user's locale; amounts are US dollars. */
  const count = new Intl.NumberFormat();
  const dollars = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD' });
  const smallDollars = new Intl.NumberFormat(undefined, {
    style: 'currency',
    currency: 'USD',
    minimumFractionDigits: 2,
    maximumFractionDigits: 4,
  });
  const percent = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
  const when = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  const day = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeZone: 'UTC' });
  const shortDay = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });

  const $ = (id) => document.getElementById(id);
  const state = {
    key: null,
    scopes: [],
    cursors: [null], /* the cursor of each page seen; [0] is the first page */
    page: 0,
    nextCursor: null,
    query: {},
    detail: null, /* the open pattern's document */
    busy: false,
  };

  /* --- small helpers ---------------------------------------------------------------------- */

  function el(tag, props, children) {
    const e = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null) continue;
        if (k === 'text') e.textContent = v;
        else if (k === 'className') e.className = v;
        else e.setAttribute(k, v);
      }
    }
    for (const c of children || []) e.append(c);
    return e;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /* An amount in dollars: cents, or four decimals below a dollar. */
  function money(v) {
    return Math.abs(v) < 1 ? smallDollars.format(v) : dollars.format(v);
  }

  /* A signature, with a line-break opportunity after each ':' (test:pytest:backend). */
  function signature(text) {
    const parts = [];
    String(text).split(':').forEach((p, i, all) => {
      parts.push(i < all.length - 1 ? p + ':' : p);
      if (i < all.length - 1) parts.push(document.createElement('wbr'));
    });
    return parts;
  }

  function fmtTime(text) {
    if (!text) return '—';
    const d = new Date(text);
    return Number.isNaN(d.getTime()) ? text : when.format(d);
  }

  function fmtDay(isoDate, formatter) {
    const d = new Date(isoDate + 'T00:00:00Z');
    return Number.isNaN(d.getTime()) ? isoDate : (formatter || day).format(d);
  }

  function showError(message) {
    const box = $('error');
    box.textContent = message;
    box.hidden = false;
  }

  function clearError() {
    const box = $('error');
    box.textContent = '';
    box.hidden = true;
  }

  /* What an answer that is not 2xx means, in plain words. */
  function explain(res, doing) {
    const body = res.body || {};
    switch (res.status) {
      case 400:
        if (body.field === 'reason')
          return 'A reason is required to ' + doing + ': write it in the notes box, then try again.';
        if (body.field === 'reviewer') return 'Write your name as the reviewer, then try again.';
        return 'The service refused to ' + doing + ': ' + (body.error || 'the request was malformed') + '.';
      case 401:
        return 'The key was not accepted. Check it, or ask an operator for a new one.';
      case 403:
        return 'This key may not ' + doing + ': ' + (body.error || 'it lacks the scope') + '.';
      case 404:
        return /pattern$/.test(doing)
          ? 'That pattern no longer exists for your tenant.'
          : 'The service cannot ' + doing + ': it does not know ' + res.path + ' (HTTP 404).';
      case 409:
        return (
          'Someone else changed this pattern first: it is now ' + (body.automation_status || 'different') +
          '. The page shows its current state; review it again if you still want to.'
        );
      case 429:
      case 503:
        return 'The service is busy or its database is away; try again in a moment.';
      default:
        return 'The service could not ' + doing + ' (HTTP ' + res.status + '). Try again later.';
    }
  }

  /* One request to the API with the key; resolves to {status, body}. */
  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + state.key, Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(path, init);
    } catch (e) {
      return { status: 0, body: null, path };
    }
    let doc = null;
    try {
      doc = await res.json();
    } catch (e) {
      doc = null;
    }
    return { status: res.status, body: doc, path: path.split('?')[0] };
  }

  /* Handles a failed answer; true when it was one (the key is dropped on 401). */
  function failed(res, doing) {
    if (res.status >= 200 && res.status < 300) return false;
    if (res.status === 0) {
      showError('The service cannot be reached. Check your connection, then try again.');
      return true;
    }
    showError(explain(res, doing));
    if (res.status === 401) forgetKey(false);
    return true;
  }

  /* --- the key ------------------------------------------------------------------------------ */

  async function useKey(key, fromStorage) {
    state.key = key;
    const res = await api('GET', '/v1/me');
    if (res.status === 200 && res.body) {
      sessionStorage.setItem(KEY_SLOT, key);
      state.scopes = Array.isArray(res.body.scopes) ? res.body.scopes : [];
      $('who').textContent =
        'Tenant ' + res.body.tenant_id + ' · ' + (canReview() ? 'can review' : 'read only');
      $('who').hidden = false;
      $('forget').hidden = false;
      $('keybox').hidden = true;
      $('app').hidden = false;
      clearError();
      await Promise.all([loadSummary(), loadPage(0)]);
      return;
    }
    state.key = null;
    if (fromStorage) sessionStorage.removeItem(KEY_SLOT);
    failed(res, 'open the dashboard');
    $('key').focus();
  }

  function forgetKey(clearMessage) {
    sessionStorage.removeItem(KEY_SLOT);
    state.key = null;
    state.scopes = [];
    state.detail = null;
    $('rows').replaceChildren();
    for (const s of STATUSES) $('count-' + s).textContent = '–';
    closeDetail(false);
    $('app').hidden = true;
    $('who').hidden = true;
    $('forget').hidden = true;
    $('keybox').hidden = false;
    $('key').value = '';
    if (clearMessage) clearError();
    $('key').focus();
  }

  const canReview = () => state.scopes.indexOf('review') >= 0;

  /* --- counters and the list ------------------------------------------------------------ */

  async function loadSummary() {
    const res = await api('GET', '/v1/review/summary');
    if (failed(res, 'count the patterns')) return;
    for (const s of STATUSES) $('count-' + s).textContent = count.format(res.body[s] || 0);
  }

  function readFilters() {
    const q = {};
    const status = $('status').value;
    const type = $('type').value.trim();
    const conf = $('minconf').value.trim();
    if (status) q.status = status;
    if (type) q.type = type;
    if (conf !== '') q.min_confidence = conf;
    return q;
  }

  async function loadPage(page) {
    const params = new URLSearchParams({ top: String(PAGE_SIZE) });
    for (const [k, v] of Object.entries(state.query)) params.set(k, v);
    const cursor = state.cursors[page];
    if (cursor) params.set('cursor', cursor);
    const res = await api('GET', '/v1/patterns?' + params.toString());
    if (failed(res, 'list the patterns')) return;
    state.page = page;
    state.nextCursor = res.body.next_cursor || null;
    state.cursors.length = page + 1;
    const rows = res.body.patterns || [];
    $('rows').replaceChildren(...rows.map(rowOf));
    $('empty').hidden = rows.length > 0;
    $('prev').disabled = page === 0;
    $('next').disabled = !state.nextCursor;
    $('pageno').textContent = rows.length ? 'Page ' + count.format(page + 1) : '';
  }

  function statusBadge(status) {
    return el('span', { className: 'status ' + status, text: status });
  }

  function rowCells(p) {
    const open = el('button', { type: 'button', title: 'Open ' + p.pattern_signature }, signature(p.pattern_signature));
    open.addEventListener('click', () => openPattern(p.id));
    /* data-label names the column where a phone-width screen shows each row as a card. */
    return [
      el('td', { className: 'sig' }, [open]),
      el('td', { 'data-label': 'Status' }, [statusBadge(p.automation_status)]),
      el('td', { className: 'num', 'data-label': 'Occurrences', text: count.format(p.occurrence_count) }),
      el('td', { className: 'num', 'data-label': 'Avg cost with LLM', text: money(p.avg_cost_with_llm) }),
      el('td', { className: 'num', 'data-label': 'Savings / month', text: dollars.format(p.potential_monthly_savings) }),
      el('td', { className: 'num', 'data-label': 'Confidence', text: percent.format(p.confidence_score) + ' %' }),
    ];
  }

  function rowOf(p) {
    const tr = el('tr', { 'data-testid': 'pattern-row', 'data-pattern-id': String(p.id) }, rowCells(p));
    tr.dataset.status = p.automation_status;
    if (state.detail && state.detail.id === p.id) tr.classList.add('selected');
    return tr;
  }

  function rowElement(id) {
    return document.querySelector('tr[data-pattern-id="' + String(id) + '"]');
  }

  /* --- a pattern ------------------------------------------------------------------------- */

  async function openPattern(id) {
    clearError();
    const res = await api('GET', '/v1/patterns/' + encodeURIComponent(id));
    if (failed(res, 'open the pattern')) return;
    showDetail(res.body);
    $('d-title').focus();
  }

  function closeDetail(returnFocus) {
    const id = state.detail && state.detail.id;
    state.detail = null;
    $('detail').hidden = true;
    document.querySelector('.panes').classList.remove('open');
    for (const tr of document.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    if (returnFocus && id !== null && id !== undefined) {
      const tr = rowElement(id);
      if (tr) tr.querySelector('button').focus();
    }
  }

  function fact(label, value) {
    return el('div', null, [el('dt', { text: label }), el('dd', { text: value })]);
  }

  function showDetail(p) {
    state.detail = p;
    $('d-title').replaceChildren(...signature(p.pattern_signature));
    const facts = [
      fact('Status', p.automation_status),
      fact('Type', p.pattern_type),
      fact('Occurrences', count.format(p.occurrence_count)),
      fact('Savings / month', dollars.format(p.potential_monthly_savings)),
      fact('Confidence', percent.format(p.confidence_score) + ' %'),
      fact('Avg cost with LLM', money(p.avg_cost_with_llm)),
      fact('Avg cost with a tool', money(p.avg_cost_with_tool)),
      fact('Avg tokens with LLM', count.format(p.avg_tokens_with_llm)),
      fact('First seen', fmtTime(p.first_occurrence_at)),
      fact('Last seen', fmtTime(p.last_occurrence_at)),
    ];
    if (p.occurrences_since_implemented !== undefined)
      facts.push(fact('Since implemented', count.format(p.occurrences_since_implemented)));
    $('facts').replaceChildren(...facts);
    $('detail').hidden = false; /* shown before the chart measures its box */
    document.querySelector('.panes').classList.add('open');
    drawChart(p.weekly || []);
    $('examples').replaceChildren(...(p.examples || []).map(exampleItem));
    if (!(p.examples || []).length) $('examples').append(el('li', { className: 'muted', text: 'No example yet.' }));
    $('history').replaceChildren(...(p.history || []).map(historyItem));
    if (!(p.history || []).length) $('history').append(el('li', { className: 'muted', text: 'No move yet.' }));
    updateActions();
    for (const tr of document.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    const tr = rowElement(p.id);
    if (tr) tr.classList.add('selected');
  }

  function exampleItem(x) {
    const parts = [
      el('span', { className: 'mono', text: x.workflow_id }),
      ' · ' + fmtTime(x.event_at),
      ' · ' + (x.total_tokens === null || x.total_tokens === undefined ? '—' : count.format(x.total_tokens)) + ' tokens',
      ' · ' + (x.actual_cost_total === null || x.actual_cost_total === undefined ? '—' : money(x.actual_cost_total)),
    ];
    const c = x.characteristics;
    if (c && typeof c === 'object') {
      const shown = Object.entries(c)
        .filter(([, v]) => v !== null && typeof v !== 'object')
        .slice(0, 4)
        .map(([k, v]) => k + ': ' + v);
      if (shown.length) parts.push(el('div', { className: 'muted', text: shown.join(' · ') }));
    }
    return el('li', null, parts);
  }

  function historyItem(h) {
    const who = h.reviewer ? h.reviewer + (h.actor ? ' (' + h.actor + ')' : '') : h.actor || 'unknown';
    const parts = [fmtTime(h.at) + ': ' + (h.from || 'new') + ' → ' + h.to + ' by ' + who];
    if (h.notes) parts.push(el('div', { text: 'Notes: ' + h.notes }));
    if (h.reason) parts.push(el('div', { text: 'Reason: ' + h.reason }));
    return el('li', null, parts);
  }

  /* The weekly series as bars of occurrences and a line of cost, with a text alternative. */
  function drawChart(weeks) {
    /* As wide as its box (within bounds), so that its text keeps its size on a phone. */
    const W = Math.round(Math.max(300, Math.min(640, $('chart').clientWidth || 560)));
    const H = 210, L = 40, R = 52, T = 12, B = 30;
    const w = W - L - R, h = H - T - B;
    const maxN = Math.max(1, ...weeks.map((x) => x.occurrences));
    const maxC = Math.max(0.01, ...weeks.map((x) => x.cost));
    const total = weeks.reduce((a, x) => a + x.occurrences, 0);
    const root = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, role: 'img', 'data-weeks': weeks.length });
    root.append(
      svg('title', {}, 'Weekly occurrences and cost'),
      svg('desc', {}, weeks.length + ' weeks, ' + count.format(total) + ' occurrences in all')
    );
    root.append(svg('line', { class: 'axis', x1: L, y1: T + h, x2: L + w, y2: T + h }));
    root.append(svg('text', { x: L - 4, y: T + 9, 'text-anchor': 'end' }, count.format(maxN)));
    root.append(svg('text', { x: L - 4, y: T + h, 'text-anchor': 'end' }, '0'));
    root.append(svg('text', { class: 'cost', x: L + w + 4, y: T + 9 }, dollars.format(maxC)));
    const slot = weeks.length ? w / weeks.length : w;
    const points = [];
    weeks.forEach((x, i) => {
      const bh = (x.occurrences / maxN) * h;
      const bar = svg('rect', {
        class: 'occ',
        x: (L + i * slot + slot * 0.15).toFixed(1),
        y: (T + h - bh).toFixed(1),
        width: Math.max(1, slot * 0.7).toFixed(1),
        height: bh.toFixed(1),
        'data-week': x.week,
        'data-occurrences': x.occurrences,
      });
      bar.append(
        svg('title', {}, x.week + ' (from ' + fmtDay(x.week_start) + '): ' + count.format(x.occurrences) +
          ' occurrences, ' + dollars.format(x.cost))
      );
      root.append(bar);
      points.push([(L + i * slot + slot / 2).toFixed(1), (T + h - (x.cost / maxC) * h).toFixed(1)]);
      if (i % Math.max(1, Math.ceil(weeks.length / 6)) === 0)
        root.append(svg('text', { x: L + i * slot + slot / 2, y: H - 10, 'text-anchor': 'middle' },
          fmtDay(x.week_start, shortDay)));
    });
    if (points.length)
      root.append(svg('polyline', { class: 'costline', points: points.map((p) => p.join(',')).join(' ') }));
    const legend = el('p', { className: 'legend' }, [
      el('span', { className: 'sw occ' }), 'occurrences  ',
      el('span', { className: 'sw cost' }), 'cost (US$)',
    ]);
    $('chart').replaceChildren(root, legend);
  }

  /* --- review ---------------------------------------------------------------------------- */

  function updateActions() {
    const p = state.detail;
    const review = canReview();
    for (const b of document.querySelectorAll('#review [data-action]')) {
      const allowedFrom = ACTIONS[b.dataset.action];
      b.disabled = !review || !p || state.busy || allowedFrom.indexOf(p.automation_status) < 0;
    }
    $('reviewer').disabled = !review;
    $('notes').disabled = !review;
    $('review-note').textContent = !review
      ? 'This key can read but not review: ask for a key with the review scope to act.'
      : p
        ? 'The pattern is ' + p.automation_status + '. Rejecting or deprecating needs a reason.'
        : '';
  }

  async function review(action) {
    const p = state.detail;
    if (!p || state.busy) return;
    clearError();
    const reviewer = $('reviewer').value.trim();
    if (!reviewer) {
      showError('Write your name as the reviewer, then try again.');
      $('reviewer').focus();
      return;
    }
    const text = $('notes').value.trim();
    const body = { action, expected_status: p.automation_status, reviewer };
    if (text) body[NEEDS_REASON[action] ? 'reason' : 'notes'] = text;
    state.busy = true;
    updateActions();
    const res = await api('POST', '/v1/patterns/' + encodeURIComponent(p.id) + '/review', body);
    state.busy = false;
    if (res.status === 200 && res.body) {
      $('notes').value = '';
      showDetail(res.body);
      replaceRow(res.body);
      $('review-note').textContent = 'Done: the pattern was ' + DONE_WORDS[action] + '.';
      await loadSummary();
      return;
    }
    updateActions();
    failed(res, action + ' this pattern');
    if (res.status === 409 || res.status === 404) await refreshAfterConflict(p.id, res.status);
  }

  /* Another reviewer moved it: show where it is now, and keep the message. */
  async function refreshAfterConflict(id, status) {
    const message = $('error').textContent;
    if (status === 409) {
      const res = await api('GET', '/v1/patterns/' + encodeURIComponent(id));
      if (res.status === 200 && res.body) {
        showDetail(res.body);
        replaceRow(res.body);
      }
    } else {
      closeDetail(false);
    }
    await loadSummary();
    showError(message);
  }

  function replaceRow(p) {
    const tr = rowElement(p.id);
    if (!tr) return;
    tr.replaceChildren(...rowCells(p));
    tr.dataset.status = p.automation_status;
  }

  /* --- wiring ---------------------------------------------------------------------------- */

  function init() {
    $('keyform').addEventListener('submit', (e) => {
      e.preventDefault();
      const key = $('key').value.trim();
      $('key').value = '';
      if (!key) {
        showError('Enter an API key first.');
        return;
      }
      useKey(key, false);
    });
    $('forget').addEventListener('click', () => forgetKey(true));
    $('filters').addEventListener('submit', (e) => {
      e.preventDefault();
      state.query = readFilters();
      state.cursors = [null];
      clearError();
      loadPage(0);
    });
    $('status').addEventListener('change', () => $('filters').requestSubmit());
    $('prev').addEventListener('click', () => loadPage(Math.max(0, state.page - 1)));
    $('next').addEventListener('click', () => {
      if (!state.nextCursor) return;
      state.cursors[state.page + 1] = state.nextCursor;
      loadPage(state.page + 1);
    });
    $('close').addEventListener('click', () => closeDetail(true));
    let width = window.innerWidth;
    window.addEventListener('resize', () => {
      if (window.innerWidth === width) return;
      width = window.innerWidth;
      if (state.detail) drawChart(state.detail.weekly || []);
    });
    $('detail').addEventListener('keydown', (e) => {
      if (e.key === 'Escape') closeDetail(true);
    });
    for (const b of document.querySelectorAll('#review [data-action]'))
      b.addEventListener('click', () => review(b.dataset.action));
    $('review').addEventListener('submit', (e) => e.preventDefault());

    const saved = sessionStorage.getItem(KEY_SLOT);
    if (saved) useKey(saved, true);
    else $('key').focus();
  }

  init();
})();
