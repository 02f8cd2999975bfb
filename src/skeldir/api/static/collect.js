/*
 * Skeldir collector: records page views with UTM parameters and click ids under a
 * first-party visitor id, for shops that have no collector of their own.
 *
 *   <script src="https://skeldir.example/collect.js" data-key="skd_…" async></script>
 *
 * The visitor id lives in this site's localStorage (a random id, nothing about the person).
 * Call window.skeldir.link({checkout_token: "…"}) on the checkout page to stitch the visit
 * to the order that follows.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.key) { return; }
  var endpoint = new URL("/api/touchpoints", script.src).toString();
  var key = script.dataset.key;
  var storageKey = "skeldir_visitor_id";

  function randomId() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function visitorId() {
    try {
      var id = window.localStorage.getItem(storageKey);
      if (!id) { id = randomId(); window.localStorage.setItem(storageKey, id); }
      return id;
    } catch (e) {
      return randomId();
    }
  }

  function send(extra) {
    var touchpoint = {
      id: randomId(),
      visitor_id: visitorId(),
      occurred_at: new Date().toISOString(),
      url: window.location.href,
      referrer: document.referrer || null
    };
    for (var name in extra) {
      if (Object.prototype.hasOwnProperty.call(extra, name)) { touchpoint[name] = extra[name]; }
    }
    var body = JSON.stringify({touchpoints: [touchpoint]});
    // keepalive lets the request finish when the page is being left.
    window.fetch(endpoint, {
      method: "POST",
      keepalive: true,
      headers: {"Content-Type": "application/json", "Authorization": "Bearer " + key},
      body: body
    }).catch(function () { /* collection never breaks the page */ });
  }

  window.skeldir = {visitorId: visitorId, link: send};
  send({});
})();
