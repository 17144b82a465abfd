// The browser app end to end, in headless Chromium (Debian's /usr/bin/chromium
// driven by playwright-core), against the running system:
//
//   scripts/run.sh --detach && (cd web && node --test tests/) ; scripts/stop.sh
//
// A driver goes online at Seoul Station in one page, a customer calls a taxi
// there in another, the offer reaches the driver live and is accepted, and
// the customer's page follows ACCEPTED, IN_TRIP and COMPLETED without a
// reload; the analyst's dashboard then counts the completed call. Also: a
// call nobody can take says "no taxi available", and a cancel after accept
// shows the refund while the driver's trip card turns CANCELED by itself
// (its own WatchCall stream: no "Check status", no reload). On failure the
// three views are saved as screenshots in web/test-results/ (after success
// too with E2E_SCREENSHOTS=always).
// TAXI_APP_URL and CHROMIUM_PATH override the defaults.

import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const APP = process.env.TAXI_APP_URL ?? "http://127.0.0.1:8081";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const RESULTS = fileURLToPath(new URL("../test-results/", import.meta.url));
// A type the walk-through's and load generator's drivers do not drive, so this
// driver is among the few nearest the pickup that get the offer.
const TAXI_TYPE = "Premium";
const STEP = 20_000;

const started = Date.now();
/** @type {import("playwright-core").Browser} */
let browser;
/** @type {Record<string, import("playwright-core").Page>} */
const pages = {};
const consoleErrors = [];

async function openAs(role) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(`[${role}] ${m.text()}`));
  page.on("pageerror", (e) => consoleErrors.push(`[${role}] ${e.message}`));
  await page.goto(APP);
  await page.getByRole("radio", { name: role[0].toUpperCase() + role.slice(1), exact: true }).check();
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("signed-in").and(page.locator(`[data-role=${role}]`)).waitFor();
  pages[role] = page;
  return page;
}

/** Saves every open view as a screenshot and prints where. */
async function screenshots(name) {
  mkdirSync(RESULTS, { recursive: true });
  for (const [view, page] of Object.entries(pages)) {
    const path = `${RESULTS}${name}-${view}.png`;
    try {
      await page.screenshot({ path, fullPage: true });
      console.log(`screenshot: ${path}`);
    } catch (e) {
      console.log(`no screenshot of the ${view} view: ${e.message}`);
    }
  }
}

/** Runs a test's body; on failure saves every open view as a screenshot. */
async function screenshotsOnFailure(name, body) {
  try {
    await body();
  } catch (err) {
    await screenshots(name);
    if (consoleErrors.length) console.log(`browser console errors:\n  ${consoleErrors.join("\n  ")}`);
    throw err;
  }
  if (process.env.E2E_SCREENSHOTS === "always") await screenshots(name);
}

/** Waits until the customer's call card shows `status`. */
async function customerSees(status) {
  await pages.customer.getByTestId("call-status").filter({ hasText: new RegExp(`^${status}$`) }).waitFor();
}

/** The customer requests a taxi; returns the call id shown on the card. */
async function requestTaxi({ pickup = "Seoul Station", taxiType = TAXI_TYPE } = {}) {
  const page = pages.customer;
  await page.getByLabel("Pickup", { exact: true }).selectOption({ label: pickup });
  await page.getByLabel("Drop-off", { exact: true }).selectOption({ label: "Gangnam Station" });
  await page.getByLabel("Taxi type").selectOption({ label: taxiType });
  // The fare is quoted before the customer confirms.
  const estimate = page.locator('[data-testid="fare-estimate"]:not([data-pending])');
  await estimate.filter({ hasText: /Fare quote: ₩[\d,]+/ }).waitFor();
  const quoted = (await estimate.textContent()).match(/₩[\d,]+/)[0];
  await page.getByRole("button", { name: "Request taxi" }).click();
  return quoted;
}

async function currentCallId() {
  const card = pages.customer.locator("section.call");
  await card.getByTestId("quoted-fare").waitFor();
  return card.getAttribute("data-call-id");
}

/** The driver accepts the offer of `callId` once it arrives. */
async function driverAccepts(callId) {
  const offer = pages.driver.locator(`li.offer[data-call-id="${callId}"]`);
  await offer.waitFor();
  await offer.getByRole("button", { name: /^Accept/ }).click();
  await pages.driver.locator(`section.call[data-call-id="${callId}"]`).getByTestId("call-status").filter({ hasText: "ACCEPTED" }).waitFor();
}

async function completedCount() {
  const page = pages.analyst;
  await page.getByRole("button", { name: "Refresh" }).click();
  // The button is busy while the dashboard loads.
  await page.locator("button[aria-busy]").waitFor({ state: "detached" });
  await page.getByTestId("kpi-completed").waitFor();
  return Number(await page.getByTestId("kpi-completed").textContent());
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium`);
  const answer = await fetch(APP, { signal: AbortSignal.timeout(10_000) }).catch((e) => e);
  assert.ok(answer.ok, `the app does not answer at ${APP} (${answer.status ?? answer.message}); start it with scripts/run.sh --detach`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-sync",
    ],
  });
});

after(async () => {
  // Leave no driver of ours online to take later tests' offers.
  if (pages.driver) {
    const offline = pages.driver.getByRole("button", { name: "Go offline" });
    if (await offline.isVisible().catch(() => false)) {
      await offline.click().catch(() => {});
      await pages.driver.getByTestId("driver-status").filter({ hasText: "OFFLINE" }).waitFor({ timeout: 5_000 }).catch(() => {});
    }
  }
  await browser?.close();
  console.log(`browser test: ${((Date.now() - started) / 1000).toFixed(1)} s in total`);
});

describe("the browser app", () => {
  test("a whole trip: driver online, customer calls, offer accepted, live status to COMPLETED, counted by the analyst", async () => {
    await screenshotsOnFailure("trip", async () => {
      const driver = await openAs("driver");
      await driver.getByLabel("Name", { exact: true }).fill("E2E Kim");
      await driver.getByLabel("License plate").fill(`e2e-${Math.floor(Math.random() * 1e6)}`);
      await driver.getByLabel("Taxi type").selectOption({ label: TAXI_TYPE });
      await driver.getByRole("button", { name: "Register" }).click();
      await driver.getByTestId("driver-status").filter({ hasText: "OFFLINE" }).waitFor();
      await driver.getByRole("button", { name: "Go online" }).click();
      await driver.getByTestId("driver-status").filter({ hasText: "AVAILABLE" }).waitFor();
      await driver.getByLabel("Where are you?").selectOption({ label: "Seoul Station" });
      await driver.getByRole("button", { name: "Report location" }).click();
      await driver.getByTestId("driver-location").filter({ hasText: "Seoul Station" }).waitFor();
      await driver.getByText("Live: new offers near you appear here.").waitFor();

      const analyst = await openAs("analyst");
      await analyst.getByTestId("chart-outcomes").locator("canvas").waitFor();
      const before = await completedCount();

      const customer = await openAs("customer");
      // A reload would lose this: the page must update by itself.
      await customer.evaluate(() => {
        window.e2eNoReload = true;
      });
      const quoted = await requestTaxi();
      const callId = await currentCallId();
      assert.match(await customer.getByTestId("quoted-fare").textContent(), new RegExp(quoted), "the call is quoted what the form showed");
      await customerSees("REQUESTED");

      await driverAccepts(callId);
      await customerSees("ACCEPTED");
      // The driver's trip card follows the call too.
      await driver.getByText("Live: this card updates by itself.").waitFor();
      await driver.getByRole("button", { name: "Start trip" }).click();
      await customerSees("IN_TRIP");
      await driver.getByLabel("Distance driven (km)").fill("12");
      await driver.getByRole("button", { name: "Complete trip" }).click();
      await customerSees("COMPLETED");
      assert.equal(await customer.evaluate(() => window.e2eNoReload), true, "the customer page was not reloaded");
      await customer.getByTestId("final-fare").waitFor();
      await customer.getByTestId("net-paid").waitFor();
      await driver.getByTestId("driver-status").filter({ hasText: "AVAILABLE" }).waitFor();

      // The dashboard is a projection: give it a moment to count the trip.
      let after = before;
      for (const deadline = Date.now() + STEP; after < before + 1 && Date.now() < deadline; ) {
        await analyst.waitForTimeout(500);
        after = await completedCount();
      }
      assert.ok(after >= before + 1, `the dashboard counts the completed call (${before} before, ${after} after)`);
    });
  });

  test("a call nobody can take says no taxi is available", async () => {
    await screenshotsOnFailure("no-taxi", async () => {
      // Nobody drives a van at the airport in this system (nor is anyone near it).
      pages.customer ??= await openAs("customer");
      await requestTaxi({ pickup: "Gimpo Airport", taxiType: "Van" });
      await pages.customer.getByRole("alert").filter({ hasText: /no taxi available/i }).waitFor();
    });
  });

  test("signing in works with the keyboard alone", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(STEP);
      await page.goto(APP);
      await page.keyboard.press("Tab"); // the skip link
      await page.keyboard.press("Tab"); // the role radios
      await page.keyboard.press("ArrowRight"); // Driver
      await page.keyboard.press("ArrowRight"); // Analyst
      await page.keyboard.press("Tab"); // the identity
      await page.keyboard.press("Tab"); // Sign in
      await page.keyboard.press("Enter");
      await page.locator("[data-testid=signed-in][data-role=analyst]").waitFor();
      await page.getByTestId("kpi-completed").waitFor();
    } finally {
      await context.close();
    }
  });

  test("a cancel after the driver accepted shows the refund", async () => {
    await screenshotsOnFailure("cancel", async () => {
      const customer = pages.customer;
      const driver = pages.driver;
      // A reload would lose this: the driver's page must update by itself.
      await driver.evaluate(() => {
        window.e2eNoReload = true;
      });
      await requestTaxi();
      await customer.getByRole("status").filter({ hasText: /Taxi requested/ }).waitFor();
      const callId = await currentCallId();
      await driverAccepts(callId);
      await customerSees("ACCEPTED");
      // Cancel at once: the driver's stream may still be catching up with the accept.
      await customer.getByRole("button", { name: "Cancel call" }).click();
      await customerSees("CANCELED");
      const refund = customer.getByTestId("refund");
      await refund.waitFor();
      assert.match(await refund.textContent(), /Refunded ₩[\d,]+/);
      await customer.getByTestId("net-paid").filter({ hasText: "₩0" }).waitFor();
      // The driver's trip card shows the cancel by itself: no "Check status", no reload.
      await driver.locator(`section.call[data-call-id="${callId}"]`).getByTestId("call-status").filter({ hasText: /^CANCELED$/ }).waitFor();
      await driver.getByRole("status").filter({ hasText: "The customer canceled this call." }).waitFor();
      await driver.getByText("This call is over.").waitFor();
      assert.equal(await driver.getByRole("button", { name: "Check status" }).count(), 0, "no manual check is offered for a finished trip");
      // The driver is released and back to taking offers.
      await driver.getByTestId("driver-status").filter({ hasText: "AVAILABLE" }).waitFor();
      assert.equal(await driver.evaluate(() => window.e2eNoReload), true, "the driver page was not reloaded");
      await myCallsShow(/CANCELED · paid ₩0(?![\d,])/);
    });
  });

  test("a declined final charge is owed until the customer pays it with another card", async () => {
    await screenshotsOnFailure("balance", async () => {
      const customer = pages.customer;
      const driver = pages.driver;
      await customer.getByLabel("Pay with", { exact: true }).selectOption({ label: "A card with a ₩20,000 limit per charge (test)" });
      await requestTaxi();
      await customer.getByRole("status").filter({ hasText: /Taxi requested/ }).waitFor();
      const callId = await currentCallId();
      await driverAccepts(callId);
      await customerSees("ACCEPTED");
      await driver.getByRole("button", { name: "Start trip" }).click();
      await customerSees("IN_TRIP");
      // 100 km: the final charge is over the card's limit.
      await driver.getByLabel("Distance driven (km)").fill("100");
      await driver.getByRole("button", { name: "Complete trip" }).click();
      await customerSees("COMPLETED");
      const balance = customer.getByTestId("balance");
      await balance.waitFor();
      const owed = (await customer.getByTestId("owed").textContent()).trim();
      assert.match(owed, /^₩[\d,]+$/);
      await balance.getByLabel("Pay the balance with").selectOption({ label: "Visa ending 4242" });
      await balance.getByRole("button", { name: `Pay ${owed}` }).click();
      await customer.getByRole("status").filter({ hasText: "Nothing is owed on this call any more." }).waitFor();
      await balance.waitFor({ state: "detached" });
      const finalFare = (await customer.getByTestId("final-fare").textContent()).trim();
      await customer.getByTestId("net-paid").filter({ hasText: finalFare }).waitFor();
      await driver.getByTestId("driver-status").filter({ hasText: "AVAILABLE" }).waitFor();
      await customer.getByLabel("Pay with", { exact: true }).selectOption({ label: "Visa ending 4242" });
    });
  });
});

/** Refreshes "My calls" until one of them reads `summary` (the read model may lag a moment). */
async function myCallsShow(summary) {
  const page = pages.customer;
  const mine = page.getByRole("list", { name: "Past calls" }).locator("li").filter({ hasText: summary });
  for (const deadline = Date.now() + STEP; Date.now() < deadline; ) {
    if (await mine.count()) return;
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.waitForTimeout(500);
  }
  assert.fail(`no call in "My calls" reads ${summary}`);
}
