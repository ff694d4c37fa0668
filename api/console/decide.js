// Deciding an exception: the buttons of the actions the signed-in key may take, each opening
// a form with the data that action declares (the exception's `action_schemas`, a JSON Schema
// an action), then POST /v1/exceptions/{id}/resolve. A refusal shows the problem+json as the
// API answered it; the form stays open to correct and send again.

import { call, get, session } from "./api.js";
import { h, newKey, problemBox, replace } from "./dom.js";

export function mayDecide(exception) {
  const me = session.me;
  return Boolean(me && exception.status === "open" && me.decides.includes(exception.kind));
}

// The cell of a queue row or a hold: the buttons, or why there are none.
export function decisionButtons(exception, config, onDecided) {
  if (exception.status !== "open") {
    return h("span", { class: "muted" }, exception.status);
  }
  if (!mayDecide(exception)) {
    const deciders = config.exception_policies[exception.kind]?.deciders || [];
    return h("span", { class: "muted", title: "the signed-in role may not decide this kind" },
      deciders.length ? `decided by ${deciders.join(", ")}` : "not yours to decide");
  }
  const schemas = Object.fromEntries((exception.action_schemas || []).map((a) => [a.name, a.data_schema]));
  return h(
    "span",
    { class: "actions" },
    exception.actions.map((action) =>
      h(
        "button",
        {
          type: "button",
          class: action === "cancel" ? "danger" : "",
          dataset: { action, exception: exception.id },
          onclick: () => openDecision(exception, action, schemas[action] || {}, onDecided),
        },
        action.replaceAll("_", " "),
      ),
    ),
  );
}

async function openDecision(exception, action, schema, onDecided) {
  const defaults = await defaultsFor(exception, schema);
  // One Idempotency-Key a decision sent: the same data sent again (a double click, a retry
  // after a timeout) replays the first answer; corrected data is a new decision.
  const sent = new Map();
  const outcome = h("div", { class: "outcome", role: "status" });
  const note = h("textarea", { name: "note", rows: 2, maxlength: 2000, placeholder: "why (kept with the decision)" });
  const submit = h("button", { type: "submit", class: "primary" }, "Confirm");
  const form = h(
    "form",
    { class: "decision", method: "dialog" },
    h("h2", {}, `${action.replaceAll("_", " ")} · ${exception.kind.replaceAll("_", " ")}`),
    h("p", { class: "muted" }, `${exception.subject.type} ${exception.subject.id} · ${exception.id}`),
    fieldsOf(schema, [], defaults),
    h("label", {}, "note", note),
    outcome,
    h(
      "div",
      { class: "buttons" },
      h("button", { type: "button", onclick: () => dialog.close() }, "Close"),
      submit,
    ),
  );
  const dialog = h("dialog", { class: "decide" }, form);
  dialog.addEventListener("close", () => dialog.remove());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    replace(outcome, h("span", { class: "muted" }, "sending…"));
    try {
      const body = { action, note: note.value, data: collect(form, schema) };
      const fingerprint = JSON.stringify(body);
      if (!sent.has(fingerprint)) sent.set(fingerprint, newKey("console-decision"));
      const idempotencyKey = sent.get(fingerprint);
      const { status, data } = await call("POST", `/v1/exceptions/${encodeURIComponent(exception.id)}/resolve`, {
        body,
        idempotencyKey,
      });
      const decided = data.exception;
      replace(
        outcome,
        h("p", { class: "ok" }, status === 202
          ? `accepted: ${decided.id} is resolving (the workflow has not finished it yet)`
          : `${decided.status}: ${decided.resolution?.action ?? action} by ${decided.resolved_by ?? "you"}`),
      );
      setTimeout(() => dialog.close(), 600);
      onDecided?.(decided);
    } catch (err) {
      replace(outcome, problemBox(err));
      submit.disabled = false;
    }
  });
  document.body.append(dialog);
  dialog.showModal();
}

// What the form starts with: the exception's own details, and for an address the subject
// order's current ship-to (the person corrects it rather than typing it all again).
async function defaultsFor(exception, schema) {
  const defaults = { ...(exception.details || {}) };
  const wantsAddress = Object.values(schema.properties || {}).some((p) => p.type === "object");
  if (wantsAddress && exception.subject.type === "order") {
    try {
      const order = await get(`/v1/orders/${encodeURIComponent(exception.subject.id)}`);
      defaults.ship_to = { ...order.ship_to, ...(defaults.ship_to || {}) };
    } catch {
      // the form still works empty
    }
  }
  return defaults;
}

function fieldsOf(schema, path, defaults) {
  const props = schema.properties || {};
  const required = new Set(schema.required || []);
  return Object.entries(props).map(([name, prop]) => {
    const at = [...path, name];
    const value = defaults?.[name] ?? defaults?.[`${name}_due`]; // payment_pending says amount_due
    if (prop.type === "object") {
      return h("fieldset", {}, h("legend", {}, name.replaceAll("_", " ")), fieldsOf(prop, at, value || {}));
    }
    return h("label", {}, name.replaceAll("_", " "), input(prop, at.join("."), value, required.has(name)));
  });
}

function input(prop, name, value, required) {
  if (prop.enum) {
    return h(
      "select",
      { name, required },
      prop.enum.map((choice) => h("option", { value: choice, selected: choice === value }, choice)),
    );
  }
  const types = [].concat(prop.type);
  if (types.includes("integer") || types.includes("number")) {
    return h("input", {
      name,
      type: "number",
      step: types.includes("integer") ? 1 : "any",
      min: prop.minimum,
      max: prop.maximum,
      required,
      value: typeof value === "number" ? value : undefined,
      dataset: { kind: types.includes("integer") ? "integer" : "number" },
    });
  }
  return h("input", {
    name,
    type: "text",
    maxlength: prop.maxLength,
    required,
    value: typeof value === "string" ? value : undefined,
  });
}

// The form's values as the action's data: numbers as numbers, empty optional fields left out.
function collect(form, schema) {
  const data = {};
  for (const el of form.querySelectorAll("input[name], select[name]")) {
    if (el.name === "note") continue;
    const path = el.name.split(".");
    const prop = path.reduce((s, part) => s?.properties?.[part], schema);
    if (!prop) continue;
    let value = el.value;
    if (el.dataset.kind) {
      if (value === "") continue;
      value = el.dataset.kind === "integer" ? Number.parseInt(value, 10) : Number(value);
    } else if (value === "" && !isRequired(schema, path)) {
      continue;
    }
    let target = data;
    for (const part of path.slice(0, -1)) target = target[part] ??= {};
    target[path.at(-1)] = value;
  }
  return data;
}

function isRequired(schema, path) {
  let s = schema;
  for (const part of path.slice(0, -1)) s = s.properties[part];
  return (s.required || []).includes(path.at(-1));
}
