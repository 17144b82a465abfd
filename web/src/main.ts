// The app: a sign-in, then the view of the signed-in role.

import "./style.css";
import { h, short, type View } from "./dom";
import { currentSession, ROLES, type Session, signOut } from "./session";
import { analystView } from "./views/analyst";
import { customerView } from "./views/customer";
import { driverView } from "./views/driver";
import { signInView } from "./views/signin";

const main = document.getElementById("main") as HTMLElement;
const who = document.getElementById("who") as HTMLElement;
let view: View | null = null;

function render(focus = false): void {
  view?.dispose();
  view = null;
  const session: Session | null = currentSession();
  if (!session) {
    who.replaceChildren();
    main.replaceChildren(signInView(() => render(true)));
    document.title = "Sign in · Taxi";
    return;
  }
  const roleName = ROLES.find(([r]) => r === session.role)?.[1] ?? session.role;
  const leave = h("button", { type: "button", class: "quiet" }, "Sign out");
  leave.addEventListener("click", () => {
    signOut();
    render(true);
  });
  who.replaceChildren(
    h(
      "span",
      { "data-testid": "signed-in", "data-role": session.role, "data-subject": session.subject },
      `${roleName} `,
      h("span", { class: "mono", title: session.subject }, short(session.subject)),
    ),
    leave,
  );
  view = session.role === "customer" ? customerView() : session.role === "driver" ? driverView() : analystView();
  main.replaceChildren(view.el);
  document.title = `${roleName} · Taxi`;
  if (focus) main.focus();
}

render();
