// Pool master failover with the unchanged npm `xen-api` client (Xen
// Orchestra's connector), driven by tests/pool/clients_test.go
// (TestNpmXenAPIFailover): the client watches events (its object cache,
// xapi.objects) while the Go test writes through the pool, kill -9's the
// master and restarts it; the client must find the new master and, at the
// end, its cache must equal get_all_records read from the new master.
//
// What xen-api 4.7.6 does by itself, and what it cannot do:
//
//   * It follows HOST_IS_SLAVE only while opening a session (_sessionOpen:
//     session.login_with_password and pool.get_all_records, `tries: 2`, the
//     URL's hostname replaced by error.params[0]). It has no list of pool
//     members and no failover probe: 4.7.6 has no _failoverToSurvivor or
//     candidate hostnames, and no option to give it any.
//   * When the master dies, the event loop's event.from fails at the
//     transport level (socket closed, then ECONNREFUSED). _watchEvents emits
//     'eventFetchingError', logs, sleeps eventPollDelay (default 60 s) and
//     calls event.from again on the same URL, forever; only EVENTS_LOST or
//     SESSION_INVALID restart the loop, and only SESSION_INVALID (through
//     _sessionCall's retry) opens a session again, on the same dead URL.
//     Once the old master is back it is a member and answers HOST_IS_SLAVE
//     to the client's session, which the event loop does not follow either
//     (warn, sleep, retry). So with only the master's URL it never fails
//     over.
//
// The configuration this script adds (what an application such as
// xo-server must do around the library): eventPollDelay 250 ms instead of
// 60 s, and a handler on 'eventFetchingError' that disconnects, points the
// client at a pool member taken from the `address` of the host objects in
// its own cache (the library has no public URL setter, so this uses its
// private _setUrl, as its own HOST_IS_SLAVE retry does) and connects again.
// connect() then logs in there and follows HOST_IS_SLAVE to the new master
// with the library's own code; the running event loop carries on with the
// new session and its event.from token from before the kill, on the same
// Xapi object and the same object cache.
//
// Following HOST_IS_SLAVE costs xen-api 1 s: _sessionOpenRetryOptions sets
// no delay, and promise-toolbox's pRetry waits 1 s between tries by default.
// So the reconnection takes 1 s after the election, or 2 s when the first
// member tried still names the dead master (before its raft heartbeat
// timeout).
//
// With XAPI_XENAPI_NO_FAILOVER=1 (in the Go test's environment too) the
// handler is not installed: the Go test then checks that the client stays
// on the killed host, also after that host is back as a member, as
// described above.
//
// Protocol (lines on stdout / stdin):
//   out READY                      connected, initial cache equals get_all_records
//   in  WHERE                      answered at once with
//   out AT <ip> <status> <idle|failing-over> <failovers> <event errors> <last error>
//   in  KILLED <ip>                the Go test killed the master at <ip>
//   out FAILED-OVER <ip> <n>       the n-th reconnection, to the master at <ip>
//   in  CHECK <ip> <json>          writer stopped; <ip> is the master now, <json>
//                                  maps VM refs to their last name_description
//   out PASS ...                   then exit 0; any failure: FAIL ... and exit 1
//
// Usage: node xenapi_failover.mjs URL USER PASSWORD

import { createClient } from 'xen-api'
import { cacheDiff, cachedOfType } from './cachecmp.mjs'
import readline from 'node:readline'

const [url, user, password] = process.argv.slice(2)
if (password === undefined) {
  console.error('usage: node xenapi_failover.mjs URL USER PASSWORD')
  process.exit(2)
}

const TYPES = ['VM', 'host', 'pool', 'network']
const FAILOVER_BUDGET_MS = 40e3
const t0 = Date.now()
const since = () => `${((Date.now() - t0) / 1000).toFixed(2)}s`
const log = msg => console.log(`# ${since()} ${msg}`)

class CheckFailed extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg)
}

// stdin lines from the Go test, awaited one at a time
const lines = []
const waiters = []
readline.createInterface({ input: process.stdin }).on('line', line => {
  if (line === 'WHERE') {
    // which host the client is on, answered at once
    console.log(
      `AT ${xapi._url.hostname} ${xapi.status} ${failoverRunning === null ? 'idle' : 'failing-over'} ${failovers} ` +
        `${fetchErrors} ${lastFetchError}`
    )
    return
  }
  const w = waiters.shift()
  if (w !== undefined) w(line)
  else lines.push(line)
})
const nextLine = () => (lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise(resolve => waiters.push(resolve)))
async function expectLine(prefix) {
  for (;;) {
    const line = await nextLine()
    if (line.startsWith(prefix)) return line.slice(prefix.length).trim()
    log(`ignoring input ${JSON.stringify(line)}`)
  }
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const xapi = createClient({
  url,
  auth: { user, password },
  allowUnauthorized: true,
  transport: 'json-rpc',
  watchEvents: TYPES,
  syncStackTraces: true,
  eventPollDelay: 250, // default 60 s: the first retry after the kill would come a minute later
  callTimeout: 20e3,
})

// observe (do not change) which calls the library makes: a second
// event.inject means its event loop restarted with a complete refetch
// (EVENTS_LOST or SESSION_INVALID) instead of carrying on with its token
const counts = { 'event.inject': 0, 'event.from': 0, 'session.login_with_password': 0 }
{
  const call = xapi._call
  xapi._call = function (method, ...rest) {
    if (method in counts) counts[method]++
    return call.call(this, method, ...rest)
  }
}

const cached = type => cachedOfType(xapi, type)

async function compareAll() {
  const problems = []
  for (const type of TYPES) {
    problems.push(...cacheDiff(type, cached(type), await xapi.call(`${type}.get_all_records`)))
  }
  return problems
}

// --- failover: what the application has to add (see the comment at the top)

let failoverRunning = null
let failovers = 0
const firstHost = new URL(url).hostname

// the pool members' addresses, from the host objects in the cache (and the
// URL given, for before the initial fetch)
function hostAddresses() {
  const addrs = new Set([firstHost])
  for (const h of Object.values(cached('host'))) {
    if (typeof h.address === 'string' && h.address !== '') addrs.add(h.address)
  }
  return [...addrs].sort()
}

// reconnect points the client at each pool member in turn (the one it was
// on last) and connects; xen-api's connect() follows HOST_IS_SLAVE.
async function reconnect(reason, budgetMs) {
  const start = Date.now()
  const from = xapi._url.hostname
  log(`${reason} on ${from}; probing the pool members ${hostAddresses().join(' ')}`)
  for (let round = 1; Date.now() - start < budgetMs; round++) {
    const addrs = hostAddresses()
    const order = [...addrs.filter(a => a !== from), ...addrs.filter(a => a === from)]
    for (const addr of order) {
      await xapi.disconnect()
      xapi._setUrl({ ...xapi._url, hostname: addr })
      const tryStart = Date.now()
      try {
        await xapi.connect() // logs in at addr, follows HOST_IS_SLAVE (xen-api's own retry)
        log(`round ${round}: connected through ${addr}, master is ${xapi._url.hostname} (${Date.now() - start} ms)`)
        return true
      } catch (error) {
        if (round <= 3 || round % 10 === 0) {
          log(`round ${round}: ${addr} -> ${xapi._url.hostname}: ${error?.code ?? error?.message ?? error} (${Date.now() - tryStart} ms)`)
        }
      }
    }
    await sleep(200)
  }
  return false
}

function failover(reason) {
  if (failoverRunning === null) {
    failoverRunning = reconnect(reason, FAILOVER_BUDGET_MS)
      .then(ok => {
        if (!ok) {
          console.log(`FAIL no master found through ${hostAddresses().join(' ')} within ${FAILOVER_BUDGET_MS / 1000} s`)
          process.exit(1)
        }
        failovers++
        console.log(`FAILED-OVER ${xapi._url.hostname} ${failovers}`)
      })
      .finally(() => {
        failoverRunning = null
      })
  }
  return failoverRunning
}

// the trigger: the event loop could not fetch events (transport error, or
// HOST_IS_SLAVE from a host that is no longer the master)
const noHelp = process.env.XAPI_XENAPI_NO_FAILOVER === '1'
let fetchErrors = 0
let lastFetchError = '-'
xapi.on('eventFetchingError', error => {
  fetchErrors++
  lastFetchError = String(error?.code ?? error?.message ?? error).replace(/\s+/g, '_')
  if (!noHelp) failover(`event.from failed (${error?.code ?? error?.message ?? error})`)
})

const withTimeout = (promise, ms, what) =>
  Promise.race([promise, sleep(ms).then(() => Promise.reject(new Error(`${what}: no answer within ${ms} ms`)))])

// --- the test

let step = 'connect'
try {
  // On a loaded machine the pool may elect another master while the client
  // connects: xen-api follows one HOST_IS_SLAVE only, and its event loop
  // retries a failed event.inject on the same host without telling, so the
  // application retries through the members here too.
  for (let attempt = 1; ; attempt++) {
    try {
      if (xapi.status !== 'connected') await xapi.connect()
      await withTimeout(xapi.objectsFetched, 5e3, 'initial fetch')
      break
    } catch (error) {
      check(Date.now() - t0 < 30e3, `no connection within 30 s: ${error?.stack ?? error}`)
      await failover(`connect attempt ${attempt}: ${error?.code ?? error?.message ?? error}`)
    }
  }
  if (xapi._url.hostname !== firstHost) {
    log(`${firstHost} answered HOST_IS_SLAVE: xen-api followed it to ${xapi._url.hostname}`)
  }
  step = 'initial cache equals get_all_records'
  let problems = []
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      await withTimeout(xapi.barrier(), 10e3, 'barrier')
      problems = await compareAll()
    } catch (error) {
      problems = [`${error?.code ?? error?.message ?? error}`]
    }
    if (problems.length === 0) break
    log(`initial compare ${attempt}: ${problems.length} differences, first: ${problems[0]}`)
    if (failoverRunning !== null) await failoverRunning
    await sleep(500)
  }
  check(problems.length === 0, problems.slice(0, 10).join('\n'))
  log(`connected to ${xapi._url.hostname}: ${Object.keys(xapi.objects.all).length} objects, hosts at ${hostAddresses().join(' ')}`)
  console.log('READY')

  step = 'wait for the kill'
  const killed = await expectLine('KILLED')
  const onKilled = xapi._url.hostname === killed
  log(`the Go test killed the master (${killed}); the client is on ${xapi._url.hostname}, ${failovers} failovers so far`)

  step = 'wait for CHECK'
  const checkArgs = await expectLine('CHECK')
  const sp = checkArgs.indexOf(' ')
  const master = checkArgs.slice(0, sp)
  const expected = JSON.parse(checkArgs.slice(sp + 1))

  step = 'failed over to the new master'
  check(!onKilled || failovers >= 1, `the client never failed over (still on ${xapi._url.hostname}, status ${xapi.status})`)
  // If the pool elected yet another master since (a loaded machine), the
  // event loop meets HOST_IS_SLAVE and the client fails over again.
  for (const deadline = Date.now() + 15e3; ; ) {
    if (failoverRunning !== null) await failoverRunning
    if (xapi.status === 'connected' && xapi._url.hostname === master) break
    check(Date.now() < deadline, `client ${xapi.status} on ${xapi._url.hostname}, the master is ${master}`)
    await sleep(100)
  }

  step = 'cache equals get_all_records from the new master after barrier'
  // Only the Go writer (stopped now) changes VMs and networks; the hosts'
  // own background updates (a restarted host) may change a host record
  // between the barrier and get_all_records, and the pool may elect another
  // master meanwhile, so a difference is retried a couple of times, and
  // reported.
  let attempts = 0
  for (; attempts < 3; attempts++) {
    try {
      await withTimeout(xapi.barrier(), 10e3, 'barrier')
      problems = await compareAll()
    } catch (error) {
      problems = [`${error?.code ?? error?.message ?? error}`]
    }
    if (problems.length === 0) break
    log(`attempt ${attempts + 1}: ${problems.length} differences, first: ${problems[0]}`)
    if (failoverRunning !== null) await failoverRunning
    await sleep(500)
  }
  check(problems.length === 0, problems.slice(0, 10).join('\n'))

  step = "the writer's last values are in the cache"
  const vms = cached('VM')
  for (const [ref, desc] of Object.entries(expected)) {
    check(vms[ref] !== undefined, `VM ${ref} not in the cache`)
    check(
      vms[ref].name_description === desc,
      `VM ${ref}: cached name_description ${JSON.stringify(vms[ref].name_description)}, want ${JSON.stringify(desc)}`
    )
  }
  const sizes = TYPES.map(t => `${Object.keys(cached(t)).length} ${t}`).join(', ')
  console.log(
    `PASS failovers=${failovers} master=${xapi._url.hostname} compare_attempts=${attempts + 1} ` +
      `event.inject=${counts['event.inject']} event.from=${counts['event.from']} logins=${counts['session.login_with_password']} (${sizes})`
  )
} catch (error) {
  console.log(`FAIL ${step}: ${error instanceof CheckFailed ? error.message : (error?.stack ?? error)}`)
  process.exitCode = 1
} finally {
  await Promise.race([xapi.disconnect(), sleep(2000)])
  process.exit(process.exitCode ?? 0)
}
