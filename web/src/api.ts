// The API over gRPC-web: generated clients on one transport that adds the
// bearer token, the messages people see for each refusal, and a server stream
// that reconnects by itself.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { CallService } from "./gen/taxi/call/v1/call_pb";
import { DispatchService } from "./gen/taxi/dispatch/v1/dispatch_pb";
import { PaymentService } from "./gen/taxi/payment/v1/payment_pb";
import { QueryService } from "./gen/taxi/query/v1/query_pb";
import { currentSession } from "./session";

/**
 * The gateway's gRPC-web address: `?gateway=` on the page (remembered for the
 * tab), else VITE_GATEWAY_URL at build time, else port 8080 of the page's host.
 */
export function gatewayUrl(): string {
  const fromPage = new URLSearchParams(location.search).get("gateway");
  if (fromPage) sessionStorage.setItem("taxi.gateway", fromPage);
  const configured = sessionStorage.getItem("taxi.gateway") ?? import.meta.env.VITE_GATEWAY_URL;
  if (configured) return configured.replace(/\/+$/, "");
  const protocol = location.protocol === "https:" ? "https:" : "http:";
  return `${protocol}//${location.hostname || "127.0.0.1"}:8080`;
}

const bearer: Interceptor = (next) => (request) => {
  const session = currentSession();
  if (session) request.header.set("authorization", `Bearer ${session.token}`);
  return next(request);
};

const transport = createGrpcWebTransport({ baseUrl: gatewayUrl(), interceptors: [bearer] });

export const callApi = createClient(CallService, transport);
export const dispatchApi = createClient(DispatchService, transport);
export const paymentApi = createClient(PaymentService, transport);
export const queryApi = createClient(QueryService, transport);

/** Whether an error is the caller's own abort (leaving a view), not a failure. */
export function isAbort(err: unknown): boolean {
  return ConnectError.from(err).code === Code.Canceled;
}

/** The gRPC code of an error, e.g. "NotFound". */
export function codeOf(err: unknown): Code {
  return ConnectError.from(err).code;
}

/** What to tell a person about a refused or failed call. */
export function describeError(err: unknown): string {
  const error = ConnectError.from(err);
  const message = error.rawMessage;
  switch (error.code) {
    case Code.FailedPrecondition:
      if (/no .*taxi is available/i.test(message)) {
        return "No taxi available nearby. Try another taxi type or pickup, or again in a moment.";
      }
      return `Not possible now: ${message}.`;
    case Code.InvalidArgument:
      // The server names every bad field: "invalid request: pickup.latitude: ...; taxi_type: ...".
      return `Please check: ${message.replace(/^invalid request:\s*/i, "")}.`;
    case Code.PermissionDenied:
      return `Not allowed: ${message}.`;
    case Code.Unauthenticated:
      return `Your sign-in is no longer valid (${message}). Please sign out and sign in again.`;
    case Code.Unavailable:
      return `The service is unavailable right now (${message}). Please try again in a moment.`;
    case Code.ResourceExhausted:
      return "Too many requests. Please wait a moment and try again.";
    case Code.DeadlineExceeded:
      return "The service took too long to answer. Please try again.";
    case Code.NotFound:
      return `Not found: ${message}.`;
    case Code.AlreadyExists:
      return `Already done: ${message}.`;
    default:
      if (/failed to fetch|network/i.test(message)) {
        return "Cannot reach the gateway. Check your connection and that the platform is running.";
      }
      return `Something went wrong (${Code[error.code]}): ${message}`;
  }
}

export interface StreamHandlers<T> {
  /** Each message. */
  onMessage: (message: T) => void;
  /** The stream is (re)connected, or lost and about to retry. */
  onState?: (state: "live" | "retrying", error?: unknown) => void;
  /** Whether a stream that ended normally should be opened again. */
  reopenAfterEnd?: () => boolean;
  /** Errors not worth retrying (the default: permission, argument, not found). */
  isFatal?: (err: unknown) => boolean;
  onFatal?: (err: unknown) => void;
}

const FATAL = new Set([Code.PermissionDenied, Code.InvalidArgument, Code.NotFound, Code.Unauthenticated]);

/**
 * Keeps a server stream open until `signal` aborts: `open` is called again
 * after a dropped stream (with backoff), so it can resume from what it has
 * seen. `open` passes the options on to the client call: `onHeader` reports
 * the stream live as soon as the server answers, before any message.
 */
export async function follow<T>(
  open: (options: { signal: AbortSignal; onHeader: () => void }) => AsyncIterable<T>,
  signal: AbortSignal,
  handlers: StreamHandlers<T>,
): Promise<void> {
  let delay = 500;
  const isFatal = handlers.isFatal ?? ((err: unknown) => FATAL.has(codeOf(err)));
  const onHeader = () => handlers.onState?.("live");
  while (!signal.aborted) {
    try {
      for await (const message of open({ signal, onHeader })) {
        delay = 500;
        handlers.onMessage(message);
      }
      if (!(handlers.reopenAfterEnd?.() ?? false)) return;
    } catch (err) {
      if (signal.aborted || isAbort(err)) return;
      if (isFatal(err)) {
        handlers.onFatal?.(err);
        return;
      }
      handlers.onState?.("retrying", err);
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 8000);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
