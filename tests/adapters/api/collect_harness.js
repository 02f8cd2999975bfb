// Runs collect.js in a bare page stand-in and prints what it sent and stored, as JSON.
// Usage: node collect_harness.js SNIPPET SCENARIO_JSON
const fs = require("fs");
const [snippetPath, scenarioJson] = process.argv.slice(2);
const scenario = JSON.parse(scenarioJson);
const stored = {};
const sent = [];
const listeners = {};
const storage = (bucket) => ({
  getItem: (k) => (k in bucket ? bucket[k] : null),
  setItem: (k, v) => { bucket[k] = String(v); },
});
const window = {
  location: {href: "https://shop.example/?utm_source=google&gclid=G-1", host: "shop.example",
             search: "?utm_source=google&gclid=G-1"},
  localStorage: storage(stored),
  sessionStorage: storage(stored),
  crypto: {randomUUID: () => "uuid-" + (sent.length + Object.keys(stored).length)},
  fetch: (url, options) => { sent.push(JSON.parse(options.body)); return Promise.resolve(); },
  dataLayer: scenario.dataLayer,
  Shopify: scenario.shopify ? {customerPrivacy: {
    analyticsProcessingAllowed: () => scenario.shopify.analytics,
    marketingAllowed: () => scenario.shopify.marketing}} : undefined,
};
const document = {
  currentScript: {src: "https://skeldir.example/collect.js",
                  dataset: Object.assign({key: "skd_x"}, scenario.dataset || {})},
  referrer: "",
  addEventListener: (name, fn) => { listeners[name] = fn; },
};
new Function("window", "document", "URL", fs.readFileSync(snippetPath, "utf8"))(
  window, document, URL);
if (scenario.later) { window.skeldir.consent(scenario.later); }
process.stdout.write(JSON.stringify({sent, stored}));
