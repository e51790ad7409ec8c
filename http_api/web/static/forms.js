// Forms with labelled fields, our own (translated) validation messages and server errors mapped
// back onto the fields they concern.

import { alertBox, field, h } from "./dom.js";
import { has } from "./i18n.js";

const EMAIL = /^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{2,63}$/;

export const checks = {
  required: (value) => (String(value).trim() ? null : "common.required"),
  email: (value) => (EMAIL.test(String(value).trim()) ? null : "field.email"),
  password: (value) =>
    String(value).length >= 8 && String(value).trim() ? null : "field.password",
  age: (value) => {
    const n = Number(value);
    return Number.isInteger(n) && n >= 14 && n <= 100 ? null : "field.age";
  },
};

export function errorKey(error) {
  if (error && error.code && has(`error.${error.code}`)) return `error.${error.code}`;
  if (error && error.status === 0) return "error.network";
  return "error.generic";
}

export function input(props) {
  return h("input", props);
}

export function select(name, options, value) {
  const el = h(
    "select",
    { name },
    options.map(([optionValue, key]) => h("option", { value: optionValue, i18n: key })),
  );
  el.value = value;
  return el;
}

/**
 * spec.fields: [{name, label, control, hint?, optional?, check?: (value, values) => key|null}]
 * spec.onSubmit(values) -> Promise; throw an ApiError to show it.
 */
export function makeForm(spec) {
  const alert = alertBox();
  const fieldEls = new Map();
  const rows = spec.fields.map((f) => {
    const row = f.control.type === "checkbox" ? checkboxRow(f) : field({ ...f, input: f.control });
    fieldEls.set(f.name, { row, spec: f });
    return row;
  });
  const submit = h("button", { type: "submit", class: "primary", i18n: spec.submitKey });
  const form = h(
    "form",
    { class: "form", noValidate: true },
    alert,
    rows,
    h("div", { class: "actions" }, submit),
  );

  function values() {
    const out = {};
    for (const [name, { spec: f }] of fieldEls) {
      out[name] = f.control.type === "checkbox" ? f.control.checked : f.control.value;
    }
    return out;
  }

  function validate(current) {
    let first = null;
    for (const [, { row, spec: f }] of fieldEls) {
      const problem = f.check ? f.check(current[f.name], current) : null;
      if (row.showError) row.showError(problem);
      if (problem && !first) first = f.control;
    }
    return first;
  }

  function showServerError(error) {
    alert.show(errorKey(error));
    if (error.code !== "validation_error" || !Array.isArray(error.details)) return;
    let first = null;
    for (const detail of error.details) {
      const name = detail.loc && detail.loc[detail.loc.length - 1];
      const entry = fieldEls.get(name);
      if (!entry || !entry.row.showError) continue;
      entry.row.showError(has(`field.${name}`) ? `field.${name}` : "common.required");
      first = first || entry.spec.control;
    }
    if (first) first.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.hide();
    const current = values();
    const invalid = validate(current);
    if (invalid) {
      invalid.focus();
      return;
    }
    submit.disabled = true;
    form.setAttribute("aria-busy", "true");
    try {
      await spec.onSubmit(current);
    } catch (error) {
      showServerError(error);
    } finally {
      submit.disabled = false;
      form.removeAttribute("aria-busy");
    }
  });
  form.alert = alert;
  return form;
}

function checkboxRow(f) {
  f.control.id = f.control.id || `cb-${f.name}`;
  return h(
    "div",
    { class: "field checkbox" },
    f.control,
    h("label", { htmlFor: f.control.id, i18n: f.label }),
  );
}
