/** One of the user's sessions, as the devices list shows it. */
export interface PageDevice {
  userAgent: string;
  lastActiveAt: Date;
  current: boolean;
}

/** What the page shows: a login form, or the logged-in view. */
export interface PageModel {
  error?: boolean;
  user?: { username: string; role: string };
  cart?: string[];
  /** `null`: the sessions cannot be listed (sealed mode). */
  devices?: PageDevice[] | null;
  csrfToken?: string;
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Everything that comes from a user (names, items, user agents) goes through this. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const STYLE = `
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; color: #1d1d1f; }
  h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
  section { border: 1px solid #ddd; border-radius: 8px; padding: .2rem 1rem 1rem; margin: 1rem 0; }
  input, button { font: inherit; margin: .2rem 0; padding: .3rem .6rem; }
  ul { padding-left: 1.2rem; } .current { font-weight: 600; }
  .error { color: #b00020; } .muted { color: #666; font-size: .9rem; }
  form.inline { display: inline; }
`;

function csrf(token: string): string {
  return `<input type="hidden" name="_csrf" value="${escapeHtml(token)}">`;
}

function loginView(error: boolean): string {
  return `
<section id="login">
<h2>Log in</h2>
${error ? '<p class="error" role="alert">Wrong username or password.</p>' : ''}
<form method="post" action="/page/login">
  <label>Username <input name="username" autocomplete="username" required></label><br>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label><br>
  <button type="submit">Log in</button>
</form>
<p class="muted">Demo users: <code>alice</code> / <code>wonderland</code>, <code>admin</code> / <code>admin-secret</code>.</p>
</section>`;
}

function devicesView(devices: PageDevice[] | null, token: string): string {
  const list =
    devices === null
      ? '<p class="muted">Sealed cookies keep no server state: sessions cannot be listed.</p>'
      : `<ul id="device-list">${devices
          .map(
            (d) =>
              `<li class="device${d.current ? ' current' : ''}">${escapeHtml(d.userAgent)}` +
              ` <span class="muted">(last active ${escapeHtml(d.lastActiveAt.toISOString())})</span>` +
              `${d.current ? ' <span class="muted">— this device</span>' : ''}</li>`,
          )
          .join('')}</ul>`;
  return `
<section id="devices">
<h2>Your devices</h2>
${list}
<form class="inline" method="post" action="/page/logout">${csrf(token)}<button id="logout" type="submit">Log out this device</button></form>
<form class="inline" method="post" action="/page/logout-others">${csrf(token)}<button id="logout-others" type="submit">Log out everywhere else</button></form>
</section>`;
}

function userView(model: Required<Omit<PageModel, 'error'>>): string {
  const { user, cart, devices, csrfToken } = model;
  const items = cart.length
    ? `<ul id="cart-items">${cart.map((item) => `<li>${escapeHtml(item)}</li>`).join('')}</ul>`
    : '<p id="cart-empty" class="muted">Your cart is empty.</p>';
  return `
<section id="whoami">
<h2>Who am I</h2>
<p>Signed in as <strong id="username">${escapeHtml(user.username)}</strong> (role <span id="role">${escapeHtml(user.role)}</span>). <a href="/whoami">/whoami</a> shows the session as JSON.</p>
</section>
<section id="cart">
<h2>Cart</h2>
${items}
<form method="post" action="/page/cart">
  ${csrf(csrfToken)}
  <label>Item <input name="item" maxlength="200" required></label>
  <button type="submit">Add to cart</button>
</form>
<p class="muted">Every form on this page carries a CSRF token of this session.</p>
</section>
${devicesView(devices, csrfToken)}`;
}

/** The whole page. */
export function renderPage(model: PageModel): string {
  const body = model.user
    ? userView({
        user: model.user,
        cart: model.cart ?? [],
        devices: model.devices ?? null,
        csrfToken: model.csrfToken ?? '',
      })
    : loginView(model.error === true);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nestjs-sessions sample</title>
<style>${STYLE}</style>
</head>
<body>
<h1>nestjs-sessions sample</h1>
${body}
</body>
</html>
`;
}
