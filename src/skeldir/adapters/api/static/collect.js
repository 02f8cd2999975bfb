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
 *
 * Consent. The collector reads the visitor's consent from, in order: window.skeldir.consent(...)
 * (called by the shop's banner: "granted", "denied", or an object as below), Shopify's Customer
 * Privacy API (window.Shopify.customerPrivacy: analyticsProcessingAllowed(), marketingAllowed()),
 * and Google Consent Mode v2 (the latest gtag('consent', 'default'|'update', {...}) in
 * window.dataLayer: analytics_storage, ad_storage). Without analytics consent it does nothing:
 * no visitor id is created or read, nothing is sent. Each item carries the state it was
 * collected under, as {analytics_storage, ad_storage}, so the server keeps no ad click id
 * without ad consent. With data-consent="required" and no signal found, it waits for one;
 * without that attribute and with no signal, it collects as before (the shop handles consent).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.dataset.key) { return; }
  var endpoint = new URL("/api/touchpoints", script.src).toString();
  var key = script.dataset.key;
  var storageKey = "skeldir_visitor_id";
  var consentRequired = script.dataset.consent === "required";
  var explicitConsent = null;
  var pendingEntry = false;

  function grantedOf(value) {
    return value === true || value === "granted";
  }

  // {analytics_storage, ad_storage} from any spelling, or null when it names no state.
  function normalise(state) {
    if (state === "granted" || state === "denied" || state === true || state === false) {
      var all = grantedOf(state) ? "granted" : "denied";
      return {analytics_storage: all, ad_storage: all};
    }
    if (!state || typeof state !== "object") { return null; }
    if ("analytics_storage" in state || "ad_storage" in state) {
      return {
        analytics_storage: grantedOf(state.analytics_storage) ? "granted" : "denied",
        ad_storage: grantedOf(state.ad_storage) ? "granted" : "denied"
      };
    }
    if ("analytics" in state || "marketing" in state) {
      return {
        analytics_storage: state.analytics === true ? "granted" : "denied",
        ad_storage: state.marketing === true ? "granted" : "denied"
      };
    }
    return null;
  }

  function shopifyConsent() {
    try {
      var privacy = window.Shopify && window.Shopify.customerPrivacy;
      if (!privacy || typeof privacy.analyticsProcessingAllowed !== "function") { return null; }
      return normalise({
        analytics: !!privacy.analyticsProcessingAllowed(),
        marketing: typeof privacy.marketingAllowed === "function" && !!privacy.marketingAllowed()
      });
    } catch (e) { return null; }
  }

  // The latest gtag("consent", "default" | "update", {...}) pushed to the dataLayer.
  function googleConsent() {
    var layer = window.dataLayer;
    if (!layer || !layer.length) { return null; }
    var state = null;
    for (var i = 0; i < layer.length; i++) {
      var entry = layer[i];
      if (entry && entry[0] === "consent" && entry[2] && typeof entry[2] === "object") {
        state = state || {};
        if ("analytics_storage" in entry[2]) { state.analytics_storage = entry[2].analytics_storage; }
        if ("ad_storage" in entry[2]) { state.ad_storage = entry[2].ad_storage; }
      }
    }
    return state ? normalise(state) : null;
  }

  function currentConsent() {
    return explicitConsent || shopifyConsent() || googleConsent();
  }

  function analyticsAllowed() {
    var state = currentConsent();
    if (state) { return state.analytics_storage === "granted"; }
    return !consentRequired;
  }

  function randomId() {
    if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  function visitorId() {
    if (!analyticsAllowed()) { return null; }
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
      // Storage is written only with consent.
      if (analyticsAllowed()) { window.sessionStorage.setItem("skeldir_session", "1"); }
    } catch (e) { started = false; }
    return !started || external || campaign.test(window.location.search);
  }

  function send(extra) {
    if (!analyticsAllowed()) { return; }
    var touchpoint = {
      id: randomId(),
      visitor_id: visitorId(),
      occurred_at: new Date().toISOString(),
      url: window.location.href,
      referrer: document.referrer || null
    };
    var state = currentConsent();
    if (state) { touchpoint.consent = state; }
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

  // Called by the shop's consent banner; a grant given after the page loaded records its entry.
  function consent(state) {
    explicitConsent = normalise(state);
    if (pendingEntry && analyticsAllowed()) { pendingEntry = false; send({}); }
  }

  window.skeldir = {visitorId: visitorId, link: link, consent: consent};
  document.addEventListener("visitorConsentCollected", function () {
    if (pendingEntry && analyticsAllowed()) { pendingEntry = false; send({}); }
  });
  if (isEntry()) {
    if (analyticsAllowed()) { send({}); } else { pendingEntry = true; }
  }
})();
