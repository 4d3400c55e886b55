// Parses and semantically checks Cypher statements with Neo4j's own front end, as shipped in
// @neo4j-cypher/language-support (Neo4j's grammar and its semantic analysis compiled to JS).
//
// stdin:  {"name": "statement", ...}
// stdout: [{"name", "version", "diagnostics": [{"severity", "message", "line", "column"}]}]
//         one entry per statement and Cypher version ("CYPHER 5", "CYPHER 25"); severity 1 is
//         an error, 2 a warning (deprecations included).
'use strict';
const {
  allCypherVersions,
  lintCypherQuery,
  parseParameters,
} = require('@neo4j-cypher/language-support');

const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  const statements = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const out = [];
  for (const [name, text] of Object.entries(statements)) {
    // The driver sends parameters apart from the text: declared here so that only the
    // statement itself is judged.
    const parameters = Object.fromEntries(parseParameters(text, false).map((p) => [p, null]));
    for (const version of allCypherVersions) {
      const { diagnostics } = lintCypherQuery(text, { parameters, defaultLanguage: version });
      out.push({
        name,
        version,
        diagnostics: diagnostics.map((d) => ({
          severity: d.severity,
          message: d.message,
          line: d.range.start.line + 1,
          column: d.range.start.character + 1,
        })),
      });
    }
  }
  process.stdout.write(JSON.stringify(out));
});
