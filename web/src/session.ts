// Sign-in for local use: a role and a subject, and a token from the gateway's
// dev token path (on when the gateway runs with GATEWAY_DEV_TOKENS=true). The
// token lives in sessionStorage, so each tab signs in on its own; the
// subjects used before are remembered per role in localStorage.

export type Role = "customer" | "driver" | "analyst";

export const ROLES: readonly (readonly [Role, string])[] = [
  ["customer", "Customer"],
  ["driver", "Driver"],
  ["analyst", "Analyst"],
];

export interface Session {
  role: Role;
  subject: string;
  token: string;
  /** Epoch milliseconds. */
  expiresAt: number;
}

const SESSION_KEY = "taxi.session";
const subjectsKey = (role: Role) => `taxi.subjects.${role}`;

export function currentSession(): Session | null {
  const text = sessionStorage.getItem(SESSION_KEY);
  if (!text) return null;
  try {
    const session = JSON.parse(text) as Session;
    return session.expiresAt > Date.now() ? session : null;
  } catch {
    return null;
  }
}

export function signOut(): void {
  sessionStorage.removeItem(SESSION_KEY);
}

export function rememberedSubjects(role: Role): string[] {
  try {
    const list = JSON.parse(localStorage.getItem(subjectsKey(role)) ?? "[]") as unknown;
    return Array.isArray(list) ? list.filter((s): s is string => typeof s === "string") : [];
  } catch {
    return [];
  }
}

function remember(role: Role, subject: string): void {
  const list = [subject, ...rememberedSubjects(role).filter((s) => s !== subject)].slice(0, 5);
  localStorage.setItem(subjectsKey(role), JSON.stringify(list));
}

/** Asks the gateway for a dev token; an empty subject gets a new one. */
export async function signIn(role: Role, subject: string): Promise<Session> {
  let response: Response;
  try {
    response = await fetch("/dev/token", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(subject ? { role, subject } : { role }),
    });
  } catch {
    throw new Error("Cannot reach the gateway to sign in. Is it running?");
  }
  if (response.status === 404) {
    throw new Error(
      "This gateway does not hand out development tokens (start it with GATEWAY_DEV_TOKENS=true, as scripts/run.sh does).",
    );
  }
  const body = (await response.json().catch(() => ({}))) as {
    token?: string;
    subject?: string;
    expires_in_secs?: number;
    error?: string;
  };
  if (!response.ok || !body.token || !body.subject) {
    throw new Error(`Sign-in refused: ${body.error ?? response.statusText}`);
  }
  const session: Session = {
    role,
    subject: body.subject,
    token: body.token,
    expiresAt: Date.now() + (body.expires_in_secs ?? 3600) * 1000,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  remember(role, session.subject);
  return session;
}
