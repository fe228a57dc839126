// The checkpoint page: collects one traveller's codes (scanner field, camera, upload), asks the
// gateway for the destination's decision, shows it, and resets for the next traveller.
// Nothing is stored in the browser. Anything but a decision from the gateway shows GREY.
"use strict";

(function () {
  const main = document.getElementById("checkpoint");
  if (!main) return;
  const at = main.dataset.at;
  const words = JSON.parse(main.dataset.words);
  const resetSeconds = Number(main.dataset.reset) || 12;
  const $ = (id) => document.getElementById(id);
  const field = $("code"), list = $("codes"), decide = $("decide"), error = $("error");
  const result = $("result"), input = $("input"), video = $("video"), camera = $("camera");
  const codes = [];
  let resetTimer = null, stream = null, frameTimer = null, busy = false;

  function say(text) { $("announce").textContent = text; }
  function word(key) { return words[key] || key; }

  function render() {
    list.replaceChildren();
    if (!codes.length) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = word("none_yet");
      list.append(li);
    }
    codes.forEach((code, index) => {
      const li = document.createElement("li");
      const text = document.createElement("code");
      text.textContent = code.length > 40 ? code.slice(0, 24) + "…" + code.slice(-8) : code;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = word("remove");
      remove.setAttribute("aria-label", word("remove") + " " + (index + 1));
      remove.addEventListener("click", () => { codes.splice(index, 1); render(); field.focus(); });
      li.append(text, " ", remove);
      list.append(li);
    });
    decide.disabled = !codes.length;
  }

  function add(code) {
    const text = code.replace(/[\r\n]+$/, "");
    if (!text || codes.includes(text)) return false;
    codes.push(text);
    error.textContent = "";
    render();
    beep(880, 0.05);
    return true;
  }

  async function post(path, body, type) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": type || "application/json" },
      body: type ? body : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
    return data;
  }

  async function run() {
    if (!codes.length || busy) return;
    busy = true;
    stopCamera();
    decide.disabled = true;
    say(word("working"));
    let decision = null, failure = "";
    try {
      decision = await post("/api/recognise", { codes: codes.slice(), destination: at });
    } catch (e) {
      failure = String(e.message || e);
    }
    busy = false;
    show(decision, failure);
  }

  function show(decision, failure) {
    // Only a DECIDED GREEN from the gateway is green; everything else is not.
    let colour = "GREY";
    if (decision && decision.status === "DECIDED" && ["GREEN", "YELLOW", "RED"].includes(decision.colour)) {
      colour = decision.colour;
    }
    const panel = $("panel");
    panel.className = "panel " + colour;
    $("icon").textContent = { GREEN: "✓", YELLOW: "!", RED: "✕", GREY: "?" }[colour];
    $("word").textContent = word(colour);
    let reason = "";
    if (failure) reason = word("UNAVAILABLE") + failure;
    else if (colour !== "GREEN") {
      // The decision's reason, and why each code that did not count failed, in plain words.
      const why = ((decision && decision.codes) || [])
        .filter((item) => item.verdict.status !== "VALID")
        .map((item) => word(item.verdict.reason));
      reason = [word(decision.reason), ...new Set(why)].join(" — ");
    }
    $("reason").textContent = reason ? word("reason") + ": " + reason : "";
    const verdicts = $("verdicts");
    verdicts.replaceChildren();
    let identity = "";
    for (const item of (decision && decision.codes) || []) {
      const v = item.verdict;
      identity = identity || v.masked_identity || "";
      const li = document.createElement("li");
      const where = [v.region, v.issuer, v.local_state].filter(Boolean).join(" · ");
      li.textContent = (where ? where + " — " : "") + v.colour +
        (v.status === "VALID" ? "" : " (" + word(v.reason) + ")");
      verdicts.append(li);
    }
    $("identity").textContent = identity || "—";
    const steps = $("steps");
    steps.replaceChildren();
    for (const step of (decision && decision.steps) || []) {
      const li = document.createElement("li");
      li.textContent = step.text;
      steps.append(li);
    }
    $("why").hidden = !steps.children.length;
    input.hidden = true;
    result.hidden = false;
    result.focus();
    say(word(colour) + (reason ? ". " + reason : ""));
    if (colour === "GREEN") { beep(1320, 0.12); vibrate([60]); }
    else { beep(220, 0.5); vibrate([200, 100, 200]); }
    resetTimer = setTimeout(reset, resetSeconds * 1000);
  }

  function reset() {
    clearTimeout(resetTimer);
    codes.length = 0;
    render();
    result.hidden = true;
    input.hidden = false;
    error.textContent = "";
    field.value = "";
    field.focus();
  }

  let audio = null;
  function beep(frequency, seconds) {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      const tone = audio.createOscillator(), gain = audio.createGain();
      tone.frequency.value = frequency;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + seconds);
    } catch (e) { /* no sound: the screen says it all */ }
  }
  function vibrate(pattern) { if (navigator.vibrate) navigator.vibrate(pattern); }

  async function decodeImage(blob, quiet) {
    try {
      const data = await post("/api/decode", blob, blob.type || "application/octet-stream");
      let added = false;
      for (const code of data.codes) added = add(code) || added;
      return added;
    } catch (e) {
      if (!quiet) error.textContent = String(e.message || e);
      return false;
    }
  }

  async function startCamera() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" } });
    } catch (e) {
      error.textContent = word("camera_error");
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    await video.play();
    camera.textContent = word("camera_stop");
    const detector = "BarcodeDetector" in window ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
    const canvas = document.createElement("canvas");
    const frame = async () => {
      if (!stream) return;
      if (video.videoWidth) {
        if (detector) {
          const found = await detector.detect(video).catch(() => []);
          found.forEach((f) => add(f.rawValue));
        } else {
          canvas.width = video.videoWidth;
          canvas.height = video.videoHeight;
          canvas.getContext("2d").drawImage(video, 0, 0);
          const blob = await new Promise((done) => canvas.toBlob(done, "image/jpeg", 0.85));
          if (blob) await decodeImage(blob, true);
        }
      }
      if (stream) frameTimer = setTimeout(frame, 300);
    };
    frame();
  }

  function stopCamera() {
    clearTimeout(frameTimer);
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    video.hidden = true;
    camera.textContent = word("camera");
  }

  $("scan").addEventListener("submit", (event) => {
    event.preventDefault();
    if (field.value.trim() === "") run();  // Enter on the empty field decides
    else add(field.value);
    field.value = "";
    field.focus();
  });
  decide.addEventListener("click", run);
  camera.addEventListener("click", () => (stream ? stopCamera() : startCamera()));
  $("upload").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    event.target.value = "";
    if (file) await decodeImage(file, false);
    field.focus();
  });
  $("next").addEventListener("click", reset);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !result.hidden) reset();
  });
  words.UNAVAILABLE = words.UNAVAILABLE || "";
  render();
  field.focus();
  main.dataset.ready = "1";  // the handlers are in place (a scanner may type now)
})();
