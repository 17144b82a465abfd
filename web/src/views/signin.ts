// Sign-in for local use: a role and an identity (new, or one used before in
// this browser); the gateway's dev token path issues the token.

import { busy, field, h, Notice, select, short } from "../dom";
import { type Role, ROLES, rememberedSubjects, type Session, signIn } from "../session";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function signInView(onSignedIn: (session: Session) => void): HTMLElement {
  const notice = new Notice();
  const radios = ROLES.map(([role, label], i) => {
    const input = h("input", { type: "radio", name: "role", value: role, id: `role-${role}`, checked: i === 0 });
    return h("label", { class: "choice", for: `role-${role}` }, input, ` ${label}`);
  });
  const identity = select("identity", []);
  const typed = h("input", { name: "subject", autocomplete: "off", spellcheck: false, placeholder: "xxxxxxxx-xxxx-4xxx-xxxx-xxxxxxxxxxxx" });
  const typedField = field("ID (UUID)", typed);
  typedField.hidden = true;
  const submit = h("button", { type: "submit", class: "primary" }, "Sign in");

  const role = (): Role => (form.querySelector<HTMLInputElement>("input[name=role]:checked")?.value ?? "customer") as Role;
  function fillIdentities(): void {
    const options: [string, string][] = [["new", "A new identity"]];
    for (const subject of rememberedSubjects(role())) options.push([subject, `Used before: ${short(subject)}… (${subject})`]);
    options.push(["typed", "Enter an ID…"]);
    identity.replaceChildren(...options.map(([v, text]) => h("option", { value: v }, text)));
    typedField.hidden = true;
  }
  identity.addEventListener("change", () => {
    typedField.hidden = identity.value !== "typed";
    if (!typedField.hidden) typed.focus();
  });

  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-h" },
    h("h2", { id: "signin-h" }, "Sign in"),
    h("fieldset", { class: "roles" }, h("legend", null, "I am a"), ...radios),
    field("Identity", identity, "Development sign-in: the gateway issues a token for this role and ID."),
    typedField,
    h("div", { class: "actions" }, submit),
    notice.el,
  );
  form.addEventListener("change", (event) => {
    if ((event.target as HTMLInputElement).name === "role") fillIdentities();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const subject = identity.value === "new" ? "" : identity.value === "typed" ? typed.value.trim() : identity.value;
    if (identity.value === "typed" && !UUID.test(subject)) {
      notice.error("The ID must be a UUID, like 3f2b8c1e-5d4a-4c3b-9e2f-1a2b3c4d5e6f.");
      typed.focus();
      return;
    }
    void busy(submit, async () => {
      try {
        onSignedIn(await signIn(role(), subject));
      } catch (err) {
        notice.error(err instanceof Error ? err.message : String(err));
      }
    });
  });
  fillIdentities();
  return form;
}
