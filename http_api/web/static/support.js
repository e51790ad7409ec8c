// Support: opening a ticket, the user's tickets, and one ticket with its replies.

import { api } from "./api.js";
import { alertBox, announce, h } from "./dom.js";
import { checks, errorKey, makeForm } from "./forms.js";

const SUBJECT_MAX = 200;
const MESSAGE_MAX = 5000;
const TICKETS_PAGE_SIZE = 50;

function ticketStatus(status) {
  return h("span", { class: `badge ticket-${status}`, i18n: `ticketStatus.${status}` });
}

function messageText(text) {
  return h("p", { class: "ticket-text", text });
}

export function supportView(_ctx) {
  const heading = h("h1", { i18n: "support.title", tabIndex: -1 });
  const done = alertBox("success");
  const subject = h("input", {
    type: "text",
    name: "subject",
    maxLength: SUBJECT_MAX,
    autocomplete: "off",
  });
  const message = h("textarea", { name: "message", maxLength: MESSAGE_MAX, rows: 6 });
  const form = makeForm({
    submitKey: "support.send",
    fields: [
      { name: "subject", label: "support.subject", control: subject, check: checks.required },
      {
        name: "message",
        label: "support.message",
        hint: "support.messageHint",
        control: message,
        check: checks.required,
      },
    ],
    async onSubmit(values) {
      done.hide();
      const created = await api.contact(values.subject.trim(), values.message.trim());
      subject.value = "";
      message.value = "";
      done.show("support.sent");
      loadList(created.ticketId);
    },
  });
  const listAlert = alertBox();
  const list = h("ul", { class: "tickets", attrs: { "aria-busy": "true" } });
  const empty = h("p", { class: "empty", i18n: "support.empty", hidden: true });
  const el = h(
    "div",
    { class: "support" },
    h(
      "section",
      { class: "card", attrs: { "aria-labelledby": "support-new-h" } },
      heading,
      h("h2", { id: "support-new-h", i18n: "support.new" }),
      h("p", { class: "hint", i18n: "support.intro" }),
      done,
      form,
    ),
    h(
      "section",
      { class: "card", attrs: { "aria-labelledby": "support-list-h" } },
      h("h2", { id: "support-list-h", i18n: "support.tickets" }),
      listAlert,
      list,
      empty,
    ),
  );

  function loadList(highlight = null) {
    list.setAttribute("aria-busy", "true");
    api.tickets(1, TICKETS_PAGE_SIZE).then(
      (data) => {
        list.removeAttribute("aria-busy");
        listAlert.hide();
        empty.hidden = data.tickets.length > 0;
        list.replaceChildren(
          ...data.tickets.map((ticket) => ticketItem(ticket, ticket.id === highlight)),
        );
      },
      (error) => {
        list.removeAttribute("aria-busy");
        listAlert.show(errorKeyOf(error));
      },
    );
  }
  loadList();
  return { el, focus: heading };
}

function ticketItem(ticket, fresh) {
  const staffReplies = ticket.responses.filter((r) => r.isStaff).length;
  return h(
    "li",
    { class: `ticket-item${fresh ? " fresh" : ""}`, dataset: { ticketId: ticket.id } },
    h(
      "div",
      { class: "ticket-main" },
      h("a", {
        class: "ticket-subject",
        href: `/#/support/${encodeURIComponent(ticket.id)}`,
        text: ticket.subject,
      }),
      h(
        "p",
        { class: "meta" },
        h("span", { i18n: "support.opened" }),
        " ",
        h("span", { date: ticket.createdAt }),
      ),
      staffReplies
        ? h("p", { class: "meta", i18n: "support.staffReplies", args: { n: staffReplies } })
        : null,
    ),
    h("div", { class: "ticket-side" }, ticketStatus(ticket.status)),
  );
}

export function ticketView(ctx, id) {
  const heading = h("h1", { i18n: "support.ticketTitle", tabIndex: -1 });
  const alert = alertBox();
  const body = h("div", { class: "ticket", attrs: { "aria-busy": "true" } });
  const back = h("a", { href: "/#/support", i18n: "support.back" });
  const el = h(
    "section",
    { class: "card" },
    h("p", { class: "back-link" }, back),
    heading,
    alert,
    body,
  );

  function show(ticket) {
    body.removeAttribute("aria-busy");
    heading.removeAttribute("data-i18n");
    heading.textContent = ticket.subject;
    const entries = [
      { message: ticket.message, isStaff: false, createdAt: ticket.createdAt },
      ...ticket.responses,
    ];
    const replyBox = h("textarea", { name: "reply", maxLength: MESSAGE_MAX, rows: 5 });
    const form = makeForm({
      submitKey: "support.replySend",
      fields: [
        { name: "reply", label: "support.reply", control: replyBox, check: checks.required },
      ],
      async onSubmit(values) {
        const data = await api.replyTicket(id, values.reply.trim());
        show(data.ticket);
        announce("support.replySent");
        const again = body.querySelector("textarea");
        if (again) again.focus();
      },
    });
    body.replaceChildren(
      h(
        "p",
        { class: "ticket-meta" },
        ticketStatus(ticket.status),
        " ",
        h("span", { class: "meta", date: ticket.createdAt }),
      ),
      h("h2", { class: "visually-hidden", i18n: "support.conversation" }),
      h(
        "ol",
        { class: "thread" },
        entries.map((entry) =>
          h(
            "li",
            { class: `reply${entry.isStaff ? " staff" : ""}` },
            h(
              "p",
              { class: "reply-head" },
              entry.isStaff
                ? h("span", { class: "badge staff-badge", i18n: "support.staff" })
                : h("span", { class: "reply-author", i18n: "support.you" }),
              " ",
              h("span", { class: "meta", date: entry.createdAt }),
            ),
            messageText(entry.message),
          ),
        ),
      ),
      form,
    );
  }

  api.ticket(id).then((data) => show(data.ticket), (error) => {
    body.removeAttribute("aria-busy");
    alert.show(errorKeyOf(error));
  });
  return { el, focus: heading };
}

function errorKeyOf(error) {
  return error && error.status === 404 ? "support.notFound" : errorKey(error);
}
