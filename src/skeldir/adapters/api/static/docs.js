/*
 * Skeldir API reference: renders the operations of /openapi.json and lets a reader try the GET
 * ones with an API key. Self-contained (no CDN): the project loads nothing from outside at run
 * time. Everything a response holds is shown with textContent, never parsed as HTML.
 */
(function () {
  "use strict";
  var root = document.getElementById("operations");
  var keyInput = document.getElementById("api-key");
  keyInput.value = sessionStorage.getItem("skeldir_docs_key") || "";
  document.getElementById("key-form").addEventListener("submit", function (event) {
    event.preventDefault();
  });
  keyInput.addEventListener("change", function () {
    sessionStorage.setItem("skeldir_docs_key", keyInput.value.trim());
  });

  function el(tag, text, className) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    if (className) { node.className = className; }
    return node;
  }

  function resolve(spec, schema, depth) {
    if (!schema || depth > 6) { return schema; }
    if (schema.$ref) {
      var name = schema.$ref.split("/").pop();
      return resolve(spec, spec.components.schemas[name], depth + 1);
    }
    var copy = {};
    Object.keys(schema).forEach(function (k) {
      var v = schema[k];
      if (k === "properties") {
        copy[k] = {};
        Object.keys(v).forEach(function (p) { copy[k][p] = resolve(spec, v[p], depth + 1); });
      } else if (k === "items" || k === "additionalProperties") {
        copy[k] = typeof v === "object" ? resolve(spec, v, depth + 1) : v;
      } else if (k === "anyOf" || k === "allOf" || k === "oneOf") {
        copy[k] = v.map(function (s) { return resolve(spec, s, depth + 1); });
      } else { copy[k] = v; }
    });
    return copy;
  }

  function typeOf(schema) {
    if (!schema) { return ""; }
    if (schema.anyOf) { return schema.anyOf.map(typeOf).join(" | "); }
    if (schema.enum) { return schema.enum.join(" | "); }
    return (schema.type || "") + (schema.format ? " (" + schema.format + ")" : "");
  }

  function parameters(spec, op) {
    var table = el("table");
    var head = el("tr");
    ["name", "in", "type", "description"].forEach(function (h) { head.appendChild(el("th", h)); });
    table.appendChild(head);
    var inputs = {};
    (op.parameters || []).forEach(function (p) {
      var row = el("tr");
      var name = el("td");
      name.appendChild(el("code", p.name + (p.required ? " *" : "")));
      row.appendChild(name);
      row.appendChild(el("td", p.in));
      row.appendChild(el("td", typeOf(resolve(spec, p.schema, 0))));
      var description = el("td", p.description || "");
      var input = el("input");
      input.placeholder = p.name;
      if (p.schema && p.schema.default !== undefined) { input.placeholder += " = " + p.schema.default; }
      description.appendChild(input);
      inputs[p.name] = { param: p, input: input };
      row.appendChild(description);
      table.appendChild(row);
    });
    return { table: table, inputs: inputs };
  }

  function responses(spec, op) {
    var list = el("div");
    Object.keys(op.responses || {}).forEach(function (status) {
      var response = op.responses[status];
      var details = el("details");
      var media = Object.keys(response.content || {});
      details.appendChild(el("summary", status + " " + (response.description || "") +
        (media.length ? "  [" + media.join(", ") + "]" : "")));
      media.forEach(function (type) {
        var schema = response.content[type].schema;
        if (schema) { details.appendChild(el("pre", JSON.stringify(resolve(spec, schema, 0), null, 2))); }
      });
      list.appendChild(details);
    });
    return list;
  }

  function trier(path, inputs) {
    var box = el("div", null, "try");
    var button = el("button", "Send");
    var output = el("pre");
    button.addEventListener("click", function () {
      var url = path;
      var query = new URLSearchParams();
      Object.keys(inputs).forEach(function (name) {
        var value = inputs[name].input.value.trim();
        if (!value) { return; }
        if (inputs[name].param.in === "path") {
          url = url.replace("{" + name + "}", encodeURIComponent(value));
        } else { query.append(name, value); }
      });
      if (query.toString()) { url += "?" + query.toString(); }
      var headers = keyInput.value.trim() ? { Authorization: "Bearer " + keyInput.value.trim() } : {};
      output.textContent = "GET " + url + " …";
      fetch(url, { headers: headers }).then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (type.indexOf("json") >= 0) {
          return response.json().then(function (body) {
            output.textContent = response.status + " " + type + "\n" + JSON.stringify(body, null, 2);
          });
        }
        return response.blob().then(function (blob) {
          output.textContent = response.status + " " + type + ", " + blob.size + " bytes ";
          var link = el("a", "download");
          link.href = URL.createObjectURL(blob);
          link.download = url.split("?")[0].split("/").pop();
          output.appendChild(link);
        });
      }).catch(function (error) { output.textContent = String(error); });
    });
    box.appendChild(button);
    box.appendChild(output);
    return box;
  }

  function render(spec) {
    document.getElementById("title").textContent = spec.info.title + " " + spec.info.version;
    Object.keys(spec.paths).sort().forEach(function (path) {
      Object.keys(spec.paths[path]).forEach(function (method) {
        var op = spec.paths[path][method];
        var section = el("details", null, "operation");
        var summary = el("summary");
        summary.appendChild(el("span", method.toUpperCase(), "method " + method));
        summary.appendChild(el("code", path));
        summary.appendChild(el("span", op.summary || "", "summary"));
        section.appendChild(summary);
        if (op.description) { section.appendChild(el("p", op.description)); }
        var params = parameters(spec, op);
        if ((op.parameters || []).length) { section.appendChild(params.table); }
        if (op.requestBody) {
          var body = op.requestBody.content || {};
          Object.keys(body).forEach(function (type) {
            section.appendChild(el("p", "Request body (" + type + "):"));
            section.appendChild(el("pre", JSON.stringify(resolve(spec, body[type].schema, 0), null, 2)));
          });
        }
        section.appendChild(el("h4", "Responses"));
        section.appendChild(responses(spec, op));
        if (method === "get") { section.appendChild(trier(path, params.inputs)); }
        root.appendChild(section);
      });
    });
  }

  fetch("/openapi.json").then(function (r) { return r.json(); }).then(render).catch(function (e) {
    root.textContent = "Could not load /openapi.json: " + e;
  });
})();
