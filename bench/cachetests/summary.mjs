// Prints how many of the suite's required and optional (optimal) tests
// each results file passes, as cache-tests.fyi counts them: a test whose
// dependency failed does not pass. Usage: node summary.mjs SUITE name=results.json...
import fs from 'fs'
import path from 'path'
import { pathToFileURL } from 'url'

const suite = process.argv[2]
const tests = (await import(pathToFileURL(path.join(suite, 'tests/index.mjs')))).default
const { determineTestResult, resultTypes } = await import(pathToFileURL(path.join(suite, 'test-engine/lib/results.mjs')))

for (const arg of process.argv.slice(3)) {
  const [name, file] = arg.split('=')
  const results = JSON.parse(fs.readFileSync(file, 'utf8'))
  const count = { required: [0, 0], optional: [0, 0] }
  const failed = []
  for (const s of tests) {
    for (const t of s.tests) {
      if (t.browser_only) continue
      const kind = t.kind === 'optimal' ? 'optional' : (t.kind === 'check' ? null : 'required')
      if (kind === null) continue
      const r = determineTestResult(tests, t.id, results)
      count[kind][1]++
      if (r === resultTypes.pass) count[kind][0]++
      else failed.push(`${kind}\t${t.id}\t${r[2]}`)
    }
  }
  console.log(`${name}: required ${count.required[0]}/${count.required[1]}, optional ${count.optional[0]}/${count.optional[1]}`)
  if (process.env.VERBOSE) console.log(failed.join('\n'))
}
