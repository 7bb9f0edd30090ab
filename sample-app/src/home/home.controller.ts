import { Controller, Get, Header } from '@nestjs/common';

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nestjs-sessions sample</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 36rem; margin: 3rem auto; padding: 0 1rem; }
  input, button { font: inherit; margin: .2rem 0; padding: .3rem .6rem; }
  pre { background: #f4f4f4; padding: 1rem; min-height: 3rem; white-space: pre-wrap; }
</style>
</head>
<body>
<h1>nestjs-sessions sample</h1>
<p>Demo users: <code>alice</code> / <code>wonderland</code>, <code>admin</code> / <code>admin-secret</code>.</p>
<form id="login">
  <input name="username" placeholder="username" autocomplete="username" required>
  <input name="password" type="password" placeholder="password" autocomplete="current-password" required>
  <button>Log in</button>
</form>
<p>
  <button id="whoami">Who am I?</button>
  <button id="sessions">My sessions</button>
  <button id="logout">Log out</button>
</p>
<pre id="out"></pre>
<script>
  const out = document.getElementById('out');
  async function call(method, url, body) {
    const res = await fetch(url, {
      method,
      headers: body ? { 'content-type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined,
    });
    const text = await res.text();
    out.textContent = res.status + ' ' + res.statusText + '\\n' + text;
  }
  document.getElementById('login').addEventListener('submit', (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    call('POST', '/auth/login', { username: form.get('username'), password: form.get('password') });
  });
  document.getElementById('whoami').onclick = () => call('GET', '/whoami');
  document.getElementById('sessions').onclick = () => call('GET', '/auth/sessions');
  document.getElementById('logout').onclick = () => call('POST', '/auth/logout');
</script>
</body>
</html>
`;

/** A small page to try the session by hand. */
@Controller()
export class HomeController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  page() {
    return PAGE;
  }
}
