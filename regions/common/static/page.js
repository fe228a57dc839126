// The traveller's page: validate the declaration, send it, show the code as a QR with a live
// countdown, follow a pending review, file an appeal. Nothing is stored in the browser: the
// declaration id lives in this script's memory only (a reload forgets it).
"use strict";

(function () {
  const body = document.body;
  const words = document.getElementById("words").dataset;
  const poll = Number(body.dataset.poll || "2") * 1000;
  const $ = (id) => document.getElementById(id);
  let declarationId = null;
  let appealId = null;
  let countdown = null;
  let pollTimer = null;
  let tripCount = 0;
  const MAX_TRIPS = 30;

  // --------------------------------------------------------------- validation (in the page)

  // GB 11643: 17 digits and a check character. The province prefix and the birth date's
  // plausibility are checked again by the server, whose message then shows under the field.
  const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  const CHECK = "10X98765432";
  function residentIdOk(text) {
    if (!/^[0-9]{17}[0-9X]$/.test(text)) return false;
    let sum = 0;
    for (let i = 0; i < 17; i++) sum += Number(text[i]) * WEIGHTS[i];
    return CHECK[sum % 11] === text[17];
  }
  const PHONE = /^1[3-9][0-9]{9}$/;

  function setError(input, messageId, message) {
    const slot = $(messageId);
    if (slot) slot.textContent = message || "";
    if (input) {
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }
  }

  function clearErrors() {
    document.querySelectorAll("#form .error").forEach((e) => { e.textContent = ""; });
    document.querySelectorAll("#form [aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  }

  function trips() {
    return Array.from(document.querySelectorAll("#trip-list .trip"));
  }

  function tripInput(trip, name) {
    return trip.querySelector(`[data-name="${name}"]`);
  }

  function collect() {
    const found = [];
    const data = {
      id_number: $("id_number").value.trim().toUpperCase(),
      name: $("name").value.trim(),
      phone: $("phone").value.trim(),
      trips: [],
      symptoms: Array.from(document.querySelectorAll('input[name="symptom"]:checked')).map((c) => c.value),
      contact: $("contact").checked,
    };
    if (!residentIdOk(data.id_number)) {
      found.push([$("id_number"), "id_number-error", data.id_number ? words.errIdNumber : words.errRequired]);
    }
    if (!data.name || data.name.length > 32) {
      found.push([$("name"), "name-error", data.name ? words.errName : words.errRequired]);
    }
    if (!PHONE.test(data.phone)) {
      found.push([$("phone"), "phone-error", data.phone ? words.errPhone : words.errRequired]);
    }
    trips().forEach((trip) => {
      const place = tripInput(trip, "place").value.trim();
      const from = tripInput(trip, "from").value;
      const to = tripInput(trip, "to").value;
      if (!place && !from && !to) return; // an empty row is no trip
      const slot = trip.querySelector('[data-error="trip"]');
      if (!place || place.length > 64) {
        found.push([tripInput(trip, "place"), slot.id, words.errPlace]);
      } else if (!from || !to || to < from) {
        found.push([tripInput(trip, from ? "to" : "from"), slot.id, words.errDates]);
      } else {
        data.trips.push({ place: place, from: from, to: to });
      }
    });
    return [data, found];
  }

  // The server names the field it refused: "id_number", "trips[2].place", "body"...
  function showServerError(field, message) {
    const text = `${words.errServer}: ${message}`;
    const trip = /^trips\[(\d+)\]/.exec(field || "");
    if (trip) {
      const rows = trips().filter((t) => tripInput(t, "place").value.trim() || tripInput(t, "from").value);
      const row = rows[Number(trip[1])];
      if (row) {
        setError(tripInput(row, "place"), row.querySelector('[data-error="trip"]').id, text);
        tripInput(row, "place").focus();
        return;
      }
    }
    const input = $(field);
    if (input && $(`${field}-error`)) {
      setError(input, `${field}-error`, text);
      input.focus();
    } else {
      setError(null, "body-error", text);
    }
  }

  function addTrip() {
    if (tripCount >= MAX_TRIPS) return null;
    const index = tripCount++;
    const row = $("trip-template").content.firstElementChild.cloneNode(true);
    row.querySelectorAll("[data-name]").forEach((input) => {
      input.id = `trip-${index}-${input.dataset.name}`;
      input.setAttribute("aria-describedby", `trip-${index}-error`);
    });
    row.querySelectorAll("label[data-for]").forEach((label) => {
      label.htmlFor = `trip-${index}-${label.dataset.for}`;
    });
    row.querySelector('[data-error="trip"]').id = `trip-${index}-error`;
    $("trip-list").appendChild(row);
    return row;
  }

  // --------------------------------------------------------------- showing the code

  function pad(n) { return String(n).padStart(2, "0"); }
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return `${pad(Math.floor(s / 3600))}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
  }

  function setLevel(level, word) {
    const panel = $("panel");
    panel.className = `panel level-${level}`;
    const icon = $("icon");
    const data = document.getElementById("words").dataset;
    const key = level.charAt(0).toUpperCase() + level.slice(1);
    icon.className = `icon shape-${data["shape" + key] || "square"}`;
    icon.textContent = data["icon" + key] || "—";
    $("state-word").textContent = word;
  }

  function startCountdown(seconds, onExpired) {
    if (countdown) clearInterval(countdown);
    const end = Date.now() + seconds * 1000; // the issuer's count, not the phone's clock
    const tick = () => {
      const left = (end - Date.now()) / 1000;
      $("countdown").textContent = duration(left);
      if (left <= 0) {
        clearInterval(countdown);
        countdown = null;
        setLevel("expired", words.expired);
        $("qr").hidden = true;
        $("png").hidden = true;
        if (onExpired) onExpired();
      }
    };
    tick();
    countdown = setInterval(tick, 1000);
  }

  function localTime(iso) {
    // "2022-04-01T10:00:00+08:00" -> "2022-04-01 10:00:00" (the issuer's local time)
    return iso ? iso.replace("T", " ").slice(0, 19) : "";
  }

  function show(answer) {
    declarationId = answer.id;
    $("declare").hidden = true;
    $("code").hidden = false;
    $("holder").textContent = answer.holder || "";
    const pending = answer.pending;
    const level = answer.level;
    const dataset = document.getElementById("words").dataset;
    setLevel(level, dataset["state" + level.charAt(0).toUpperCase() + level.slice(1)] || "");
    $("pending-note").hidden = !pending;
    if (answer.code_id) {
      $("qr").src = `/api/codes/${answer.code_id}.svg`;
      $("qr").hidden = false;
      $("png").href = `/api/codes/${answer.code_id}.png`;
      $("png").hidden = false;
      $("issued").textContent = localTime(answer.issued_at);
      startCountdown(answer.expires_in, () => setTimeout(refresh, 1000));
    } else {
      $("qr").hidden = true;
      $("png").hidden = true;
      $("issued").textContent = "";
      $("countdown").textContent = "";
    }
    if (pollTimer) clearTimeout(pollTimer);
    if (pending) pollTimer = setTimeout(refresh, poll);
    const mayAppeal = body.dataset.appeals && (level === "yellow" || level === "red");
    $("appeal").hidden = !mayAppeal && !appealId;
    if (answer.code_id && !pending) offerTransfer(answer.code_id);
  }

  async function refresh() {
    if (!declarationId) return;
    try {
      const response = await fetch(`/api/declarations/${encodeURIComponent(declarationId)}`, {
        headers: { Accept: "application/json" },
        credentials: "omit",
        cache: "no-store",
      });
      if (response.ok) show(await response.json());
      else pollTimer = setTimeout(refresh, poll);
    } catch (e) {
      pollTimer = setTimeout(refresh, poll);
    }
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    const [data, found] = collect();
    if (found.length) {
      found.forEach(([input, slot, message]) => setError(input, slot, message));
      found[0][0].focus();
      return;
    }
    $("submit").disabled = true;
    try {
      const response = await fetch("/api/declarations", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(data),
        credentials: "omit",
        cache: "no-store",
      });
      const answer = await response.json();
      if (response.status === 201 || response.status === 202) {
        show(answer);
        $("code-title").focus();
      } else {
        showServerError(answer.field, answer.error);
      }
    } catch (e) {
      setError(null, "body-error", words.errNetwork);
    } finally {
      $("submit").disabled = false;
    }
  }

  function again() {
    if (countdown) clearInterval(countdown);
    if (pollTimer) clearTimeout(pollTimer);
    declarationId = null;
    appealId = null;
    $("form").reset();
    $("code").hidden = true;
    $("appeal").hidden = true;
    $("appeal-status").textContent = "";
    $("appeal-check").hidden = true;
    resetTransfer();
    $("transfer").hidden = true;
    transferFor = null;
    $("declare").hidden = false;
    $("id_number").focus();
  }

  // --------------------------------------------------------------- 转码 (transfer)
  // The region's own service asks the hub for the attestation and hands it to the
  // destination's issuer; the page only shows what comes back (regions/common/outbound.py).

  const lang = body.dataset.lang || "zh";
  let transferFor = null;
  let attestation = null;

  function inLang(map) { return (map && (map[lang] || map.en)) || ""; }
  function camel(text) {
    return text.toLowerCase().split("_").map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join("");
  }

  function resetTransfer() {
    attestation = null;
    $("transfer-refused").hidden = true;
    $("attestation").hidden = true;
    $("converted").hidden = true;
    $("transfer").dataset.state = "offered";
  }

  function showRefused(answer, status) {
    const reason = (answer && answer.reason) || "";
    $("refused-why").textContent = words["why" + camel(reason)] || "";
    const decision = answer && answer.decision;
    $("refused-decision").textContent = decision
      ? `${words.decision}: ${words["colour" + camel(decision.colour)] || decision.colour} (${decision.reason})`
      : "";
    $("refused-detail").textContent = `${reason || "HTTP " + status}: ${(answer && answer.error) || ""}`;
    $("transfer-refused").hidden = false;
    $("transfer").dataset.state = "refused";
    $("transfer-refused").focus();
  }

  async function post(path, data) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(data),
      credentials: "omit",
      cache: "no-store",
    });
    let answer = null;
    try { answer = await response.json(); } catch (e) { answer = null; }
    return [response.status, answer];
  }

  async function offerTransfer(codeId) {
    if (!body.dataset.transfer || transferFor === codeId) return;
    transferFor = codeId;
    resetTransfer();
    const list = $("transfer-to");
    list.replaceChildren();
    try {
      const response = await fetch("/api/transfer-destinations", { credentials: "omit", cache: "no-store" });
      const answer = await response.json();
      for (const d of answer.destinations || []) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "secondary";
        button.dataset.destination = d.destination;
        button.textContent = `${words.transferTo} ${inLang(d.name)} · ${d.destination}`;
        button.addEventListener("click", () => attest(d));
        list.appendChild(button);
      }
      $("transfer").hidden = !list.children.length;
    } catch (e) {
      $("transfer").hidden = true;
    }
  }

  async function attest(d) {
    resetTransfer();
    let status, answer;
    try {
      [status, answer] = await post("/api/attestations", { code_id: transferFor, destination: d.destination });
    } catch (e) {
      showRefused({ reason: "", error: words.errNetwork }, 0);
      return;
    }
    if (status !== 201) {
      showRefused(answer, status);
      return;
    }
    attestation = { text: answer.attestation, destination: d };
    $("attestation-qr").src = `/api/codes/${answer.attestation_id}.svg`;
    $("attestation-word").textContent = `${words.colourGreen} → ${inLang(d.name)}`;
    $("attestation-destination").textContent = `${inLang(d.name)} (${d.destination})`;
    $("attestation-expires").textContent = localTime(answer.expires_at);
    $("attestation").hidden = false;
    $("transfer").dataset.state = "attested";
    $("convert").focus();
  }

  async function convert() {
    if (!attestation) return;
    $("transfer-refused").hidden = true;
    const data = {
      attestation: attestation.text,
      destination: attestation.destination.destination,
      id_number: $("id_number").value.trim().toUpperCase(),
    };
    const name = $("name").value.trim();
    if (name) data.name = name;
    let status, answer;
    $("convert").disabled = true;
    try {
      [status, answer] = await post("/api/conversions", data);
    } catch (e) {
      showRefused({ reason: "", error: words.errNetwork }, 0);
      return;
    } finally {
      $("convert").disabled = false;
    }
    if (status !== 201) {
      showRefused(answer, status);
      return;
    }
    $("converted-panel").className = `panel to-${answer.destination}`;
    $("converted-icon").className = `icon shape-${answer.green.shape}`;
    $("converted-icon").textContent = answer.green.icon;
    $("converted-word").textContent = `${inLang(answer.name)} ${inLang(answer.green)}`;
    $("converted-qr").src = `/api/codes/${answer.code_id}.svg`;
    $("converted-holder").textContent = answer.holder;
    $("converted-expires").textContent = localTime(answer.expires_at);
    $("converted-uses").textContent = `${answer.uses} / ${answer.uses + answer.uses_left}`;
    $("converted").hidden = false;
    $("transfer").dataset.state = "converted";
  }

  // --------------------------------------------------------------- appeals

  function appealWord(status) {
    return { open: words.appealOpen, accepted: words.appealAccepted, rejected: words.appealRejected }[status] || status;
  }

  async function fileAppeal(event) {
    event.preventDefault();
    const reason = $("reason").value.trim();
    setError($("reason"), "reason-error", "");
    if (!reason || reason.length > 500) {
      setError($("reason"), "reason-error", words.errReason);
      $("reason").focus();
      return;
    }
    try {
      const response = await fetch("/api/appeals", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ declaration_id: declarationId, reason: reason }),
        credentials: "omit",
      });
      const answer = await response.json();
      if (response.status === 201) {
        appealId = answer.appeal_id;
        $("appeal-form").hidden = true;
        $("appeal-status").textContent = `${words.appealFiled}: ${appealWord(answer.status)}`;
        $("appeal-check").hidden = false;
      } else {
        setError($("reason"), "reason-error", `${words.errServer}: ${answer.error}`);
      }
    } catch (e) {
      setError($("reason"), "reason-error", words.errNetwork);
    }
  }

  async function checkAppeal() {
    if (!appealId) return;
    try {
      const response = await fetch(`/api/appeals/${encodeURIComponent(appealId)}`, { credentials: "omit", cache: "no-store" });
      const answer = await response.json();
      $("appeal-status").textContent = `${words.appealFiled}: ${appealWord(answer.status)}`;
      if (answer.status === "accepted") refresh();
    } catch (e) {
      $("appeal-status").textContent = words.errNetwork;
    }
  }

  // --------------------------------------------------------------- start

  if (body.dataset.view === "code") {
    // A code shown by the server (Zhejiang's code URL): only the countdown runs here.
    const seconds = Number(body.dataset.expiresIn || "0");
    if (!$("qr").hidden) startCountdown(seconds, null);
    return;
  }
  $("code-title").tabIndex = -1;
  addTrip();
  $("form").addEventListener("submit", submit);
  $("add-trip").addEventListener("click", () => {
    const row = addTrip();
    if (row) tripInput(row, "place").focus();
  });
  $("again").addEventListener("click", again);
  $("appeal-form").addEventListener("submit", fileAppeal);
  $("appeal-check").addEventListener("click", checkAppeal);
  $("convert").addEventListener("click", convert);
  $("transfer-refused").tabIndex = -1;
})();
