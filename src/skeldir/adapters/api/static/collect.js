/*
 * Skeldir collector: records page views with UTM parameters and click ids under a
 * first-party visitor id, for shops that have no collector of their own.
 *
 *   <script src="https://skeldir.example/collect.js" data-key="skd_…" async></script>
 *
 * The visitor id lives in this site's localStorage (a random id, nothing about the person).
 * A visit is recorded when a session starts, when the visitor arrives from another site, or
 * when the URL carries campaign parameters; moving between the shop's own pages is not a
 * visit. Call window.skeldir.link({checkout_token: "…"}) on the checkout page to stitch the
 * journey to the order that follows (an identify item: no step of the journey).
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

  var campaign = /[?&](utm_[a-z]+|skd_[a-z]+|gclid|gbraid|wbraid|dclid|msclkid|fbclid|ttclid|li_fat_id|twclid)=/i;

  function isEntry() {
    var external = false;
    try {
      external = !!document.referrer && new URL(document.referrer).host !== window.location.host;
    } catch (e) { external = false; }
    var started = false;
    try {
      started = window.sessionStorage.getItem("skeldir_session") === "1";
      window.sessionStorage.setItem("skeldir_session", "1");
    } catch (e) { started = false; }
    return !started || external || campaign.test(window.location.search);
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

  function link(refs) {
    var identify = {kind: "identify"};
    for (var name in refs) {
      if (Object.prototype.hasOwnProperty.call(refs, name)) { identify[name] = refs[name]; }
    }
    send(identify);
  }

  window.skeldir = {visitorId: visitorId, link: link};
  if (isEntry()) { send({}); }
})();
