// The subscription screen: status, plans (each buys through the payment page in this tab) and
// turning auto-renewal off. The payment page sends the user back to "/?payment=success|cancelled".

import { api } from "./api.js";
import { alertBox, announce, h, setText } from "./dom.js";
import { formatMoney } from "./i18n.js";
import { errorKey } from "./forms.js";

// After paying, the webhook may land a moment after the user is back: poll briefly.
const PAID_POLLS = 10;
const PAID_POLL_MS = 1000;

function row(labelKey, value) {
  return h("div", { class: "status-item" }, h("dt", { i18n: labelKey }), h("dd", {}, value));
}

function planTitle(plan) {
  return { ru: plan.titleRu, en: plan.titleEn };
}

function statusList(status) {
  const plan = status.plans.find((p) => p.id === status.plan);
  const free = status.freeInterviews;
  return h(
    "dl",
    { class: "status-list" },
    row(
      "subscription.state",
      h("span", {
        class: `badge ${status.active ? "passed" : ""}`,
        i18n: status.active ? "subscription.active" : "subscription.inactive",
      }),
    ),
    status.active || status.plan
      ? row(
          "subscription.plan",
          plan ? h("span", { texts: planTitle(plan) }) : h("span", { text: status.plan || "" }),
        )
      : null,
    status.expiresAt
      ? row(
          status.active ? "subscription.expires" : "subscription.expired",
          h("span", { date: status.expiresAt }),
        )
      : null,
    status.active
      ? row(
          "subscription.autoRenew",
          h("span", { i18n: status.autoRenew ? "subscription.on" : "subscription.off" }),
        )
      : null,
    status.active
      ? null
      : row(
          "subscription.free",
          h("span", {
            i18n: "subscription.freeUsed",
            args: { used: free.used, limit: free.limit },
          }),
        ),
  );
}

export function subscriptionView(ctx, { payment = null } = {}) {
  const heading = h("h1", { i18n: "subscription.title", tabIndex: -1 });
  const alert = alertBox();
  const notice = h("div", { class: "alert", hidden: true, attrs: { role: "status" } });
  const statusBox = h("div", { class: "subscription-status", attrs: { "aria-busy": "true" } });
  const statusCard = h(
    "section",
    { class: "card", attrs: { "aria-labelledby": "sub-status-h" } },
    h("h2", { id: "sub-status-h", i18n: "subscription.status" }),
    statusBox,
  );
  const autoRenew = h("input", { type: "checkbox", id: "plan-auto-renew", checked: true });
  const plansList = h("ul", { class: "plans" });
  const plansCard = h(
    "section",
    { class: "card", attrs: { "aria-labelledby": "sub-plans-h" } },
    h("h2", { id: "sub-plans-h", i18n: "subscription.plans" }),
    h("p", { class: "hint", i18n: "subscription.plansHint" }),
    h(
      "div",
      { class: "field checkbox" },
      autoRenew,
      h("label", { htmlFor: autoRenew.id, i18n: "subscription.autoRenewChoice" }),
    ),
    plansList,
  );
  const el = h(
    "div",
    { class: "subscription" },
    h("section", { class: "card" }, heading, notice, alert),
    statusCard,
    plansCard,
  );
  let destroyed = false;
  let timer = null;

  if (payment === "success") {
    notice.className = "alert alert-success";
    setText(notice, "subscription.paymentBack");
    notice.hidden = false;
  } else if (payment === "cancelled") {
    notice.className = "alert alert-info";
    setText(notice, "subscription.paymentCancelled");
    notice.hidden = false;
  }

  function showStatus(status) {
    statusBox.removeAttribute("aria-busy");
    const parts = [statusList(status)];
    if (status.active && status.autoRenew) {
      const cancel = h("button", {
        type: "button",
        class: "danger",
        i18n: "subscription.cancel",
        on: {
          click: async () => {
            alert.hide();
            cancel.disabled = true;
            try {
              showStatus(await api.cancelRenewal());
              announce("subscription.cancelled");
            } catch (error) {
              alert.show(errorKey(error));
              cancel.disabled = false;
            }
          },
        },
      });
      parts.push(
        h("p", { class: "hint", i18n: "subscription.cancelHint" }),
        h("div", { class: "actions" }, cancel),
      );
    } else if (status.active) {
      parts.push(h("p", { class: "hint", i18n: "subscription.noRenewal" }));
    }
    statusBox.replaceChildren(...parts);
    plansList.replaceChildren(...status.plans.map((plan) => planItem(plan, status)));
  }

  function planItem(plan, status) {
    const current = status.active && status.plan === plan.id;
    const buy = h(
      "button",
      {
        type: "button",
        class: current ? "secondary" : "primary",
        dataset: { plan: plan.id },
        on: { click: () => purchase(plan, buy) },
      },
      // One inline box: a flex button would drop the space between two spans.
      h(
        "span",
        {},
        h("span", { i18n: current ? "subscription.extend" : "subscription.buy" }),
        " ",
        h("span", { texts: planTitle(plan) }),
      ),
    );
    return h(
      "li",
      { class: "plan", dataset: { planId: plan.id } },
      h("h3", { class: "plan-title", texts: planTitle(plan) }),
      h("p", {
        class: "plan-price",
        texts: {
          ru: formatMoney(plan.price, plan.currency, "ru"),
          en: formatMoney(plan.price, plan.currency, "en"),
        },
      }),
      h("p", { class: "hint", i18n: "subscription.days", args: { days: plan.days } }),
      buy,
    );
  }

  async function purchase(plan, button) {
    alert.hide();
    button.disabled = true;
    try {
      const order = await api.subscribe(plan.id, autoRenew.checked);
      announce("subscription.redirecting");
      window.location.assign(order.paymentUrl);
    } catch (error) {
      alert.show(errorKey(error));
      button.disabled = false;
    }
  }

  function load(pollsLeft) {
    api.subscription().then(
      (status) => {
        if (destroyed) return;
        showStatus(status);
        if (payment === "success" && !status.active && pollsLeft > 0) {
          timer = setTimeout(() => load(pollsLeft - 1), PAID_POLL_MS);
        } else if (payment === "success" && status.active) {
          setText(notice, "subscription.paymentDone");
        }
      },
      (error) => {
        if (destroyed) return;
        statusBox.removeAttribute("aria-busy");
        alert.show(errorKey(error));
      },
    );
  }
  load(PAID_POLLS);

  return {
    el,
    focus: heading,
    destroy() {
      destroyed = true;
      clearTimeout(timer);
    },
  };
}
