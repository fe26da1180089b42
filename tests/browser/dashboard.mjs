/*
 * The dashboard in a real browser: Debian's chromium driven by
 * playwright-core, against a running `patternd serve` with the sample data
 * (tests/browser/test_dashboard.c starts both and checks the database
 * afterwards).  One run walks through what a reviewer does and fails on the
 * first thing that is not as it should be, or on any console error.
 *
 * Input, from the environment:
 *   PD_BASE_URL        the service, e.g. http://127.0.0.1:40123
 *   PD_REVIEW_KEY      a key with the review scope; PD_READ_KEY one with read only
 *   PD_EXPECT          a JSON file: {"counts": {status: n}, "first_page": [ids in savings order],
 *                      "candidates": n}, read from the database
 *   PD_RESULT          where to write what was done: {"approved", "rejected", "contested",
 *                      "reviewer", "notes"}
 *   PD_SCREENSHOTS     a folder for dashboard-list.png and dashboard-detail.png (optional)
 *   PD_CHROMIUM        the browser (default /usr/bin/chromium)
 *
 * Nothing waits for a time: every step waits for an element, an attribute
 * or a response; the timeouts only turn a hang into a failure.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const HANG_MS = 60000; /* a hang guard, not a latency bound */
const STATUSES = ['detected', 'candidate', 'approved', 'rejected', 'implemented', 'deprecated'];
const ACTIONS = ['approve', 'reject', 'implement', 'deprecate', 'reopen'];
const MAX_TRANSFER = 300 * 1024;

const base = process.env.PD_BASE_URL;
const reviewKey = process.env.PD_REVIEW_KEY;
const readKey = process.env.PD_READ_KEY;
const expect = JSON.parse(readFileSync(process.env.PD_EXPECT, 'utf8'));
const shots = process.env.PD_SCREENSHOTS || '';

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

function digits(text) {
  return Number(String(text).replace(/[^0-9]/g, ''));
}

const tid = (id) => '[data-testid="' + id + '"]';

const browser = await chromium.launch({
  executablePath: process.env.PD_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  timeout: HANG_MS,
});
let failure = null;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-US' });
  context.setDefaultTimeout(HANG_MS);
  const page = await context.newPage();

  /* Console errors fail the test, but for the one 400 the rejection without a reason is meant to get. */
  const consoleErrors = [];
  let expectedFailure = null; /* {url, status} the page is about to get on purpose */
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location().url || '';
    if (expectedFailure && url === expectedFailure.url &&
        msg.text().includes('status of ' + expectedFailure.status)) {
      expectedFailure.seen = true;
      return;
    }
    consoleErrors.push(msg.text() + (url ? ' (' + url + ')' : ''));
  });
  page.on('pageerror', (e) => consoleErrors.push('uncaught: ' + e.message));

  /* Every byte the page transfers while it loads and shows the first list. */
  let transfer = 0;
  let counting = true;
  const pending = [];
  page.on('requestfinished', (req) => {
    if (!counting) return;
    pending.push(req.sizes().then((s) => {
      transfer += s.requestHeadersSize + s.requestBodySize + s.responseHeadersSize + s.responseBodySize;
    }));
  });

  /* --- the page and its headers --------------------------------------------------------- */
  const main = await page.goto(base + '/', { waitUntil: 'load' });
  check(main.status() === 200, 'GET / answers 200, not ' + main.status());
  const assetResponses = [];
  const h = main.headers();
  const csp = h['content-security-policy'] || '';
  check(/default-src 'self'/.test(csp), "CSP has default-src 'self': " + csp);
  check(/frame-ancestors 'none'/.test(csp), "CSP has frame-ancestors 'none': " + csp);
  check(!/unsafe-inline|unsafe-eval/.test(csp), 'CSP allows no unsafe-inline or unsafe-eval: ' + csp);
  check(h['x-content-type-options'] === 'nosniff', 'X-Content-Type-Options: nosniff');
  check(h['referrer-policy'] === 'no-referrer', 'Referrer-Policy: no-referrer');
  check(/no-cache/.test(h['cache-control'] || '') && /^"[0-9a-f]+"$/.test(h['etag'] || ''),
    'the page is revalidated, with an ETag: ' + h['cache-control'] + ' ' + h['etag']);
  const assets = await page.evaluate(() =>
    [...document.querySelectorAll('script[src], link[href]')].map((e) => e.src || e.href));
  check(assets.length >= 2, 'the page loads its script and style from /assets/');
  for (const url of assets) {
    check(new URL(url).pathname.startsWith('/assets/'), 'asset under /assets/: ' + url);
    const r = await context.request.get(url);
    const ah = r.headers();
    check(r.status() === 200, url + ' answers 200');
    check(/immutable/.test(ah['cache-control'] || '') && /max-age=\d+/.test(ah['cache-control']),
      url + ' is cached for good: ' + ah['cache-control']);
    check((ah['etag'] || '').length > 2 && url.includes(ah['etag'].replace(/"/g, '')),
      url + ' is named by the hash its ETag gives');
    check(ah['x-content-type-options'] === 'nosniff' && /default-src 'self'/.test(ah['content-security-policy']),
      url + ' carries the security headers');
    assetResponses.push(url);
  }
  /* No inline script, no inline style or style attribute: nothing that would need unsafe-inline. */
  const inline = await page.evaluate(() => ({
    scripts: [...document.scripts].filter((s) => !s.src).length,
    styles: document.querySelectorAll('style').length,
    attrs: document.querySelectorAll('[style]').length,
  }));
  check(inline.scripts === 0 && inline.styles === 0 && inline.attrs === 0,
    'no inline script or style: ' + JSON.stringify(inline));

  /* --- the key ----------------------------------------------------------------------------- */
  await page.locator(tid('key-input')).fill(reviewKey);
  await page.locator(tid('key-submit')).click();
  await page.waitForFunction(() => document.querySelector('[data-testid="pattern-row"]') ||
    !document.querySelector('[data-testid="error"]').hidden, null, { timeout: HANG_MS });
  check(await page.locator(tid('error')).isHidden(),
    'the review key opens the dashboard: ' + (await page.locator(tid('error')).textContent()));
  await page.waitForFunction(
    () => [...document.querySelectorAll('[data-testid^="count-"]')].every((e) => /[0-9]/.test(e.textContent)),
    null, { timeout: HANG_MS });
  counting = false;
  await Promise.all(pending);
  check(transfer > 0 && transfer < MAX_TRANSFER, 'the first view transfers ' + transfer + ' bytes, under 300 KB');

  const storage = await page.evaluate(() => ({
    local: JSON.stringify(Object.assign({}, localStorage)),
    session: Object.values(Object.assign({}, sessionStorage)),
    url: location.href,
  }));
  check(!storage.local.includes(reviewKey), 'the key is not in localStorage');
  check(storage.session.includes(reviewKey), 'the key is kept in sessionStorage');
  check(!storage.url.includes(reviewKey) && !page.url().includes(reviewKey), 'the key is not in the URL');
  const cookies = await context.cookies();
  check(!cookies.some((c) => c.value.includes(reviewKey) || c.name.includes(reviewKey)),
    'the key is in no cookie');
  check(cookies.length === 0, 'the page sets no cookie');

  /* --- counters and rows ------------------------------------------------------------------ */
  for (const s of STATUSES) {
    const shown = digits(await page.locator(tid('count-' + s)).textContent());
    check(shown === expect.counts[s], 'count-' + s + ' shows ' + shown + ', the database has ' + expect.counts[s]);
  }
  const ids = await page.locator(tid('pattern-row')).evaluateAll((rows) => rows.map((r) => Number(r.dataset.patternId)));
  check(JSON.stringify(ids) === JSON.stringify(expect.first_page),
    'rows in savings order: ' + JSON.stringify(ids) + ' vs ' + JSON.stringify(expect.first_page));
  const firstRowText = await page.locator(tid('pattern-row')).first().textContent();
  check(STATUSES.some((s) => firstRowText.includes(s)), 'a row names its status');
  if (shots) await page.screenshot({ path: join(shots, 'dashboard-list.png') });

  /* --- the status filter ------------------------------------------------------------------ */
  const listed = page.waitForResponse((r) => r.url().includes('/v1/patterns?') && r.url().includes('status=candidate'));
  await page.locator(tid('status-filter')).selectOption('candidate');
  check((await listed).status() === 200, 'the filtered list answers 200');
  await page.waitForFunction(
    () => {
      const rows = [...document.querySelectorAll('[data-testid="pattern-row"]')];
      return rows.length > 0 && rows.every((r) => r.dataset.status === 'candidate');
    }, null, { timeout: HANG_MS });
  const candidates = await page.locator(tid('pattern-row')).evaluateAll((rows) =>
    rows.map((r) => ({ id: Number(r.dataset.patternId), text: r.textContent })));
  check(candidates.length === Math.min(20, expect.candidates), 'the filter shows ' + candidates.length +
    ' candidates of ' + expect.candidates);
  check(candidates.every((c) => c.text.includes('candidate')), 'each filtered row says candidate');
  check(candidates.length >= 3, 'three candidates to review');
  const [toApprove, toReject, contested] = candidates;

  /* --- a pattern: chart and examples ------------------------------------------------------ */
  const row = (id) => page.locator(tid('pattern-row') + '[data-pattern-id="' + id + '"]');
  const detailAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === '/v1/patterns/' + toApprove.id);
  await row(toApprove.id).locator('button').click();
  const doc = await (await detailAnswer).json();
  const detail = page.locator(tid('pattern-detail'));
  await detail.waitFor({ state: 'visible' });
  await page.waitForFunction((id) => {
    const rows = document.querySelectorAll('[data-testid="pattern-row"].selected');
    return rows.length === 1 && rows[0].dataset.patternId === String(id);
  }, toApprove.id, { timeout: HANG_MS });
  check(Array.isArray(doc.weekly) && doc.weekly.length > 0, 'the pattern has weeks');
  const bars = await page.locator(tid('weekly-chart') + ' svg rect.occ').evaluateAll((r) =>
    r.map((e) => ({ week: e.getAttribute('data-week'), n: Number(e.getAttribute('data-occurrences')),
      h: Number(e.getAttribute('height')) })));
  check(JSON.stringify(bars.map((b) => b.week)) === JSON.stringify(doc.weekly.map((w) => w.week)),
    'the chart draws one bar per week of the pattern');
  check(bars.every((b, i) => b.n === doc.weekly[i].occurrences), 'each bar holds its week\'s occurrences');
  check(bars.some((b) => b.h > 0), 'some bar has a height');
  const drawn = await page.locator(tid('weekly-chart') + ' svg').boundingBox();
  check(drawn && drawn.width > 200 && drawn.height > 60, 'the chart is drawn at a readable size');
  check(doc.examples.length > 0, 'the pattern has examples');
  const examples = await page.locator(tid('examples') + ' > li').allTextContents();
  check(examples.length === doc.examples.length, 'one item per example');
  check(doc.examples.every((x, i) => examples[i].includes(x.workflow_id)), 'the examples name their workflows');
  check((await page.locator(tid('history') + ' > li').count()) >= 1, 'the history is listed');
  for (const a of ['approve', 'reject'])
    check(await page.locator(tid('action-' + a)).isEnabled(), a + ' is enabled for a candidate');
  for (const a of ['implement', 'deprecate', 'reopen'])
    check(await page.locator(tid('action-' + a)).isDisabled(), a + ' is disabled for a candidate');
  if (shots) await page.screenshot({ path: join(shots, 'dashboard-detail.png') });

  /* --- approve with a reviewer and notes -------------------------------------------------- */
  const reviewer = 'Ada Reviewer';
  const notes = 'Saves an hour a day: build it (browser test ' + toApprove.id + ')';
  const approvedBefore = digits(await page.locator(tid('count-approved')).textContent());
  const candidateBefore = digits(await page.locator(tid('count-candidate')).textContent());
  await page.locator(tid('reviewer-name')).fill(reviewer);
  await page.locator(tid('review-notes')).fill(notes);
  const approved = page.waitForResponse((r) => r.url().endsWith('/v1/patterns/' + toApprove.id + '/review'));
  await page.locator(tid('action-approve')).click();
  const approvedRes = await approved;
  check(approvedRes.status() === 200, 'the approval answers 200, not ' + approvedRes.status());
  await page.waitForFunction(
    ([id, a, c]) => {
      const row = document.querySelector('[data-testid="pattern-row"][data-pattern-id="' + id + '"]');
      const n = (t) => Number(document.querySelector('[data-testid="count-' + t + '"]').textContent.replace(/[^0-9]/g, ''));
      return row && row.dataset.status === 'approved' && row.textContent.includes('approved') &&
        n('approved') === a + 1 && n('candidate') === c - 1;
    }, [toApprove.id, approvedBefore, candidateBefore], { timeout: HANG_MS });
  const history = await page.locator(tid('history') + ' > li').allTextContents();
  check(history.some((t) => t.includes(notes) && t.includes(reviewer)), 'the history shows the approval');
  check(await page.locator(tid('action-implement')).isEnabled(), 'an approved pattern can be implemented');
  check(await page.locator(tid('action-approve')).isDisabled(), 'an approved pattern cannot be approved again');
  check(await page.locator(tid('error')).isHidden(), 'no error after the approval');

  /* --- reject without a reason: the service's 400, in plain words ----------------------- */
  await row(toReject.id).locator('button').click();
  await page.waitForFunction((id) => {
    const rows = document.querySelectorAll('[data-testid="pattern-row"].selected');
    return rows.length === 1 && rows[0].dataset.patternId === String(id);
  }, toReject.id, { timeout: HANG_MS });
  await page.locator(tid('reviewer-name')).fill(reviewer);
  await page.locator(tid('review-notes')).fill('');
  expectedFailure = { url: base + '/v1/patterns/' + toReject.id + '/review', status: 400 };
  const rejected = page.waitForResponse((r) => r.url().endsWith('/v1/patterns/' + toReject.id + '/review'));
  await page.locator(tid('action-reject')).click();
  check((await rejected).status() === 400, 'a rejection without a reason answers 400');
  await page.locator(tid('error')).waitFor({ state: 'visible' });
  const errorText = await page.locator(tid('error')).textContent();
  check(/reason/i.test(errorText), 'the error says a reason is needed: ' + errorText);
  check((await row(toReject.id).getAttribute('data-status')) === 'candidate', 'the refused pattern stays a candidate');

  /* --- another reviewer moves a pattern first: the 409, in plain words ------------------ */
  await row(contested.id).locator('button').click();
  await page.waitForFunction((id) => {
    const rows = document.querySelectorAll('[data-testid="pattern-row"].selected');
    return rows.length === 1 && rows[0].dataset.patternId === String(id);
  }, contested.id, { timeout: HANG_MS });
  const other = await context.request.post(base + '/v1/patterns/' + contested.id + '/review', {
    headers: { Authorization: 'Bearer ' + reviewKey },
    data: { action: 'reject', expected_status: 'candidate', reviewer: 'Other Reviewer', reason: 'duplicate of another tool' },
  });
  check(other.status() === 200, 'the other reviewer\'s rejection answers 200, not ' + other.status());
  await page.locator(tid('review-notes')).fill('looks good');
  expectedFailure = { url: base + '/v1/patterns/' + contested.id + '/review', status: 409 };
  const contestedAnswer = page.waitForResponse((r) => r.url().endsWith('/v1/patterns/' + contested.id + '/review'));
  await page.locator(tid('action-approve')).click();
  check((await contestedAnswer).status() === 409, 'approving a pattern someone rejected answers 409');
  await page.waitForFunction((id) => {
    const row = document.querySelector('[data-testid="pattern-row"][data-pattern-id="' + id + '"]');
    const error = document.querySelector('[data-testid="error"]');
    return row && row.dataset.status === 'rejected' && !error.hidden && /someone else/i.test(error.textContent);
  }, contested.id, { timeout: HANG_MS });
  check(await page.locator(tid('action-reopen')).isEnabled(), 'the page shows the rejected pattern as it is now');

  /* --- forget the key --------------------------------------------------------------------- */
  await page.locator(tid('forget-key')).click();
  await page.locator(tid('key-input')).waitFor({ state: 'visible' });
  const forgotten = await page.evaluate(() => ({ s: sessionStorage.length, l: localStorage.length }));
  check(forgotten.s === 0 && forgotten.l === 0, 'after "forget key" no storage holds anything');
  check((await page.locator(tid('pattern-row')).count()) === 0, 'after "forget key" no row is shown');

  /* --- a read-only key: no enabled action; the keyboard alone opens and closes a pattern --- */
  await page.locator(tid('key-input')).fill(readKey);
  await page.locator(tid('key-input')).press('Enter');
  await page.locator(tid('pattern-row')).first().waitFor();
  const first = page.locator(tid('pattern-row')).first();
  const firstId = await first.getAttribute('data-pattern-id');
  await first.locator('button').focus();
  await page.keyboard.press('Enter');
  await detail.waitFor({ state: 'visible' });
  await page.waitForFunction((id) => {
    const rows = document.querySelectorAll('[data-testid="pattern-row"].selected');
    return rows.length === 1 && rows[0].dataset.patternId === id &&
      document.activeElement && document.activeElement.id === 'd-title';
  }, firstId, { timeout: HANG_MS });
  const enabled = await page.locator('[data-testid^="action-"]:enabled').count();
  check(enabled === 0, 'a read-only key finds no enabled action, not ' + enabled);
  check((await page.locator('[data-testid^="action-"]').count()) === ACTIONS.length, 'every action is there');
  check(await page.locator(tid('reviewer-name')).isDisabled(), 'a read-only key cannot name a reviewer');
  await page.keyboard.press('Escape');
  await detail.waitFor({ state: 'hidden' });
  check(await first.locator('button').evaluate((b) => b === document.activeElement),
    'Escape closes the pattern and gives the focus back to its row');

  /* --- a phone-width screen --------------------------------------------------------------- */
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  check(overflow <= 0, 'nothing overflows a phone-width screen sideways (' + overflow + ' px)');
  const small = await page.evaluate(() => Math.min(...[...document.querySelectorAll('td, .counters .n, h2')]
    .map((e) => parseFloat(getComputedStyle(e).fontSize))));
  check(small >= 12, 'text stays at 12 px or larger on a phone (' + small + ')');

  check(consoleErrors.length === 0, 'console errors: ' + consoleErrors.join('; '));
  writeFileSync(process.env.PD_RESULT, JSON.stringify({
    approved: toApprove.id, rejected: toReject.id, contested: contested.id, reviewer, notes, transfer,
  }) + '\n');
  await context.close();
} catch (e) {
  failure = e;
} finally {
  await browser.close();
}
if (failure) {
  console.error(String(failure && failure.stack ? failure.stack : failure));
  process.exit(1);
}
console.log('dashboard: every check passed');
