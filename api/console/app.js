// The operations console: sign in with an API key, then the pages below, by the URL's hash.
//   #/exceptions[?kind=]      the exception queues
//   #/orders/{id}             an order
//   #/subject/{type}/{id}     another exception subject, as the API answers it
//   #/channels                each channel's publishing row
//   #/kpis[?range=&channel=]  the KPIs as charts over time

import { ApiError, call, session } from "./api.js";
import { channelsView } from "./channels.js";
import { h, problemBox, replace } from "./dom.js";
import { exceptionsView } from "./exceptions.js";
import { kpisView } from "./kpis.js";
import { orderView } from "./order.js";
import { subjectView } from "./subjects.js";

const top = document.getElementById("top");
const main = document.getElementById("main");
let config = null;

async function boot() {
  const response = await fetch("/console/config.json");
  config = await response.json();
  window.addEventListener("hashchange", route);
  await route();
}

async function route() {
  if (!session.key) {
    header(null);
    signIn();
    return;
  }
  header(session.me);
  const [path, search] = (location.hash.slice(1) || "/exceptions").split("?");
  const params = new URLSearchParams(search || "");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  main.dataset.page = parts[0] || "exceptions";
  main.dataset.ready = "false";
  try {
    if (parts[0] === "orders" && parts[1]) await orderView(main, config, parts[1]);
    else if (parts[0] === "subject" && parts[2]) await subjectView(main, parts[1], parts[2]);
    else if (parts[0] === "channels") await channelsView(main, config);
    else if (parts[0] === "kpis") await kpisView(main, params);
    else await exceptionsView(main, config, params);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      session.clear(); // the key was revoked meanwhile
      await route();
      return;
    }
    replace(main, problemBox(err));
  }
  main.dataset.ready = "true";
}

function header(me) {
  if (!me) {
    replace(top, h("span", { class: "brand" }, "omniflow"), h("span", { class: "muted" }, "operations console"));
    return;
  }
  const lookup = h("input", { name: "order", placeholder: "order id, e.g. order-web-A-1001", "aria-label": "order id" });
  replace(
    top,
    h("span", { class: "brand" }, "omniflow"),
    h(
      "nav",
      {},
      h("a", { href: "#/exceptions" }, "Exceptions"),
      h("a", { href: "#/channels" }, "Channels"),
      h("a", { href: "#/kpis" }, "KPIs"),
    ),
    h(
      "form",
      {
        class: "lookup",
        onsubmit: (event) => {
          event.preventDefault();
          if (lookup.value.trim()) location.hash = `#/orders/${encodeURIComponent(lookup.value.trim())}`;
        },
      },
      lookup,
    ),
    h(
      "span",
      { class: "who", title: `key ${me.id}` },
      `${me.name} · `,
      h("strong", { class: "role" }, me.role),
      me.channel ? ` · ${me.channel}` : "",
    ),
    h(
      "button",
      {
        type: "button",
        onclick: () => {
          session.clear();
          location.hash = "";
          route();
        },
      },
      "Sign out",
    ),
  );
}

function signIn() {
  main.dataset.page = "sign-in";
  const key = h("input", { name: "key", type: "password", autocomplete: "off", placeholder: "omf_…", required: true });
  const outcome = h("div", { class: "outcome" });
  replace(
    main,
    h(
      "form",
      {
        class: "signin",
        onsubmit: async (event) => {
          event.preventDefault();
          try {
            const { data } = await call("GET", "/v1/me", { key: key.value.trim() });
            session.save(key.value.trim(), data);
            await route();
          } catch (err) {
            replace(outcome, problemBox(err));
          }
        },
      },
      h("h1", {}, "Sign in"),
      h("p", { class: "muted" }, "With an API key (kept in this tab only). The console shows what the key's role may see and do."),
      h("label", {}, "API key", key),
      h("button", { type: "submit", class: "primary" }, "Sign in"),
      outcome,
    ),
  );
  main.dataset.ready = "true";
  key.focus();
}

boot();
