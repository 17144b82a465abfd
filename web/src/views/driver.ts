// The driver: register a vehicle, go online at a place, take offers as they
// arrive over WatchOffers, and drive the accepted call to the end, its card
// following the call live over WatchCall (so a customer's cancel shows at once).

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { callApi, codeOf, describeError, dispatchApi, follow, sleep } from "../api";
import { busy, field, fill, h, krw, Notice, select, type View } from "../dom";
import { CallStatus, CancelReason } from "../gen/taxi/call/v1/call_pb";
import { TaxiType } from "../gen/taxi/common/v1/common_pb";
import { type Driver, DriverStatus, type Offer } from "../gen/taxi/dispatch/v1/dispatch_pb";
import {
  cancelReasonText,
  describePoint,
  isTerminal,
  latLng,
  PLACES,
  placeById,
  TAXI_TYPES,
  taxiTypeName,
} from "../places";
import { CallWatch } from "../watch";
import { type CallInfo, callCard } from "./callcard";

const DRIVER_STATUS: Record<number, string> = {
  [DriverStatus.OFFLINE]: "OFFLINE",
  [DriverStatus.AVAILABLE]: "AVAILABLE",
  [DriverStatus.ON_CALL]: "ON_CALL",
};

export function driverView(): View {
  const notice = new Notice();
  // The trip on the card: the newest version seen, from a command's answer or the live stream.
  let trip: CallInfo | null = null;
  const offers = new Map<string, Offer>();
  const streams = new AbortController();
  let watchingOffers = false;

  // --- the vehicle ---
  const name = h("input", { name: "name", autocomplete: "name", required: true, maxlength: 100 });
  const plate = h("input", { name: "plate", required: true, maxlength: 20, placeholder: "12가3456" });
  const taxiType = select(
    "taxiType",
    TAXI_TYPES.map(([t, label]) => [String(t), label] as const),
    String(TaxiType.NORMAL),
  );
  const register = h("button", { type: "submit", class: "primary" }, "Register");
  const vehicleForm = h(
    "form",
    { class: "stack" },
    field("Name", name),
    field("License plate", plate),
    field("Taxi type", taxiType),
    h("div", { class: "actions" }, register),
  );
  vehicleForm.addEventListener("submit", (event) => {
    event.preventDefault();
    void busy(register, async () => {
      if (!name.value.trim() || !plate.value.trim()) {
        notice.error("Please enter your name and license plate.");
        return;
      }
      try {
        const res = await dispatchApi.registerDriver({
          name: name.value.trim(),
          licensePlate: plate.value.trim(),
          taxiType: Number(taxiType.value) as TaxiType,
        });
        showDriver(res.driver);
        notice.ok("Registered. Go online and report where you are to receive offers.");
      } catch (err) {
        notice.error(describeError(err));
      }
    });
  });
  const vehicle = h("div", { class: "vehicle" });
  const vehicleSection = h(
    "section",
    { class: "card", "aria-labelledby": "vehicle-h" },
    h("h2", { id: "vehicle-h" }, "Your taxi"),
    vehicle,
    vehicleForm,
  );

  // --- the shift: online, offline, where ---
  const statusBadge = h("span", { class: "badge", "data-testid": "driver-status" }, "UNREGISTERED");
  const online = h("button", { type: "button", class: "primary" }, "Go online");
  const offline = h("button", { type: "button" }, "Go offline");
  const where = select("location", PLACES.map((p) => [p.id, p.name] as const), "seoul-station");
  const report = h("button", { type: "button" }, "Report location");
  const locationText = h("p", { class: "hint", "data-testid": "driver-location" });
  online.addEventListener("click", () =>
    void busy(online, async () => {
      try {
        showDriver((await dispatchApi.setOnline({})).driver);
        notice.ok("You are online. Report your location to be offered nearby calls.");
      } catch (err) {
        notice.error(describeError(err));
      }
    }),
  );
  offline.addEventListener("click", () =>
    void busy(offline, async () => {
      try {
        showDriver((await dispatchApi.setOffline({})).driver);
        notice.ok("You are offline.");
      } catch (err) {
        notice.error(describeError(err));
      }
    }),
  );
  report.addEventListener("click", () =>
    void busy(report, async () => {
      const place = placeById(where.value);
      if (!place) return;
      try {
        const res = await dispatchApi.updateLocation({ location: latLng(place.latitude, place.longitude) });
        showDriver(res.driver);
        notice.ok(`Location reported: ${place.name}.`);
      } catch (err) {
        notice.error(describeError(err));
      }
    }),
  );
  const shift = h(
    "section",
    { class: "card", "aria-labelledby": "shift-h", hidden: true },
    h("h2", { id: "shift-h" }, "Shift"),
    h("p", { class: "status-line" }, "Status ", statusBadge),
    h("div", { class: "actions" }, online, offline),
    h("div", { class: "row end" }, field("Where are you?", where), report),
    locationText,
  );

  // --- offers ---
  const offersLive = h("p", { class: "live-state", role: "status" }, "Offers appear here once you are registered.");
  const offerList = h("ul", { class: "list offers", "aria-label": "Open offers" });
  const offersSection = h(
    "section",
    { class: "card", "aria-labelledby": "offers-h" },
    h("h2", { id: "offers-h" }, "Offers"),
    offersLive,
    offerList,
  );

  // --- the trip ---
  const tripLive = h("p", { class: "live-state", role: "status" });
  const tripBox = h("div", { class: "current" }, h("p", { class: "empty" }, "No trip right now."));
  const tripNotice = new Notice();
  const tripSection = h(
    "section",
    { class: "card", "aria-labelledby": "trip-h" },
    h("h2", { id: "trip-h" }, "Current trip"),
    tripLive,
    tripBox,
    tripNotice.el,
  );
  // Follows the trip over query-svc's WatchCall.
  const tripWatch = new CallWatch({
    live: tripLive,
    shown: () => trip,
    onView: (view) => showTrip(view),
  });
  // What the driver typed as the distance, kept when the card is drawn again.
  let distanceKm = "12";

  function showDriver(next: Driver | undefined): void {
    if (!next) return;
    const status = DRIVER_STATUS[next.status] ?? "UNKNOWN";
    statusBadge.textContent = status;
    statusBadge.className = `badge dr-${status}`;
    fill(
      vehicle,
      h("p", null, `${next.name} · ${next.licensePlate} · ${taxiTypeName(next.taxiType)}`),
    );
    name.value = next.name;
    plate.value = next.licensePlate;
    taxiType.value = String(next.taxiType);
    register.textContent = "Update vehicle";
    online.hidden = next.status !== DriverStatus.OFFLINE;
    offline.hidden = next.status === DriverStatus.OFFLINE;
    locationText.textContent = next.location
      ? `Last reported at ${describePoint(next.location)}${next.updatedAt ? `, ${timestampDate(next.updatedAt).toLocaleTimeString()}` : ""}.`
      : "No location reported yet.";
    shift.hidden = false;
    if (!watchingOffers) watchOffers();
  }

  function watchOffers(): void {
    watchingOffers = true;
    offersLive.textContent = "Connecting…";
    void follow(
      ({ signal, onHeader }) => {
        // The stream starts with every offer still open: start from a clean list.
        offers.clear();
        return dispatchApi.watchOffers({}, { signal, onHeader });
      },
      streams.signal,
      {
        onMessage: (message) => {
          const event = message.event;
          if (event.case === "offer") offers.set(event.value.callId, event.value);
          if (event.case === "withdrawnCallId") offers.delete(event.value);
          renderOffers();
        },
        onState: (state, err) => {
          offersLive.textContent =
            state === "live"
              ? "Live: new offers near you appear here."
              : `Offers interrupted (${describeError(err)}) Reconnecting…`;
          if (state === "live") renderOffers();
        },
        reopenAfterEnd: () => true,
        onFatal: (err) => {
          watchingOffers = false;
          offersLive.textContent = describeError(err);
        },
      },
    );
  }

  function secondsLeft(offer: Offer): number {
    return offer.expiresAt ? Math.max(0, Math.round((timestampDate(offer.expiresAt).getTime() - Date.now()) / 1000)) : 0;
  }

  function renderOffers(): void {
    for (const [id, offer] of offers) if (offer.expiresAt && secondsLeft(offer) <= 0) offers.delete(id);
    const items = [...offers.values()].map((offer) => {
      const route = `${describePoint(offer.pickup)} → ${describePoint(offer.dropoff)}`;
      const accept = h(
        "button",
        { type: "button", class: "primary", "aria-label": `Accept call ${route} for ${krw(offer.quotedFareKrw)}` },
        "Accept",
      );
      accept.addEventListener("click", () => void acceptOffer(accept, offer));
      return h(
        "li",
        { class: "offer", "data-call-id": offer.callId },
        h("p", { class: "route" }, route),
        h(
          "p",
          { class: "hint" },
          `${krw(offer.quotedFareKrw)} · ${taxiTypeName(offer.taxiType)} · ${offer.distanceToPickupM} m to the pickup · `,
          h("span", { class: "countdown" }, `${secondsLeft(offer)} s left`),
        ),
        accept,
      );
    });
    if (items.length) offerList.replaceChildren(...items);
    else offerList.replaceChildren(h("li", { class: "empty" }, "No offers right now."));
  }

  // Count the offers down; drop them as they expire.
  const ticker = setInterval(() => {
    for (const li of offerList.querySelectorAll<HTMLElement>("li.offer")) {
      const offer = offers.get(li.dataset.callId ?? "");
      const left = offer ? secondsLeft(offer) : 0;
      if (left <= 0) {
        if (offer) offers.delete(offer.callId);
        renderOffers();
        return;
      }
      const countdown = li.querySelector(".countdown");
      if (countdown) countdown.textContent = `${left} s left`;
    }
  }, 1000);

  async function acceptOffer(button: HTMLButtonElement, offer: Offer): Promise<void> {
    await busy(button, async () => {
      try {
        const { call } = await callApi.acceptCall({ callId: offer.callId });
        offers.delete(offer.callId);
        renderOffers();
        showTrip(call);
        tripNotice.ok(`Accepted. Drive to ${describePoint(offer.pickup)}.`);
        await refreshDriver();
      } catch (err) {
        if (codeOf(err) === Code.FailedPrecondition) {
          offers.delete(offer.callId);
          renderOffers();
        }
        notice.error(describeError(err));
      }
    });
  }

  /**
   * Shows `next` on the trip card if it is another trip or a newer version of
   * this one (a command's answer and the stream never move the card back),
   * follows a new trip live and reacts when the trip ends. Whether it showed it.
   */
  function showTrip(next: CallInfo | undefined): boolean {
    // Nothing to show (or follow) once the view is gone (signed out).
    if (!next || streams.signal.aborted) return false;
    const previous = trip;
    const same = previous?.callId === next.callId;
    if (previous && same && next.version <= previous.version) return false;
    trip = next;
    if (!same) distanceKm = "12";
    renderTrip();
    if (isTerminal(next.status)) {
      if (!same || !isTerminal(previous.status)) tripEnded(next);
    } else if (!same) {
      tripWatch.start(next.callId);
    }
    return true;
  }

  /** The trip is over: stop following it, say how it ended and get the driver (released) again. */
  function tripEnded(call: CallInfo): void {
    tripWatch.stop();
    endedNotice(call);
    void refreshDriverAfter(call.callId);
  }

  function endedNotice(call: CallInfo): void {
    if (call.status === CallStatus.COMPLETED) {
      tripNotice.ok(`Trip completed. Final fare ${krw(call.finalFareKrw)}.`);
    } else if (call.cancelReason === CancelReason.CUSTOMER) {
      tripNotice.info("The customer canceled this call.");
    } else {
      const reason = cancelReasonText(call.cancelReason);
      tripNotice.info(`This call was canceled${reason ? ` (${reason})` : ""}.`);
    }
  }

  /** After a refused command: the trip as it is now, and why (it may have ended meanwhile). */
  async function refused(callId: string, err: unknown): Promise<void> {
    tripNotice.error(describeError(err));
    await checkTrip();
    if (trip?.callId === callId && isTerminal(trip.status)) endedNotice(trip);
  }

  function renderTrip(): void {
    const call = trip;
    if (!call) return;
    const actions: Node[] = [];
    if (call.status === CallStatus.ACCEPTED) {
      const start = h("button", { type: "button", class: "primary" }, "Start trip");
      start.addEventListener("click", () =>
        void busy(start, async () => {
          try {
            showTrip((await callApi.startTrip({ callId: call.callId })).call);
            tripNotice.ok("Trip started.");
          } catch (err) {
            await refused(call.callId, err);
          }
        }),
      );
      actions.push(start);
    }
    if (call.status === CallStatus.IN_TRIP) {
      const km = h("input", { type: "number", name: "distance", min: 0.1, max: 1000, step: 0.1, value: distanceKm, inputmode: "decimal" });
      km.addEventListener("input", () => {
        distanceKm = km.value;
      });
      const complete = h("button", { type: "submit", class: "primary" }, "Complete trip");
      const form = h("form", { class: "row end" }, field("Distance driven (km)", km), complete);
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        void busy(complete, async () => {
          const distance = Number(km.value);
          // The fare is priced by it: the server refuses a trip of no length.
          if (km.value === "" || !Number.isFinite(distance) || distance <= 0 || distance > 1000) {
            tripNotice.error("Enter the distance driven in km (more than 0, at most 1000).");
            return;
          }
          try {
            const { call: completed } = await callApi.completeTrip({
              callId: call.callId,
              distanceM: BigInt(Math.round(distance * 1000)),
            });
            showTrip(completed);
            if (completed) endedNotice(completed);
          } catch (err) {
            await refused(call.callId, err);
          }
        });
      });
      actions.push(form);
    }
    if (!isTerminal(call.status)) {
      // The card follows the trip by itself; this asks call-svc directly,
      // which still answers when the live read side is down or behind.
      const check = h("button", { type: "button", title: "Ask the call service for this trip's status now" }, "Check status");
      check.addEventListener("click", () =>
        void busy(check, async () => {
          if ((await checkTrip()) === false) tripNotice.info("No change: the card already shows the trip as it is.");
        }),
      );
      actions.push(check);
    }
    fill(tripBox, callCard(call, "Trip", ...actions));
  }

  /**
   * Re-reads the trip from call-svc (a manual refresh besides the live
   * stream): whether the card moved on, or undefined when the read failed.
   */
  async function checkTrip(): Promise<boolean | undefined> {
    if (!trip) return undefined;
    try {
      const { call } = await callApi.getCall({ callId: trip.callId });
      return showTrip(call);
    } catch (err) {
      tripNotice.error(describeError(err));
      return undefined;
    }
  }

  /**
   * Refreshes the driver once a trip is over. The driver is released just
   * after the call ends, so the stream may tell first: ask a few times while
   * dispatch still has them on that call.
   */
  async function refreshDriverAfter(callId: string): Promise<void> {
    for (let attempt = 0; attempt < 8 && !streams.signal.aborted; attempt += 1) {
      const driver = await refreshDriver();
      if (!driver || driver.status !== DriverStatus.ON_CALL || driver.currentCallId !== callId) return;
      await sleep(1000, streams.signal);
    }
  }

  async function refreshDriver(): Promise<Driver | undefined> {
    try {
      const { driver: found } = await dispatchApi.getDriver({});
      showDriver(found);
      return found;
    } catch (err) {
      if (codeOf(err) !== Code.NotFound) notice.error(describeError(err));
      return undefined;
    }
  }

  async function load(): Promise<void> {
    try {
      const { driver: found } = await dispatchApi.getDriver({});
      showDriver(found);
      if (found?.currentCallId) {
        const { call } = await callApi.getCall({ callId: found.currentCallId });
        showTrip(call);
      }
    } catch (err) {
      if (codeOf(err) === Code.NotFound) {
        notice.info("Register your taxi to start.");
        name.focus();
      } else {
        notice.error(describeError(err));
      }
    }
  }
  void load();

  const el = h(
    "div",
    { class: "view driver" },
    h("div", { class: "column" }, vehicleSection, shift, notice.el),
    h("div", { class: "column" }, offersSection, tripSection),
  );
  return {
    el,
    dispose: () => {
      streams.abort();
      tripWatch.stop();
      clearInterval(ticker);
    },
  };
}
