// The customer: call a taxi (the server quotes the fare), follow the call live
// over WatchCall, cancel it (and see the refund), and look at past calls.

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { callApi, codeOf, describeError, paymentApi, queryApi, sleep } from "../api";
import { busy, field, fill, h, krw, newUuid, Notice, select, short, type View, when } from "../dom";
import { CallStatus } from "../gen/taxi/call/v1/call_pb";
import { type LatLng, TaxiType } from "../gen/taxi/common/v1/common_pb";
import { EntryKind, EntryStatus, type ListPaymentsResponse } from "../gen/taxi/payment/v1/payment_pb";
import { isTerminal, latLng, PLACES, placeById, statusName, TAXI_TYPES } from "../places";
import { CallWatch } from "../watch";
import { type CallInfo, callCard, callSummary } from "./callcard";

/** A named place or typed coordinates. */
function placePicker(label: string, initial: string) {
  const choice = select(
    label.toLowerCase(),
    [...PLACES.map((p) => [p.id, p.name] as const), ["custom", "Coordinates…"] as const],
    initial,
  );
  const lat = h("input", { type: "number", step: "any", min: -90, max: 90, inputmode: "decimal" });
  const lng = h("input", { type: "number", step: "any", min: -180, max: 180, inputmode: "decimal" });
  const coords = h(
    "div",
    { class: "coords", hidden: true },
    field(`${label} latitude`, lat),
    field(`${label} longitude`, lng),
  );
  // Coordinates start from the place picked before, to be adjusted.
  const remember = () => {
    const place = placeById(choice.value);
    if (place) {
      lat.value = String(place.latitude);
      lng.value = String(place.longitude);
    }
  };
  remember();
  choice.addEventListener("change", () => {
    coords.hidden = choice.value !== "custom";
    remember();
  });
  return {
    el: h("div", { class: "place" }, field(label, choice), coords),
    /** The point, or a message naming what is wrong. */
    value(): LatLng | string {
      const place = placeById(choice.value);
      if (place) return latLng(place.latitude, place.longitude);
      if (lat.value === "" || lng.value === "") return `${label}: enter both latitude and longitude.`;
      return latLng(Number(lat.value), Number(lng.value));
    },
  };
}

export function customerView(): View {
  const notice = new Notice();
  const pickup = placePicker("Pickup", "seoul-station");
  const dropoff = placePicker("Drop-off", "gangnam-station");
  const taxiType = select(
    "taxiType",
    TAXI_TYPES.map(([t, name]) => [String(t), name] as const),
    String(TaxiType.NORMAL),
  );
  const card = select("paymentMethod", [
    ["tok_visa", "Visa ending 4242"],
    ["tok_decline", "A card that will be declined (test)"],
    ["tok_limit_20000", "A card with a ₩20,000 limit per charge (test)"],
  ]);
  const submit = h("button", { type: "submit", class: "primary" }, "Request taxi");
  const estimate = h("p", { class: "estimate", "data-testid": "fare-estimate", "aria-live": "polite" });
  let quoting = 0;
  // What canceling costs once a driver has accepted, as the server quotes it.
  let cancelFeeKrw: bigint | null = null;
  // One key per intended call: a retry after a lost answer returns the same call.
  let idempotencyKey = newUuid();

  const live = h("p", { class: "live-state", role: "status" });
  const current = h("div", { class: "current" }, h("p", { class: "empty" }, "No call yet."));
  const payments = h("div", { class: "payments", "data-testid": "payments", "aria-live": "polite" });
  const mine = h("ul", { class: "list", "aria-label": "Past calls" });
  const more = h("button", { type: "button", hidden: true }, "Show more");
  const mineNotice = new Notice();

  let call: CallInfo | null = null;
  // The call whose final charge the ledger shows declined: only then is the
  // customer offered another card (what is owed right after the trip is
  // usually charged a moment later).
  let declinedCall: string | null = null;
  const watching = new CallWatch({
    live,
    shown: () => call,
    onView: (view) => apply(view),
  });
  let nextPage = "";

  const form = h(
    "form",
    { class: "card", "aria-labelledby": "request-h", novalidate: true },
    h("h2", { id: "request-h" }, "Call a taxi"),
    pickup.el,
    dropoff.el,
    h("div", { class: "row" }, field("Taxi type", taxiType), field("Pay with", card)),
    estimate,
    h("p", { class: "hint" }, "The quote is the server's, for this route and taxi type; it is charged as an advance when a driver accepts."),
    h("div", { class: "actions" }, submit),
    notice.el,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void requestTaxi();
  });
  form.addEventListener("change", () => void updateQuote());
  void updateQuote();

  /** Shows the server's quote for the route and taxi type on the form. */
  async function updateQuote(): Promise<void> {
    const from = pickup.value();
    const to = dropoff.value();
    const mine = ++quoting;
    if (typeof from === "string" || typeof to === "string") {
      estimate.textContent = "";
      return;
    }
    estimate.dataset.pending = "true";
    try {
      const quote = await callApi.quoteFare({ pickup: from, dropoff: to, taxiType: Number(taxiType.value) as TaxiType });
      if (mine !== quoting) return; // a newer choice superseded this one
      const km = (Number(quote.estimatedDistanceM) / 1000).toFixed(1);
      cancelFeeKrw = quote.cancelFeeKrw;
      const fee =
        quote.cancelFeeKrw > 0n
          ? `canceling after a driver accepts costs ${krw(quote.cancelFeeKrw)}`
          : "canceling is free";
      estimate.textContent = `Fare quote: ${krw(quote.fareKrw)} for about ${km} km; ${fee}.`;
    } catch (err) {
      if (mine === quoting) estimate.textContent = `No quote: ${describeError(err)}`;
    } finally {
      if (mine === quoting) delete estimate.dataset.pending;
    }
  }

  async function requestTaxi(): Promise<void> {
    const from = pickup.value();
    const to = dropoff.value();
    if (typeof from === "string" || typeof to === "string") {
      notice.error(typeof from === "string" ? from : (to as string));
      return;
    }
    await busy(submit, async () => {
      notice.info("Requesting a taxi…");
      try {
        const { call: created } = await callApi.requestCall({
          pickup: from,
          dropoff: to,
          taxiType: Number(taxiType.value) as TaxiType,
          idempotencyKey,
          paymentMethod: card.value,
        });
        idempotencyKey = newUuid();
        if (!created) throw new Error("the server answered without a call");
        notice.ok(`Taxi requested: quoted fare ${krw(created.quotedFareKrw)}. Looking for a driver…`);
        open(created);
      } catch (err) {
        // Keep the key only when the call may have been made after all.
        if (![Code.Unavailable, Code.DeadlineExceeded, Code.Unknown].includes(codeOf(err))) {
          idempotencyKey = newUuid();
        }
        notice.error(describeError(err));
      }
    });
  }

  /** Shows a call and follows it live until it is over. */
  function open(next: CallInfo): void {
    call = next;
    fill(payments);
    render();
    if (isTerminal(next.status)) {
      watching.stop();
      void loadPayments(next);
      return;
    }
    watching.start(next.callId);
  }

  /** A newer version of the shown call (from the stream or a command). */
  function apply(next: CallInfo): void {
    if (!call || next.callId !== call.callId || next.version < call.version) return;
    const changed = next.status !== call.status;
    call = next;
    render();
    if (changed) {
      void refreshMine();
      if (isTerminal(next.status)) void loadPayments(next);
    }
  }

  function render(): void {
    if (!call) return;
    const actions: Node[] = [];
    const shown = call;
    if (shown.status === CallStatus.REQUESTED || shown.status === CallStatus.ACCEPTED) {
      const cancel = h("button", { type: "button", class: "danger" }, "Cancel call");
      cancel.addEventListener("click", () => void cancelCall(cancel, shown));
      actions.push(cancel);
      if (shown.status === CallStatus.ACCEPTED) {
        // The fee the server quoted, never more than the advance.
        const fee = cancelFeeKrw === null ? null : cancelFeeKrw < shown.advanceKrw ? cancelFeeKrw : shown.advanceKrw;
        const text =
          fee === null
            ? "A driver is on the way: canceling now refunds the advance less any cancellation fee."
            : fee > 0n
              ? `A driver is on the way: canceling now keeps a cancellation fee of ${krw(fee)}; the rest of the advance is refunded.`
              : "A driver is on the way: canceling now is free; the advance is refunded in full.";
        actions.push(h("p", { class: "hint", "data-testid": "cancel-hint" }, text));
      }
    }
    if (isTerminal(shown.status) && (shown.owedKrw ?? 0n) > 0n && declinedCall === shown.callId) {
      actions.push(payBalance(shown));
    }
    fill(current, callCard(shown, "Call", ...actions));
  }

  /** What a finished call still owes, and a card to pay it with. */
  function payBalance(shown: CallInfo): HTMLElement {
    const other = select("balanceMethod", [
      ["tok_visa", "Visa ending 4242"],
      ["tok_decline", "A card that will be declined (test)"],
    ]);
    const pay = h("button", { type: "button", class: "primary", "data-testid": "pay-balance" }, `Pay ${krw(shown.owedKrw ?? 0n)}`);
    pay.addEventListener("click", () => {
      void busy(pay, async () => {
        try {
          const { call: paid } = await callApi.settleBalance({ callId: shown.callId, paymentMethod: other.value });
          if (paid) apply(paid);
          notice.ok("Paid. Nothing is owed on this call any more.");
          void loadPayments(paid ?? shown);
        } catch (err) {
          notice.error(describeError(err));
        }
      });
    });
    return h(
      "div",
      { class: "owed", "data-testid": "balance" },
      h("p", { class: "msg msg-error" }, `The final charge was declined: ${krw(shown.owedKrw ?? 0n)} is still owed.`),
      field("Pay the balance with", other),
      pay,
    );
  }

  async function cancelCall(button: HTMLButtonElement, shown: CallInfo): Promise<void> {
    await busy(button, async () => {
      try {
        // Only the call as shown: if it moved on meanwhile, the server says so.
        const { call: canceled } = await callApi.cancelCall({
          callId: shown.callId,
          expectedVersion: shown.version,
        });
        if (canceled) apply(canceled);
        notice.ok("The call is canceled.");
      } catch (err) {
        notice.error(
          codeOf(err) === Code.FailedPrecondition
            ? `The call changed before the cancel arrived: ${describeError(err)}`
            : describeError(err),
        );
      }
    });
  }

  /** The ledger of a finished call: what was charged, refunded and paid in the end. */
  async function loadPayments(shown: CallInfo): Promise<void> {
    fill(payments, h("p", { class: "hint" }, "Loading payments…"));
    let ledger: ListPaymentsResponse | null = null;
    for (let attempt = 0; attempt < 6; attempt += 1) {
      try {
        ledger = await paymentApi.listPayments({ callId: shown.callId });
      } catch (err) {
        fill(payments, h("p", { class: "msg msg-error", role: "alert" }, describeError(err)));
        return;
      }
      // A refund or settlement may land, or be confirmed by the provider, a
      // moment after the status changes.
      const settled = ledger.entries.some((e) => e.kind !== EntryKind.ADVANCE);
      const owed =
        shown.status === CallStatus.CANCELED
          ? shown.advanceKrw > shown.cancelFeeKrw
          : shown.finalFareKrw !== shown.advanceKrw;
      const expectsMore =
        ledger.entries.some((e) => e.status === EntryStatus.PENDING) ||
        (shown.advanceKrw > 0n && !settled && owed);
      if (!expectsMore) break;
      await sleep(1000);
    }
    if (!ledger || call?.callId !== shown.callId) return;
    const declined = ledger.entries.some((e) => e.kind === EntryKind.FINAL_CHARGE && e.status === EntryStatus.DECLINED);
    declinedCall = declined ? shown.callId : null;
    try {
      const { call: latest } = await callApi.getCall({ callId: shown.callId });
      if (latest) apply(latest);
    } catch {
      // The card keeps what it showed; the ledger below is what counts.
    }
    render();
    const kinds: Record<number, string> = {
      [EntryKind.ADVANCE]: "Advance",
      [EntryKind.FINAL_CHARGE]: "Final charge",
      [EntryKind.REFUND]: "Refund",
    };
    const refunded = ledger.entries
      .filter((e) => e.kind === EntryKind.REFUND && e.status === EntryStatus.APPROVED)
      .reduce((sum, e) => sum + e.amountKrw, 0n);
    fill(
      payments,
      h("h3", null, "Payments"),
      ledger.entries.length
        ? h(
            "ul",
            { class: "ledger" },
            ...ledger.entries.map((e) =>
              h(
                "li",
                null,
                `${kinds[e.kind] ?? "Entry"} ${krw(e.amountKrw)} · ${EntryStatus[e.status]?.toLowerCase() ?? ""}`,
                e.createdAt ? h("time", null, ` ${when(timestampDate(e.createdAt))}`) : "",
              ),
            ),
          )
        : h("p", null, "Nothing was charged."),
      refunded > 0n
        ? h("p", { class: "refund", "data-testid": "refund" }, `Refunded ${krw(refunded)}`, shown.cancelFeeKrw > 0n ? ` (cancellation fee ${krw(shown.cancelFeeKrw)} kept)` : "", ".")
        : null,
      h("p", { class: "net", "data-testid": "net-paid" }, `Net paid ${krw(ledger.netPaidKrw)}`),
    );
  }

  async function refreshMine(reset = true): Promise<void> {
    try {
      const page = await queryApi.listMyCalls({ pageSize: 10, pageToken: reset ? "" : nextPage });
      if (reset) mine.replaceChildren();
      nextPage = page.nextPageToken;
      more.hidden = !nextPage;
      for (const view of page.calls) {
        const item = h(
          "button",
          { type: "button", class: "link", "aria-label": `Open call ${short(view.callId)}: ${callSummary(view)}` },
          h("span", null, callSummary(view)),
          h("time", null, when(view.requestedAt ? timestampDate(view.requestedAt) : undefined)),
        );
        item.addEventListener("click", () => {
          open(view);
          current.scrollIntoView({ behavior: "smooth", block: "start" });
        });
        mine.append(h("li", { "data-status": statusName(view.status) }, item));
      }
      if (!mine.childElementCount) mine.append(h("li", { class: "empty" }, "No calls yet."));
      mineNotice.clear();
    } catch (err) {
      mineNotice.error(describeError(err));
    }
  }

  const refresh = h("button", { type: "button" }, "Refresh");
  refresh.addEventListener("click", () => void busy(refresh, () => refreshMine()));
  more.addEventListener("click", () => void busy(more, () => refreshMine(false)));
  void refreshMine();

  const el = h(
    "div",
    { class: "view customer" },
    form,
    h("section", { class: "card", "aria-labelledby": "current-h" }, h("h2", { id: "current-h" }, "Your call"), live, current, payments),
    h(
      "section",
      { class: "card", "aria-labelledby": "mine-h" },
      h("div", { class: "section-head" }, h("h2", { id: "mine-h" }, "My calls"), refresh),
      mineNotice.el,
      mine,
      more,
    ),
  );
  return {
    el,
    dispose: () => watching.stop(),
  };
}
