// Validate AsyncAPI documents with the AsyncAPI initiative's parser: the JSON Schema of the specification and
// its ruleset. Prints each problem; exits 1 if any document has an error (warnings are printed, not fatal).
// Usage: node tools/asyncapi/validate.mjs docs/api/*.asyncapi.json
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const path of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(await readFile(path, "utf8"), { source: path });
  const errors = diagnostics.filter((d) => d.severity === 0);
  for (const d of diagnostics) {
    const kind = ["error", "warning", "info", "hint"][d.severity];
    console.log(`${path}: ${kind} ${d.code} at ${d.path.join(".") || "(root)"}: ${d.message}`);
  }
  if (!document || errors.length > 0) failed = true;
  else console.log(`${path}: valid AsyncAPI ${document.version()}`);
}
process.exit(failed ? 1 : 0);
