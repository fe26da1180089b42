// Checks recorded answers of `patternd serve` against docs/openapi.json
// (tests/http/test_openapi.c records them):
//
//   node validate.js OPENAPI_JSON ANSWERS_NDJSON
//
// Each line of ANSWERS_NDJSON is {"method", "route", "status",
// "content_type", "headers": {lower-case name: value}, "body"} with route as
// the document names it ("/v1/patterns/{id}").  Every answer must be
// documented (its path, method and status, or "default"), carry the headers
// the document marks required (a method a documented path does not serve
// is answered with components.responses.MethodNotAllowed), and have a JSON body valid against the
// response's schema (JSON Schema 2020-12, with ajv-formats' formats).  Every
// operation of the document must have been answered at least once.  Prints
// each problem and exits 1 when there is one.  Needs the packages of
// package.json (scripts/setup.sh installs them in .tmp/openapi).
'use strict';
const fs = require('fs');
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default;

const [docPath, answersPath] = process.argv.slice(2);
const doc = JSON.parse(fs.readFileSync(docPath, 'utf8'));
const problems = [];

if (!/^3\.1\./.test(doc.openapi || '')) problems.push(`openapi: expected 3.1.x, got ${doc.openapi}`);

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

// A "#/..." reference of the document, resolved.
function deref(obj) {
  while (obj && obj.$ref) {
    const parts = obj.$ref.replace(/^#\//, '').split('/')
      .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    obj = parts.reduce((o, p) => (o === undefined ? undefined : o[p]), doc);
    if (obj === undefined) throw new Error(`unresolved reference in the document`);
  }
  return obj;
}

// Every schema of the document compiles (catches a malformed schema early).
const validators = new Map();
function validatorFor(schema) {
  if (!validators.has(schema)) {
    // The schema with the document's components beside it, so that its
    // "#/components/schemas/..." references resolve.
    validators.set(schema, ajv.compile({ ...schema, components: doc.components }));
  }
  return validators.get(schema);
}

const seen = new Set();
const lines = fs.readFileSync(answersPath, 'utf8').split('\n').filter((l) => l.trim() !== '');
for (const [i, line] of lines.entries()) {
  const a = JSON.parse(line);
  const where = `answer ${i + 1} (${a.method} ${a.route} ${a.status})`;
  const item = doc.paths[a.route];
  const op = item && item[a.method.toLowerCase()];
  let resp;
  if (op) {
    seen.add(`${a.method.toLowerCase()} ${a.route}`);
    resp = op.responses[String(a.status)] || op.responses.default;
  } else if (item && a.status === 405) {
    // A method the path does not serve: the document's 405.
    resp = doc.components.responses.MethodNotAllowed;
  } else {
    problems.push(`${where}: the document has no such operation`);
    continue;
  }
  if (!resp) {
    problems.push(`${where}: status ${a.status} is not documented`);
    continue;
  }
  const r = deref(resp);
  for (const [name, h] of Object.entries(r.headers || {})) {
    if (deref(h).required && !(name.toLowerCase() in (a.headers || {})))
      problems.push(`${where}: required header ${name} is missing`);
  }
  const type = (a.content_type || '').split(';')[0].trim();
  const media = r.content && r.content[type];
  if (!media) {
    problems.push(`${where}: content type '${type}' is not documented`);
    continue;
  }
  if (type !== 'application/json') continue;
  let body;
  try {
    body = JSON.parse(a.body);
  } catch (e) {
    problems.push(`${where}: the body is not JSON: ${e.message}`);
    continue;
  }
  const validate = validatorFor(deref(media.schema));
  if (!validate(body))
    problems.push(`${where}: ${ajv.errorsText(validate.errors)}; body: ${a.body.slice(0, 300)}`);
}

for (const [path, item] of Object.entries(doc.paths)) {
  for (const method of Object.keys(item)) {
    if (!seen.has(`${method} ${path}`))
      problems.push(`${method.toUpperCase()} ${path}: no answer recorded`);
  }
}

for (const p of problems) console.log(p);
console.log(`${lines.length} answers checked, ${problems.length} problems`);
process.exit(problems.length > 0 ? 1 : 0);
