// NorexVPN dashboard, devices page: the live dots (refreshed every 10 s) and adding a device whose key pair is
// made here, in the browser (WebCrypto X25519). Only the public key is sent to us; the config with the private
// key is built here, offered once as a download and a QR code, and forgotten.
"use strict";

(function () {
  const table = document.getElementById("devices");
  const form = document.getElementById("add-device");

  function state(online) {
    return online === true ? "online" : online === false ? "offline" : "unknown";
  }

  async function refresh() {
    try {
      const answer = await fetch("/devices/status", { headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      const status = await answer.json();
      const live = status.devices;
      const blocked = document.getElementById("blocked");
      if (blocked && status.blocked !== null) blocked.textContent = status.blocked;
      for (const row of table.querySelectorAll("tr[data-device]")) {
        const device = live[row.dataset.device];
        if (!device) continue;
        row.querySelector(".dot").className = "dot " + state(device.online);
        row.querySelector(".state").textContent = state(device.online);
        row.querySelector(".transfer").textContent = device.transfer || "-";
      }
    } catch (error) {
      // Offline or the server busy: the next refresh tries again.
    }
  }

  function base64(bytes) {
    let text = "";
    for (const byte of bytes) text += String.fromCharCode(byte);
    return btoa(text);
  }

  async function keyPair() {
    const pair = await crypto.subtle.generateKey({ name: "X25519" }, true, ["deriveBits"]);
    const publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
    // PKCS #8 of an X25519 key: a fixed 16-byte header, then the 32 bytes of the private key.
    const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
    return { publicKey: base64(publicKey), privateKey: base64(pkcs8.slice(-32)) };
  }

  function addRow(device) {
    const body = table.querySelector("tbody");
    const empty = body.querySelector("td[colspan]");
    if (empty) empty.parentElement.remove();
    const row = document.createElement("tr");
    row.dataset.device = device.id;
    const name = document.createElement("td");
    name.textContent = device.name;
    const now = document.createElement("td");
    const dot = document.createElement("span");
    dot.className = "dot unknown";
    const label = document.createElement("span");
    label.className = "state";
    label.textContent = "unknown";
    now.append(dot, " ", label);
    const transfer = document.createElement("td");
    transfer.className = "transfer";
    transfer.textContent = "-";
    const remove = document.createElement("td");
    const link = document.createElement("a");
    link.href = "/devices/" + device.id + "/remove";
    link.textContent = "Remove";
    remove.append(link);
    row.append(name, now, transfer, remove);
    body.append(row);
  }

  function showOnce(device, config) {
    const section = document.getElementById("new-device");
    const download = document.getElementById("download");
    const url = URL.createObjectURL(new Blob([config], { type: "text/plain" }));
    download.href = url;
    download.download = "norex-" + device.name.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 40) + ".conf";
    const qr = qrcode(0, "M");
    qr.addData(config);
    qr.make();
    document.getElementById("qr").src = qr.createDataURL(4, 8);
    section.hidden = false;
    document.getElementById("done").onclick = function () {
      URL.revokeObjectURL(url);
      download.href = "#";
      document.getElementById("qr").removeAttribute("src");
      section.hidden = true;
    };
  }

  if (form && window.crypto && crypto.subtle) {
    document.getElementById("own-key").hidden = true;
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        let keys;
        try {
          keys = await keyPair();
        } catch (error) {
          // No X25519 in this browser: the customer pastes a public key of their own instead.
          document.getElementById("own-key").hidden = false;
          form.submit();
          return;
        }
        const data = new URLSearchParams();
        data.set("csrf", form.elements.csrf.value);
        data.set("name", form.elements.name.value);
        data.set("public_key", keys.publicKey);
        const answer = await fetch("/devices", {
          method: "POST",
          headers: { Accept: "application/json" },
          body: data,
        });
        const device = await answer.json();
        if (!answer.ok) {
          alert(device.error || "The device could not be added.");
          return;
        }
        addRow(device);
        showOnce(device, device.config.replace(device.placeholder, keys.privateKey));
        keys = null;
        form.reset();
      } finally {
        button.disabled = false;
      }
    });
  }

  if (table) setInterval(refresh, 10000);
})();
