import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { bootSampleApp } from './support/sample-app.js';

/**
 * The sample app's page in a real browser (headless Chromium through playwright-core). Chromium is
 * Debian's `chromium` (`CHROMIUM_PATH` to use another); without it the spec is skipped with a
 * reason, unless SESSION_TEST_SERVICES=required (CI), where that fails the run. Screenshots go to
 * test-output/browser/.
 */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-output/browser');

function describeWithChromium(): typeof describe {
  if (existsSync(CHROMIUM)) return describe;
  const reason = `Chromium is not installed at ${CHROMIUM}`;
  if (process.env.SESSION_TEST_SERVICES === 'required') {
    throw new Error(`${reason}, and SESSION_TEST_SERVICES=required (apt-get install chromium)`);
  }
  console.warn(
    `Skipping the browser tests: ${reason} (apt-get install chromium, or CHROMIUM_PATH).`,
  );
  return describe.skip as unknown as typeof describe;
}

/** A page of another site (another host name: cross-site) whose forms post to the app on load. */
function startAttacker(target: string): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    const action = req.url === '/logout-others' ? '/page/logout-others' : '/page/cart';
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(`<!doctype html><title>Win a prize</title>
<form id="f" method="post" action="${target}${action}"><input name="item" value="planted-by-attacker"></form>
<script>document.getElementById('f').submit()</script>`);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }),
    ),
  );
}

describeWithChromium()('Sample app page in headless Chromium (e2e)', () => {
  let app: INestApplication;
  let attacker: { server: Server; url: string };
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    ({ app } = await bootSampleApp({ SESSION_STORE: 'memory' }));
    await app.listen(0);
    base = `http://localhost:${(app.getHttpServer().address() as AddressInfo).port}`;
    attacker = await startAttacker(base);
    const { chromium } = await import('playwright-core');
    // Playwright starts Chromium with a fresh temporary profile (user-data-dir) of its own.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => attacker?.server.close(resolve));
    await app?.close();
  });

  async function device(userAgent: string): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ userAgent, viewport: { width: 900, height: 900 } });
    const page = await context.newPage();
    return { context, page };
  }

  async function logIn(page: Page, password = 'wonderland'): Promise<void> {
    await page.goto(base);
    await page.fill('input[name=username]', 'alice');
    await page.fill('input[name=password]', password);
    await Promise.all([page.waitForURL(/\/(\?error=login)?$/), page.click('button[type=submit]')]);
  }

  const devicesOf = (page: Page) => page.locator('#device-list li').allTextContents();

  it('logs in through the form, stays logged in across reloads, hides the cookie from scripts, keeps a cart, lists and logs out devices, ignores cross-site posts, and shows nothing private after logout', async () => {
    const laptop = await device('Laptop browser');
    const { page } = laptop;

    // A wrong password shows an error and no private section.
    await logIn(page, 'wrong');
    await expect(page.locator('.error').textContent()).resolves.toContain('Wrong username');
    expect(await page.locator('#whoami').count()).toBe(0);

    await logIn(page);
    await expect(page.locator('#username').textContent()).resolves.toBe('alice');
    await page.reload();
    await expect(page.locator('#username').textContent()).resolves.toBe('alice');

    // HttpOnly: the browser holds the session cookie, scripts cannot read it.
    const cookies = await laptop.context.cookies(base);
    expect(cookies.find((c) => c.name === 'sid')).toMatchObject({
      httpOnly: true,
      sameSite: 'Lax',
    });
    // Runs in the page: `document` is the browser's (no DOM types in this program).
    const scriptCookies = await page.evaluate('document.cookie');
    expect(scriptCookies).not.toContain('sid');

    await page.fill('input[name=item]', 'apple');
    await Promise.all([page.waitForURL(`${base}/`), page.click('#cart button[type=submit]')]);
    await expect(page.locator('#cart-items li').allTextContents()).resolves.toEqual(['apple']);

    // The cart form needs this session's CSRF token, even from the page's own origin.
    const withoutToken = await laptop.context.request.post(`${base}/page/cart`, {
      form: { item: 'no-token' },
      maxRedirects: 0,
    });
    expect(withoutToken.status()).toBe(403);

    // A second browser (its own cookie jar) shows up in the first one's devices.
    const phone = await device('Phone browser');
    await logIn(phone.page);
    await expect(phone.page.locator('#username').textContent()).resolves.toBe('alice');
    await page.reload();
    const devices = await devicesOf(page);
    expect(devices).toHaveLength(2);
    expect(devices.find((d) => d.includes('Laptop browser'))).toContain('this device');
    expect(devices.find((d) => d.includes('Phone browser'))).not.toContain('this device');
    await page.screenshot({ path: join(SHOTS, 'sample-app.png'), fullPage: true });

    // Another site's auto-submitting forms change nothing.
    for (const path of ['/cart', '/logout-others']) {
      const posted = page.waitForResponse(
        (res) => res.request().method() === 'POST' && res.url().startsWith(base),
      );
      await page.goto(`${attacker.url}${path}`);
      // The post arrived (without the Lax cookie, from another site) and was refused.
      expect((await posted).status()).toBe(403);
    }
    await page.goto(base);
    await expect(page.locator('#cart-items li').allTextContents()).resolves.toEqual(['apple']);
    expect(await devicesOf(page)).toHaveLength(2);

    // "Log out everywhere else" ends the phone's session, not this one.
    await Promise.all([page.waitForURL(`${base}/`), page.click('#logout-others')]);
    expect(await devicesOf(page)).toHaveLength(1);
    await phone.page.reload();
    expect(await phone.page.locator('#login').count()).toBe(1);
    expect(await phone.page.locator('#username').count()).toBe(0);

    // "Log out this device", then the back button: the private page is not shown from a cache.
    await Promise.all([page.waitForURL(`${base}/`), page.click('#logout')]);
    expect(await page.locator('#login').count()).toBe(1);
    await page.goBack();
    await page.waitForLoadState('load');
    const after = await page.content();
    expect(after).not.toContain('Signed in as');
    expect(after).not.toContain('apple');
    expect(await page.locator('#username, #cart, #devices').count()).toBe(0);
    expect(await page.locator('#login').count()).toBe(1);
    await page.screenshot({ path: join(SHOTS, 'after-logout-back.png'), fullPage: true });

    await phone.context.close();
    await laptop.context.close();
  }, 60_000);
});
