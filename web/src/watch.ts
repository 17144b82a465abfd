// Following one call live: query-svc's WatchCall through the gateway, opened
// again with back-off after a dropped stream and resumed after the newest
// version on screen. The customer's call card and the driver's trip card use it.

import { describeError, follow, queryApi } from "./api";
import type { CallView } from "./gen/taxi/query/v1/query_pb";
import { isTerminal } from "./places";
import type { CallInfo } from "./views/callcard";

export interface CallWatchOptions {
  /** The line that says whether the card is live (an element with `role="status"`). */
  live: HTMLElement;
  /** The call on screen: a (re)opened stream sends only the versions after it. */
  shown: () => CallInfo | null;
  /** Each view the stream sends, oldest first; older ones than shown are the caller's to ignore. */
  onView: (view: CallView) => void;
}

/** Follows one call at a time, until it is over or `stop` is called. */
export class CallWatch {
  private controller: AbortController | null = null;

  constructor(private readonly options: CallWatchOptions) {}

  /** Follows `callId` instead of whatever was followed before. */
  start(callId: string): void {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    const { live, onView } = this.options;
    const shown = () => {
      const call = this.options.shown();
      return call?.callId === callId ? call : null;
    };
    live.textContent = "Connecting to live updates…";
    void follow(
      // After a dropped stream (or a command's answer), resume after the
      // newest version shown. query-svc waits for its read model to reach that
      // version, so a driver who has just accepted is not refused.
      ({ signal, onHeader }) =>
        queryApi.watchCall({ callId, fromVersion: shown()?.version ?? 0n }, { signal, onHeader }),
      controller.signal,
      {
        onMessage: (message) => {
          // Nothing from a stream already left for another call.
          if (message.view?.callId === callId && !controller.signal.aborted) onView(message.view);
        },
        onState: (state, err) => {
          live.textContent =
            state === "live"
              ? "Live: this card updates by itself."
              : `Live updates interrupted (${describeError(err)}) Reconnecting…`;
        },
        // The stream ends after a terminal view; a call still going on is followed again.
        reopenAfterEnd: () => {
          const call = shown();
          return call !== null && !isTerminal(call.status);
        },
        onFatal: (err) => {
          live.textContent = describeError(err);
        },
      },
    ).then(() => {
      if (this.controller !== controller) return;
      const call = shown();
      if (call && isTerminal(call.status)) live.textContent = "This call is over.";
    });
  }

  /** Closes the stream; the live line says whether the call shown is over. */
  stop(): void {
    this.controller?.abort();
    this.controller = null;
    const call = this.options.shown();
    this.options.live.textContent = call && isTerminal(call.status) ? "This call is over." : "";
  }
}
