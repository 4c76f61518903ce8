// pronto's web app, enhanced: the pages work without this script (plain forms and links); with it,
// an open inbox puts in place the cards of leads that arrive or change (server-sent events from /app/live), SLA
// countdowns tick, and times are shown in the browser's own zone with the zone named.
'use strict';

const zoneName = (d) => {
  const part = new Intl.DateTimeFormat(undefined, { timeZoneName: 'short' })
    .formatToParts(d).find((p) => p.type === 'timeZoneName');
  return part ? part.value : Intl.DateTimeFormat().resolvedOptions().timeZone;
};

function localTimes(root) {
  const fmt = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: '2-digit', month: 'short', hour: '2-digit', minute: '2-digit' });
  root.querySelectorAll('time[datetime]').forEach((t) => {
    const d = new Date(t.getAttribute('datetime'));
    if (!isNaN(d)) t.textContent = fmt.format(d) + ' ' + zoneName(d);
  });
  root.querySelectorAll('[data-zone]').forEach((z) => {
    z.textContent = Intl.DateTimeFormat().resolvedOptions().timeZone + ' (this browser\'s zone)';
  });
}

function span(ms) {
  const s = Math.floor(Math.abs(ms) / 1000);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + String(s % 60).padStart(2, '0') + ' s';
  if (s < 86400) return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
  return Math.floor(s / 86400) + ' d';
}

function tick() {
  const now = Date.now();
  document.querySelectorAll('[data-deadline]').forEach((el) => {
    const left = new Date(el.dataset.deadline).getTime() - now;
    if (left > 0) {
      el.textContent = span(left) + ' left to call';
      el.classList.remove('late');
    } else {
      el.textContent = 'SLA missed ' + span(left) + ' ago';
      el.classList.add('late');
    }
  });
}

// Redraws <main> from a fresh copy of the page, unless the person is typing or has a form open: then it
// waits until they are done, so nothing they entered is lost.
let pending = false;
function busy() {
  const a = document.activeElement;
  return (a && a.closest('main') && a.matches('input, textarea, select')) ||
    document.querySelector('main details[open]');
}
async function redraw() {
  if (busy()) { pending = true; return; }
  pending = false;
  const r = await fetch(location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
  if (!r.ok || r.redirected) return;
  const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
  const fresh = doc.querySelector('main');
  if (!fresh) return;
  document.querySelector('main').replaceChildren(...fresh.childNodes);
  document.title = doc.title;
  localTimes(document);
  tick();
  const count = Number((document.getElementById('new-count') || {}).textContent || 0);
  if (navigator.setAppBadge) navigator.setAppBadge(count).catch(() => {});
  const live = document.getElementById('live');
  if (live) live.dataset.updated = String(Date.now());
}
document.addEventListener('focusout', () => setTimeout(() => { if (pending) redraw(); }, 0));
document.addEventListener('toggle', () => { if (pending) redraw(); }, true);

// Puts the cards a live update sent in place: each replaces the lead's card wherever it is, in its list
// (newest first, as the page orders them); a lead won or lost leaves the inbox. The counts and the tab title
// follow. While the person is typing or has a form open, the page is drawn again once they are done instead.
function place(cards) {
  if (busy()) { pending = true; return; }
  for (const c of cards) {
    const old = document.getElementById('lead-' + c.id);
    if (old) old.remove();
    const section = document.querySelector(`main section[aria-labelledby="${c.section}"]`);
    if (!section || !c.html) continue;
    let list = section.querySelector('ul.cards');
    if (!list) {
      list = document.createElement('ul');
      list.className = 'cards';
      const empty = section.querySelector('p.muted');
      if (empty) empty.replaceWith(list); else section.append(list);
    }
    const card = new DOMParser().parseFromString(`<ul>${c.html}</ul>`, 'text/html').querySelector('li');
    if (!card) continue;
    const after = [...list.children].find((li) => li.id && li.id.slice(5) < c.id);
    list.insertBefore(card, after || null);
  }
  for (const [id, count] of [['new', 'new-count'], ['working', 'working-count']]) {
    const n = document.querySelectorAll(`main section[aria-labelledby="${id}"] ul.cards > li`).length;
    const el = document.getElementById(count);
    if (el) el.textContent = String(n);
  }
  const waiting = Number((document.getElementById('new-count') || {}).textContent || 0);
  document.title = (waiting > 0 ? `(${waiting}) ` : '') + document.title.replace(/^\(\d+\) /, '');
  if (navigator.setAppBadge) navigator.setAppBadge(waiting).catch(() => {});
  localTimes(document);
  tick();
  const live = document.getElementById('live');
  if (live) live.dataset.updated = String(Date.now());
}

function listen() {
  const el = document.getElementById('live');
  if (!el || !window.EventSource) return;
  const source = new EventSource(el.dataset.live);
  source.addEventListener('cards', (e) => place(JSON.parse(e.data)));
  source.addEventListener('leads', () => redraw());
  source.addEventListener('open', () => { el.dataset.connected = 'true'; });
}

localTimes(document);
tick();
setInterval(tick, 1000);
listen();
