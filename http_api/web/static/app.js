// The page: header, router and boot. Paths the server serves (/verify-email, /reset-password,
// /forgot-password, /shared/{token}) are routes of their own; everything else lives under "/#/".

import { logout, restore, session } from "./api.js";
import { forgotView, loginView, registerView, resetView, verifyView } from "./auth.js";
import { subscriptionView } from "./billing.js";
import { h } from "./dom.js";
import { lang, onLangChange, setLang, t, translate } from "./i18n.js";
import { interviewView } from "./interview.js";
import { reportView, sharedView } from "./report.js";
import { historyView, startView } from "./screens.js";
import { supportView, ticketView } from "./support.js";

const NEXT_KEY = "ip.next";
const main = document.getElementById("main");
const nav = document.getElementById("nav");
const langToggle = document.getElementById("lang-toggle");

let currentView = null;
let renderedKey = null;
let loginNotice = null;
let paymentNotice = null;

const ctx = {
  navigate,
  retranslate: (root) => translate(root),
  afterLogin() {
    let next;
    try {
      next = sessionStorage.getItem(NEXT_KEY);
      sessionStorage.removeItem(NEXT_KEY);
    } catch {
      next = null;
    }
    navigate(next && next.startsWith("/#/") ? next : "/#/start");
  },
  sessionEnded() {
    session.clear();
    loginNotice = "login.sessionEnded";
    navigate("/#/login");
  },
};

/** Which screen the address shows: {name, titleKey, auth, make(ctx)}. */
function resolve() {
  const path = location.pathname;
  if (path === "/verify-email")
    return { name: "verify", titleKey: "verify.title", make: verifyView };
  if (path === "/reset-password")
    return { name: "reset", titleKey: "reset.title", make: resetView };
  if (path === "/forgot-password")
    return { name: "forgot", titleKey: "forgot.title", make: forgotView };
  const shared = path.match(/^\/shared\/([^/]+)$/);
  if (shared) {
    const token = decodeURIComponent(shared[1]);
    return { name: "shared", titleKey: "report.sharedTitle", make: (c) => sharedView(c, token) };
  }
  if (path !== "/") return { name: "notFound", titleKey: "notFound.title", make: notFoundView };
  // The payment page sends the buyer back to "/?payment=success|cancelled".
  const payment = new URLSearchParams(location.search).get("payment");
  if (payment) {
    paymentNotice = payment === "success" ? "success" : "cancelled";
    return redirect("/#/subscription");
  }

  const [screen, arg] = location.hash.replace(/^#\/?/, "").split("/");
  const id = arg ? decodeURIComponent(arg) : "";
  switch (screen) {
    case "":
      return session.loggedIn ? redirect("/#/start") : redirect("/#/login");
    case "login":
      return session.loggedIn
        ? redirect("/#/start")
        : {
            name: "login",
            titleKey: "login.title",
            make: (c) => loginView(c, { notice: takeNotice() }),
          };
    case "register":
      return session.loggedIn
        ? redirect("/#/start")
        : { name: "register", titleKey: "register.title", make: registerView };
    case "forgot":
      return redirect("/forgot-password");
    case "start":
      return { name: "start", titleKey: "start.title", auth: true, make: startView };
    case "history": {
      const page = Math.max(1, Number.parseInt(id || "1", 10) || 1);
      return {
        name: "history",
        titleKey: "history.title",
        auth: true,
        make: (c) => historyView(c, page),
      };
    }
    case "subscription":
      return {
        name: "subscription",
        titleKey: "subscription.title",
        auth: true,
        make: (c) => subscriptionView(c, { payment: takePayment() }),
      };
    case "support":
      return id
        ? {
            name: "ticket",
            titleKey: "support.ticketTitle",
            auth: true,
            make: (c) => ticketView(c, id),
          }
        : { name: "support", titleKey: "support.title", auth: true, make: supportView };
    case "interview":
      if (!id) return redirect("/#/start");
      return {
        name: "interview",
        titleKey: "interview.title",
        auth: true,
        make: (c) => interviewView(c, id),
      };
    case "report":
      if (!id) return redirect("/#/history");
      return {
        name: "report",
        titleKey: "report.title",
        auth: true,
        make: (c) => reportView(c, id),
      };
    default:
      return { name: "notFound", titleKey: "notFound.title", make: notFoundView };
  }
}

function redirect(to) {
  return { redirect: to };
}

function takeNotice() {
  const notice = loginNotice;
  loginNotice = null;
  return notice;
}

function takePayment() {
  const payment = paymentNotice;
  paymentNotice = null;
  return payment;
}

function notFoundView() {
  const heading = h("h1", { i18n: "notFound.title", tabIndex: -1 });
  return {
    el: h(
      "section",
      { class: "card narrow" },
      heading,
      h("a", { href: "/", i18n: "notFound.home" }),
    ),
    focus: heading,
  };
}

function render({ force = false, focus = true } = {}) {
  const key = location.pathname + location.search + location.hash;
  if (!force && key === renderedKey) return;
  let route = resolve();
  if (route.redirect) {
    history.replaceState(null, "", route.redirect);
    route = resolve();
  }
  if (route.auth && !session.loggedIn) {
    try {
      sessionStorage.setItem(NEXT_KEY, location.pathname + location.hash);
    } catch {
      // Without storage the user lands on the start screen after logging in.
    }
    history.replaceState(null, "", "/#/login");
    route = resolve();
  }
  renderedKey = location.pathname + location.search + location.hash;
  if (currentView && currentView.destroy) currentView.destroy();
  currentView = route.make(ctx);
  currentView.titleKey = route.titleKey;
  main.replaceChildren(currentView.el);
  main.dataset.screen = route.name;
  updateTitle();
  drawNav(route.name);
  if (focus && currentView.focus) currentView.focus.focus();
  else window.scrollTo(0, 0);
}

function navigate(to) {
  history.pushState(null, "", to);
  render();
}

function updateTitle() {
  const name = t("app.name");
  document.title =
    currentView && currentView.titleKey ? `${t(currentView.titleKey)} — ${name}` : name;
}

function drawNav(active) {
  const link = (href, key, screen) =>
    h(
      "li",
      {},
      h("a", {
        href,
        i18n: key,
        attrs:
          screen === active || (screen === "support" && active === "ticket")
            ? { "aria-current": "page" }
            : {},
      }),
    );
  const items = session.loggedIn
    ? [
        link("/#/start", "nav.start", "start"),
        link("/#/history", "nav.history", "history"),
        link("/#/subscription", "nav.subscription", "subscription"),
        link("/#/support", "nav.support", "support"),
        h(
          "li",
          {},
          h("button", {
            type: "button",
            class: "link-button",
            i18n: "nav.logout",
            on: {
              click: async () => {
                await logout();
                navigate("/#/login");
              },
            },
          }),
        ),
      ]
    : [link("/#/login", "nav.login", "login"), link("/#/register", "nav.register", "register")];
  nav.replaceChildren(...items);
}

// Same-page links go through the router instead of reloading the page.
document.addEventListener("click", (event) => {
  const a = event.target.closest("a");
  if (!a || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || a.target) return;
  if (a.classList.contains("skip-link")) {
    event.preventDefault();
    main.focus();
    return;
  }
  const url = new URL(a.href, location.href);
  if (
    url.origin !== location.origin ||
    url.pathname.startsWith("/static/") ||
    url.pathname.startsWith("/docs")
  ) {
    return;
  }
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});

window.addEventListener("popstate", () => render());
window.addEventListener("hashchange", () => render());

langToggle.addEventListener("click", () => setLang(lang() === "ru" ? "en" : "ru"));
function markLang() {
  document.documentElement.lang = lang();
  langToggle.lang = lang() === "ru" ? "en" : "ru"; // the button names the other language
}

onLangChange(() => {
  markLang();
  translate(document);
  updateTitle();
});
session.onChange(() => drawNav(main.dataset.screen));

async function boot() {
  markLang();
  translate(document);
  await restore();
  render({ focus: false });
  document.body.dataset.ready = "true";
}

boot();
