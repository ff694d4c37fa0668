// Each channel's publishing row: GET /v1/channels/{code}/publishing/status (admin, readonly)
// and any open channel_sync_failed exception of the channel, with its decisions (retry now,
// pause, resync; admin).

import { ApiError, all, get, q } from "./api.js";
import { badge, duration, h, problemBox, replace, table, when } from "./dom.js";
import { decisionButtons } from "./decide.js";
import { escalation, slaStatus } from "./exceptions.js";

export async function channelsView(main, config) {
  replace(main, h("h1", {}, "Channels"), h("p", { class: "muted" }, "loading…"));
  let channels;
  try {
    channels = await all("/v1/channels");
  } catch (err) {
    replace(main, h("h1", {}, "Channels"), problemBox(err));
    return;
  }
  const [statuses, failed] = await Promise.all([
    Promise.all(channels.map((c) => publishing(c.code))),
    syncFailed(),
  ]);
  const refresh = () => channelsView(main, config);
  replace(
    main,
    h("h1", {}, "Channels"),
    failed.error ? h("div", { class: "note" }, "Open sync failures: ", problemBox(failed.error)) : null,
    table(
      ["channel", "type", "publishing", "last delivery", "lag p50 / p99", "sync failure", "decide"],
      channels.map((c, i) => row(c, statuses[i], failed.byChannel.get(c.code), config, refresh)),
      { class: "grid channels" },
    ),
  );
}

async function publishing(code) {
  try {
    return { status: await get(`/v1/channels/${encodeURIComponent(code)}/publishing/status`) };
  } catch (err) {
    return { error: err };
  }
}

async function syncFailed() {
  try {
    const items = await all(`/v1/exceptions${q({ kind: "channel_sync_failed", status: "open" })}`);
    return { byChannel: new Map(items.map((e) => [e.subject.id, e])) };
  } catch (err) {
    return { byChannel: new Map(), error: err };
  }
}

function row(channel, publishingRead, exception, config, refresh) {
  const s = publishingRead.status;
  return h(
    "tr",
    { dataset: { channel: channel.code } },
    h("td", {}, h("strong", {}, channel.code), " ", h("span", { class: "muted" }, channel.name)),
    h("td", {}, channel.type),
    h("td", {}, s ? state(s) : unknown(publishingRead.error)),
    h("td", {}, s ? when(s.last_delivery_at) : "—"),
    h("td", { class: "num" }, s && s.lag_ms_p50 !== null ? `${Math.round(s.lag_ms_p50)} / ${Math.round(s.lag_ms_p99)} ms` : "—"),
    h(
      "td",
      {},
      exception
        ? [
            badge("channel sync failed", "breached"),
            " ",
            h("span", { title: `opened ${when(exception.opened_at)}` }, `${duration(Date.now() - Date.parse(exception.opened_at))} old`),
            " · ",
            slaStatus(exception, config).label,
            " · escalation ",
            escalation(exception, config),
          ]
        : h("span", { class: "muted" }, "none"),
    ),
    h("td", {}, exception ? decisionButtons(exception, config, refresh) : null),
  );
}

function state(s) {
  if (s.paused) return badge("paused", "soon");
  if (s.failing_since) return badge(`failing for ${duration(Date.now() - Date.parse(s.failing_since))}`, "breached");
  if (!s.enabled) return badge("disabled", "muted");
  if (s.snapshot_due) return badge("snapshot due", "soon");
  return badge("ok", "ok");
}

function unknown(err) {
  if (err instanceof ApiError && err.status === 404) return h("span", { class: "muted" }, "no publishing target");
  if (err instanceof ApiError && err.status === 403) return h("span", { class: "muted" }, "not visible to this role");
  return problemBox(err);
}
