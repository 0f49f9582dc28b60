// Event conformance of xapid with the unchanged npm `xen-api` client (Xen
// Orchestra's connector): its object cache, filled and kept current through
// event.inject + event.from, must stay exactly equal to get_all_records while
// a second client makes many changes at full speed; callAsync must report the
// task's result through events.
//
// Usage: node xenapi_events.mjs URL USER PASSWORD [CHANGES] [TRANSPORT]
// CHANGES defaults to 10000 (creates, modifications and deletions of networks).

import { createClient } from 'xen-api'
import { cacheDiff, cachedOfType } from './cachecmp.mjs'

const [url, user, password, changesArg = '10000', transport = 'json-rpc'] = process.argv.slice(2)
if (password === undefined) {
  console.error('usage: node xenapi_events.mjs URL USER PASSWORD [CHANGES] [TRANSPORT]')
  process.exit(2)
}
const totalChanges = Number(changesArg)

class CheckFailed extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg)
}
const ok = (name, detail = '') => console.log(`ok   [${transport}] ${name}${detail ? ' - ' + detail : ''}`)

const client = watchEvents =>
  createClient({ url, auth: { user, password }, allowUnauthorized: true, transport, watchEvents, syncStackTraces: true })

// run fn over items with a bounded number of calls in flight
async function pool(items, width, fn) {
  let next = 0
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++
        await fn(items[i], i)
      }
    })
  )
}

// compare fails the check when the cache differs from the server's records.
function compare(type, cached, truth) {
  const problems = cacheDiff(type, cached, truth)
  check(problems.length === 0, `${problems.length} differences: ${problems.slice(0, 5).join('; ')}`)
}

let step = 'connect'
const watcher = client(['pool', 'network', 'task', 'host', 'VM'])
const writer = client(false)
try {
  await watcher.connect()
  await writer.connect()
  await watcher.objectsFetched
  ok('connect and initial fetch', `${Object.keys(watcher.objects.all).length} objects`)

  step = 'initial cache equals get_all_records'
  for (const type of ['pool', 'host', 'VM', 'network']) {
    compare(type, cachedOfType(watcher, type), await writer.call(`${type}.get_all_records`))
  }
  ok(step)

  step = 'changes'
  const creates = Math.floor(totalChanges / 4)
  const mods = totalChanges - 2 * creates
  const refs = []
  const t0 = Date.now()
  await pool(Array.from({ length: creates }, (_, i) => i), 32, async i => {
    refs[i] = await writer.call('network.create', {
      name_label: `net-${i}`,
      name_description: 'events conformance',
      other_config: { i: String(i) },
      MTU: 1500,
      tags: [],
    })
  })
  await pool(Array.from({ length: mods }, (_, i) => i), 32, async i => {
    const ref = refs[i % creates]
    if (i % 2 === 0) await writer.call('network.set_name_label', ref, `net-${i % creates}-renamed-${i}`)
    else await writer.call('network.add_to_other_config', ref, `k${i}`, String(i))
  })
  await pool(Array.from({ length: creates }, (_, i) => i), 32, async i => {
    if (i % 2 === 0) await writer.call('network.destroy', refs[i])
    else await writer.call('network.set_name_description', refs[i], `kept ${i}`)
  })
  const secs = (Date.now() - t0) / 1000
  ok(step, `${totalChanges} changes in ${secs.toFixed(1)} s (${Math.round(totalChanges / secs)}/s)`)

  step = 'cache equals get_all_records after barrier'
  await watcher.barrier()
  for (const type of ['pool', 'network']) {
    compare(type, cachedOfType(watcher, type), await writer.call(`${type}.get_all_records`))
  }
  ok(step, `${Object.keys(cachedOfType(watcher, 'network')).length} networks`)

  step = 'callAsync'
  const created = await watcher.callAsync('network.create', {
    name_label: 'async-net',
    name_description: '',
    other_config: {},
    MTU: 1500,
    tags: [],
  })
  check(typeof created === 'string' && created.startsWith('OpaqueRef:'), `callAsync result ${created}`)
  const rec = await watcher.barrier(created)
  check(rec !== undefined && rec.name_label === 'async-net', 'async-created network not in the cache')
  ok(step, created)

  step = 'callAsync failure'
  let failed
  try {
    await watcher.callAsync('network.destroy', 'OpaqueRef:no-such-network')
  } catch (error) {
    failed = error
  }
  check(failed !== undefined && failed.code === 'HANDLE_INVALID', `expected HANDLE_INVALID, got ${failed}`)
  ok(step)
  console.log(`xen-api events conformance: all checks passed (${transport})`)
} catch (error) {
  console.error(`FAIL [${transport}] ${step}: ${error instanceof CheckFailed ? error.message : error?.stack ?? error}`)
  process.exitCode = 1
} finally {
  await Promise.allSettled([watcher.disconnect(), writer.disconnect()])
}
