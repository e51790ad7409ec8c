// Accounts: log in, sign up, confirm the email, recover and reset the password.

import { api, login, session } from "./api.js";
import { alertBox, h, setText } from "./dom.js";
import { lang } from "./i18n.js";
import { checks, errorKey, input, makeForm, select } from "./forms.js";

function page(titleKey, ...children) {
  const heading = h("h1", { i18n: titleKey, tabIndex: -1 });
  return { el: h("section", { class: "card narrow" }, heading, ...children), focus: heading };
}

export function loginView(ctx, { notice } = {}) {
  const email = input({ type: "email", name: "email", autocomplete: "username", required: true });
  const password = input({
    type: "password",
    name: "password",
    autocomplete: "current-password",
    required: true,
  });
  const form = makeForm({
    submitKey: "login.submit",
    fields: [
      { name: "email", label: "login.email", control: email, check: checks.email },
      { name: "password", label: "login.password", control: password, check: checks.required },
    ],
    onSubmit: async (values) => {
      await login(values.email.trim(), values.password);
      ctx.afterLogin();
    },
  });
  if (notice) form.alert.show(notice);
  return page(
    "login.title",
    form,
    h(
      "p",
      { class: "links" },
      h("span", { i18n: "login.noAccount" }),
      " ",
      h("a", { href: "/#/register", i18n: "login.register" }),
    ),
    h("p", { class: "links" }, h("a", { href: "/forgot-password", i18n: "login.forgot" })),
  );
}

export function registerView(_ctx) {
  const email = input({ type: "email", name: "email", autocomplete: "email", required: true });
  const password = input({
    type: "password",
    name: "password",
    autocomplete: "new-password",
    minLength: 8,
    maxLength: 128,
    required: true,
  });
  const gender = select(
    "gender",
    [
      ["unspecified", "gender.unspecified"],
      ["female", "gender.female"],
      ["male", "gender.male"],
      ["other", "gender.other"],
    ],
    "unspecified",
  );
  const age = input({
    type: "number",
    name: "age",
    min: 14,
    max: 100,
    step: 1,
    inputMode: "numeric",
    required: true,
  });
  const language = select(
    "language",
    [
      ["ru", "lang.ru"],
      ["en", "lang.en"],
    ],
    lang(),
  );
  const marketing = input({ type: "checkbox", name: "marketingConsent" });
  const view = page("register.title");
  const form = makeForm({
    submitKey: "register.submit",
    fields: [
      { name: "email", label: "login.email", control: email, check: checks.email },
      {
        name: "password",
        label: "register.password",
        control: password,
        hint: "register.passwordHint",
        check: checks.password,
      },
      { name: "gender", label: "register.gender", control: gender },
      {
        name: "age",
        label: "register.age",
        control: age,
        hint: "register.ageHint",
        check: checks.age,
      },
      { name: "language", label: "register.language", control: language },
      { name: "marketingConsent", label: "register.marketing", control: marketing },
    ],
    onSubmit: async (values) => {
      const address = values.email.trim();
      await api.register({
        email: address,
        password: values.password,
        gender: values.gender,
        age: Number(values.age),
        language: values.language,
        marketingConsent: values.marketingConsent,
      });
      const done = h("h1", { i18n: "register.doneTitle", tabIndex: -1 });
      view.el.replaceChildren(
        done,
        h("p", {
          class: "alert alert-success",
          i18n: "register.doneText",
          args: { email: address },
        }),
        h("p", { class: "links" }, h("a", { href: "/#/login", i18n: "verify.toLogin" })),
      );
      done.focus();
    },
  });
  view.el.append(
    form,
    h(
      "p",
      { class: "links" },
      h("span", { i18n: "register.haveAccount" }),
      " ",
      h("a", { href: "/#/login", i18n: "nav.login" }),
    ),
  );
  return view;
}

function tokenFromUrl() {
  const token = new URLSearchParams(location.search).get("token");
  // Keep the single-use token out of the address bar and the history once it is read.
  if (token) history.replaceState(history.state, "", location.pathname + location.hash);
  return token;
}

export function verifyView(_ctx) {
  const status = h("p", { i18n: "verify.working", attrs: { role: "status" } });
  const problem = alertBox();
  const next = h("p", { class: "links", hidden: true });
  const view = page("verify.title", status, problem, next);
  const token = tokenFromUrl();
  const finish = (ok) => {
    next.replaceChildren(
      session.loggedIn
        ? h("a", { class: "button primary", href: "/#/start", i18n: "verify.toStart" })
        : h("a", { class: "button primary", href: "/#/login", i18n: "verify.toLogin" }),
    );
    next.hidden = false;
    status.hidden = !ok;
  };
  if (!token) {
    problem.show("verify.missing");
    finish(false);
  } else {
    api.verifyEmail(token).then(
      () => {
        setText(status, "verify.ok");
        status.classList.add("alert", "alert-success");
        finish(true);
      },
      (error) => {
        problem.show(errorKey(error));
        finish(false);
      },
    );
  }
  return view;
}

export function forgotView() {
  const email = input({ type: "email", name: "email", autocomplete: "email", required: true });
  const done = h("p", { class: "alert alert-success", hidden: true, attrs: { role: "status" } });
  const form = makeForm({
    submitKey: "forgot.submit",
    fields: [{ name: "email", label: "login.email", control: email, check: checks.email }],
    onSubmit: async (values) => {
      await api.forgotPassword(values.email.trim());
      setText(done, "forgot.done");
      done.hidden = false;
    },
  });
  return page(
    "forgot.title",
    h("p", { i18n: "forgot.text" }),
    form,
    done,
    h("p", { class: "links" }, h("a", { href: "/#/login", i18n: "nav.login" })),
  );
}

export function resetView() {
  const token = tokenFromUrl();
  const password = input({ type: "password", name: "password", autocomplete: "new-password" });
  const confirm = input({ type: "password", name: "confirm", autocomplete: "new-password" });
  const view = page("reset.title");
  if (!token) {
    const problem = alertBox();
    problem.show("error.invalid_token");
    view.el.append(
      problem,
      h("p", { class: "links" }, h("a", { href: "/forgot-password", i18n: "login.forgot" })),
    );
    return view;
  }
  const form = makeForm({
    submitKey: "reset.submit",
    fields: [
      {
        name: "password",
        label: "reset.password",
        control: password,
        hint: "register.passwordHint",
        check: checks.password,
      },
      {
        name: "confirm",
        label: "reset.confirm",
        control: confirm,
        check: (value, all) => (value === all.password ? null : "reset.mismatch"),
      },
    ],
    onSubmit: async (values) => {
      await api.resetPassword(token, values.password);
      const done = h("p", {
        class: "alert alert-success",
        i18n: "reset.done",
        attrs: { role: "status" },
      });
      form.replaceWith(
        done,
        h(
          "p",
          { class: "links" },
          h("a", { class: "button primary", href: "/#/login", i18n: "nav.login" }),
        ),
      );
    },
  });
  view.el.append(form);
  return view;
}
