// NorexVPN dashboard, the card form (subscribe, replace the card): Stripe.js's card Element sends the card
// straight to Stripe. We only ask our server for a SetupIntent, let Stripe.js confirm it with the card, and send
// back the SetupIntent's id: no card detail is ever in a request to us.
"use strict";

(function () {
  const form = document.getElementById("card-form");
  if (!form || typeof Stripe === "undefined") return;
  const stripe = Stripe(form.dataset.key);
  const card = stripe.elements().create("card");
  card.mount("#card");
  const error = document.getElementById("card-error");
  const busy = document.getElementById("card-busy");
  const button = form.querySelector("button[type=submit]");
  const csrf = form.querySelector("input[name=csrf]").value;

  async function post(url, fields) {
    const answer = await fetch(url, {
      method: "POST",
      headers: { Accept: "application/json" },
      body: new URLSearchParams({ csrf: csrf, ...fields }),
      credentials: "same-origin",
    });
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok || data.error) throw new Error(data.error || "Something went wrong. Reload the page and try again.");
    return data;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    error.textContent = "";
    busy.textContent = "Checking the card with Stripe…";
    try {
      const started = await post(form.dataset.start, {});
      const result = await stripe.confirmCardSetup(started.client_secret, { payment_method: { card: card } });
      if (result.error) {
        const declined = result.error.code === "card_declined" ? " Try another card." : "";
        throw new Error((result.error.message || "The card was not accepted.") + declined);
      }
      busy.textContent = "Card accepted; finishing…";
      const done = await post(form.dataset.finish, { setup_intent: result.setupIntent.id });
      window.location.assign(done.next);
    } catch (problem) {
      busy.textContent = "";
      error.textContent = problem.message;
      button.disabled = false;
    }
  });
})();
