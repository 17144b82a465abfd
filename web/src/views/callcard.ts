// A call as a card: route, status, fares and the times of each step. Both a
// `Call` (write side) and a `CallView` (read model) have these fields.

import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { h, krw, short, when } from "../dom";
import { CallStatus, type CancelReason } from "../gen/taxi/call/v1/call_pb";
import type { LatLng, TaxiType } from "../gen/taxi/common/v1/common_pb";
import {
  cancelReasonText,
  describePoint,
  statusName,
  statusText,
  taxiTypeName,
} from "../places";

export interface CallInfo {
  callId: string;
  customerId: string;
  driverId: string;
  taxiType: TaxiType;
  status: CallStatus;
  cancelReason: CancelReason;
  pickup?: LatLng;
  dropoff?: LatLng;
  quotedFareKrw: bigint;
  advanceKrw: bigint;
  distanceM: bigint;
  finalFareKrw: bigint;
  cancelFeeKrw: bigint;
  availabilityUnchecked: boolean;
  version: bigint;
  requestedAt?: Timestamp;
  acceptedAt?: Timestamp;
  startedAt?: Timestamp;
  completedAt?: Timestamp;
  canceledAt?: Timestamp;
  /** The search for a driver while REQUESTED: round of offers and its end. */
  offerRound?: number;
  roundExpiresAt?: Timestamp;
  expiresAt?: Timestamp;
  /** The customer's money: approved charges, refunds, and what is still owed. */
  paidKrw?: bigint;
  refundedKrw?: bigint;
  owedKrw?: bigint;
}

/** What the customer paid net of refunds. */
export function netPaid(call: CallInfo): bigint {
  return (call.paidKrw ?? 0n) - (call.refundedKrw ?? 0n);
}

function date(ts: Timestamp | undefined): Date | undefined {
  return ts ? timestampDate(ts) : undefined;
}

/**
 * One line for lists: route, status and money. A finished call shows what was
 * paid in the end (₩0 for a free cancel) and anything still owed; a call
 * still going shows its quote.
 */
export function callSummary(call: CallInfo): string {
  const done = call.status === CallStatus.COMPLETED || call.status === CallStatus.CANCELED;
  const owed = (call.owedKrw ?? 0n) > 0n ? ` · ${krw(call.owedKrw ?? 0n)} owed` : "";
  const money = done ? `paid ${krw(netPaid(call))}${owed}` : `quoted ${krw(call.quotedFareKrw)}`;
  return `${describePoint(call.pickup)} → ${describePoint(call.dropoff)} · ${statusName(call.status)} · ${money}`;
}

/** The card; `actions` go under the details. */
export function callCard(call: CallInfo, heading: string, ...actions: Node[]): HTMLElement {
  const headingId = `call-${call.callId}-h`;
  const rows: [string, string, string?][] = [
    ["From", describePoint(call.pickup)],
    ["To", describePoint(call.dropoff)],
    ["Taxi", taxiTypeName(call.taxiType)],
    ["Quoted fare", krw(call.quotedFareKrw), "quoted-fare"],
  ];
  if (call.advanceKrw > 0n) rows.push(["Advance paid", krw(call.advanceKrw)]);
  if (call.distanceM > 0n) rows.push(["Distance", `${(Number(call.distanceM) / 1000).toFixed(1)} km`]);
  if (call.finalFareKrw > 0n) rows.push(["Final fare", krw(call.finalFareKrw), "final-fare"]);
  if (call.cancelFeeKrw > 0n) rows.push(["Cancellation fee", krw(call.cancelFeeKrw)]);
  if ((call.paidKrw ?? 0n) > 0n) rows.push(["Paid", krw(call.paidKrw ?? 0n), "paid"]);
  if ((call.refundedKrw ?? 0n) > 0n) rows.push(["Refunded", krw(call.refundedKrw ?? 0n), "refunded"]);
  if ((call.owedKrw ?? 0n) > 0n) rows.push(["Still owed", krw(call.owedKrw ?? 0n), "owed"]);
  if (call.driverId) rows.push(["Driver", short(call.driverId)]);
  if (call.status === CallStatus.REQUESTED && call.offerRound) {
    // The search: which round of offers, until when, and when the call gives up.
    const round = call.roundExpiresAt ? `, offers open until ${when(date(call.roundExpiresAt))}` : "";
    rows.push(["Search", `Round ${call.offerRound}${round}`, "search-round"]);
    if (call.expiresAt) rows.push(["Expires", when(date(call.expiresAt)), "expires-at"]);
  }

  const steps: [string, Timestamp | undefined][] = [
    ["Requested", call.requestedAt],
    ["Accepted", call.acceptedAt],
    ["Trip started", call.startedAt],
    ["Arrived", call.completedAt],
    ["Canceled", call.canceledAt],
  ];
  const reason = cancelReasonText(call.cancelReason);
  return h(
    "section",
    { class: "card call", "aria-labelledby": headingId, "data-call-id": call.callId },
    h("h3", { id: headingId }, `${heading} `, h("span", { class: "mono", title: call.callId }, short(call.callId))),
    h(
      "p",
      { class: "status-line" },
      h("span", { class: `badge st-${statusName(call.status)}`, "data-testid": "call-status" }, statusName(call.status)),
      " ",
      statusText(call.status),
      reason ? ` (${reason})` : "",
    ),
    call.availabilityUnchecked
      ? h("p", { class: "hint" }, "Taxi availability could not be checked when this call was made.")
      : null,
    h("dl", { class: "facts" }, ...rows.flatMap(([k, v, id]) => [h("dt", null, k), h("dd", { "data-testid": id }, v)])),
    h(
      "ol",
      { class: "steps", "aria-label": "Progress" },
      ...steps
        .filter(([, ts]) => ts)
        .map(([label, ts]) => h("li", null, `${label} `, h("time", null, when(date(ts))))),
    ),
    actions.length ? h("div", { class: "actions" }, ...actions) : null,
  );
}
