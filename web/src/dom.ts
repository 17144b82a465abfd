// A few DOM helpers: building elements, labelled form fields, notices and
// formatting. Views are plain functions that build elements with these.

type Child = Node | string | number | null | undefined | false;
type Attr = string | number | boolean | null | undefined | ((event: Event) => void);

/** Creates an element: `on*` attributes are listeners, booleans toggle. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (typeof value === "function") {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (value === true) {
      el.setAttribute(name, "");
    } else if (value !== false && value !== null && value !== undefined) {
      el.setAttribute(name, String(value));
    }
  }
  el.append(...kids(children));
  return el;
}

function kids(children: Child[]): (Node | string)[] {
  return children
    .filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false)
    .map((c) => (typeof c === "number" ? String(c) : c));
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(...kids(children));
}

let ids = 0;
/** A unique id for label/control pairs. */
export function uid(prefix: string): string {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A label and its control, tied by id; an optional hint is announced too. */
export function field(
  label: string,
  control: HTMLInputElement | HTMLSelectElement,
  hint?: string,
): HTMLDivElement {
  control.id ||= uid("f");
  const parts: Child[] = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, ...parts);
}

/** A `<select>` of value/label pairs. */
export function select(
  name: string,
  options: readonly (readonly [string, string])[],
  value?: string,
): HTMLSelectElement {
  const el = h("select", { name });
  for (const [v, text] of options) {
    el.append(h("option", { value: v, selected: v === value }, text));
  }
  return el;
}

/**
 * A live region for the results of the user's actions: errors are `alert`s,
 * everything else is announced politely.
 */
export class Notice {
  readonly el = h("div", { class: "notice", "aria-live": "polite" });

  info(text: string): void {
    this.show(text, "info");
  }

  ok(text: string): void {
    this.show(text, "ok");
  }

  error(text: string): void {
    this.show(text, "error");
  }

  clear(): void {
    this.el.replaceChildren();
  }

  private show(text: string, kind: "info" | "ok" | "error"): void {
    const p = h("p", { class: `msg msg-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
    this.el.replaceChildren(p);
  }
}

/** Runs `action` with the button disabled, so a double click sends once. */
export async function busy<T>(button: HTMLButtonElement, action: () => Promise<T>): Promise<T> {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

const won = new Intl.NumberFormat("ko-KR", { style: "currency", currency: "KRW" });
/** Korean won, e.g. ₩12,800. */
export function krw(amount: bigint | number): string {
  return won.format(Number(amount));
}

/** A local date and time, short. */
export function when(date: Date | undefined): string {
  if (!date) return "";
  return date.toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

/** The first block of a UUID, for display. */
export function short(id: string): string {
  return id.split("-")[0] ?? id;
}

/** Percent with one decimal. */
export function percent(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

/** A random UUID (v4), also where `crypto.randomUUID` is missing (plain-HTTP LAN origins). */
export function newUuid(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A mounted view: its element, and what to stop (streams, timers) when it goes. */
export interface View {
  el: HTMLElement;
  dispose(): void;
}
