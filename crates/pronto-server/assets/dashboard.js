// The admin key lives in this variable only: never in localStorage, sessionStorage or a cookie.
let adminKey = '';
const keyInput = document.getElementById('key');
document.getElementById('login').addEventListener('submit', (e) => {
  e.preventDefault();
  adminKey = keyInput.value;
  keyInput.value = '';
  load();
});
const esc = (s) => String(s ?? '').replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));
const bar = (n, max, cls) => `<progress class="${cls}" max="${max}" value="${n}"></progress>${n}`;
const list = (o, max, cls) => Object.entries(o || {}).map(([k, n]) => `${bar(n, max, cls)} <span class="muted">${esc(k)}</span>`).join('<br>') || '<span class="muted">—</span>';
async function get(path) {
  const r = await fetch(path, { headers: { Authorization: 'Bearer ' + adminKey } });
  if (!r.ok) throw new Error((await r.json()).message || r.status);
  return r.json();
}
async function load() {
  if (!adminKey) return;
  try {
    const [{ flows }, { messages }] = await Promise.all([get('/v1/flows'), get('/v1/messages?limit=50')]);
    const max = Math.max(1, ...flows.flatMap((f) => [f.active, f.finished, ...Object.values(f.exited), ...Object.values(f.skipped), ...Object.values(f.messages)]));
    document.getElementById('flows').innerHTML = '<tr><th>flow</th><th>in progress</th><th>finished</th><th>ended by</th><th>skipped</th><th>messages</th></tr>' +
      flows.map((f) => `<tr><td><b>${esc(f.id)}</b><br><span class="muted">${esc(f.triggers.join(', '))}${f.configured ? '' : ' (removed)'}</span></td>
        <td>${bar(f.active, max, '')}</td><td>${bar(f.finished, max, '')}</td><td>${list(f.exited, max, 'exit')}</td>
        <td>${list(f.skipped, max, 'skip')}</td><td>${list(f.messages, max, 'sent')}</td></tr>`).join('');
    document.getElementById('messages').innerHTML = '<tr><th>created</th><th>state</th><th>to</th><th>subject</th><th>flow</th><th>attempts</th></tr>' +
      messages.map((m) => `<tr><td>${esc(m.created_at.replace('T', ' ').slice(0, 19))}</td><td>${esc(m.state)}${m.transport ? ' <span class="muted">(' + esc(m.transport) + ')</span>' : ''}</td>
        <td>${esc(m.to)}</td><td>${esc(m.subject)}</td><td>${esc(m.flow)}</td><td>${m.attempts}${m.last_error ? '<br><span class="muted">' + esc(m.last_error) + '</span>' : ''}</td></tr>`).join('');
    document.getElementById('err').textContent = '';
  } catch (e) { document.getElementById('err').textContent = e.message; }
}
load(); setInterval(load, 5000);
