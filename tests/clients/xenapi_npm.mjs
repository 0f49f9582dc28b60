// Conformance checks of xapid against the unchanged npm `xen-api` client
// (Xen Orchestra's connector), once per transport.
//
// Usage: node xenapi_npm.mjs URL USER PASSWORD [TRANSPORT...]
// TRANSPORT is json-rpc, xml-rpc or auto (default: json-rpc xml-rpc).
// Prints one line per check; exits non-zero naming the failed check.

import { createClient } from 'xen-api'

const [url, user, password, ...rest] = process.argv.slice(2)
if (password === undefined) {
  console.error('usage: node xenapi_npm.mjs URL USER PASSWORD [TRANSPORT...]')
  process.exit(2)
}
const transports = rest.length > 0 ? rest : ['json-rpc', 'xml-rpc']

class CheckFailed extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg)
}
const isRef = v => typeof v === 'string' && v.startsWith('OpaqueRef:')
const isPlainObject = v => v !== null && typeof v === 'object' && !Array.isArray(v)

function checkRecords(type, records, transport) {
  check(isPlainObject(records), `${type}.get_all_records did not return an object`)
  for (const [ref, rec] of Object.entries(records)) {
    check(isRef(ref), `${type}: key ${ref} is not an OpaqueRef`)
    check(isPlainObject(rec), `${type} ${ref}: record is not an object`)
    check(typeof rec.uuid === 'string' && /^[0-9a-f-]{36}$/.test(rec.uuid), `${type} ${ref}: bad uuid ${rec.uuid}`)
    for (const [k, v] of Object.entries(rec)) {
      check(v !== undefined && v !== null, `${type} ${ref}: field ${k} is ${v}`)
    }
    check(isPlainObject(rec.other_config), `${type} ${ref}: other_config is not an object`)
  }
  return Object.keys(records).length
}

async function runTransport(transport) {
  const step = { name: 'connect' }
  const ok = (name, detail = '') => console.log(`ok   [${transport}] ${name}${detail ? ' - ' + detail : ''}`)
  const xapi = createClient({
    url,
    auth: { user, password },
    allowUnauthorized: true, // self-signed certificate on https
    transport,
    watchEvents: false,
    syncStackTraces: true,
  })
  try {
    await xapi.connect()
    check(xapi.status === 'connected', `status after connect is ${xapi.status}`)
    check(isRef(xapi.sessionId), `session id ${xapi.sessionId} is not an OpaqueRef`)
    // connect() loaded the pool and introspected the types via system.listMethods.
    check(xapi.pool !== null && isRef(xapi.pool.$ref), 'no pool after connect')
    ok('connect', `pool ${xapi.pool.$ref}`)

    step.name = 'system.listMethods'
    const methods = await xapi.call('system.listMethods')
    check(Array.isArray(methods) && methods.every(m => typeof m === 'string'), 'system.listMethods is not a string array')
    for (const m of ['session.login_with_password', 'VM.get_all_records', 'pool.get_all_records', 'event.from']) {
      check(methods.includes(m), `system.listMethods lacks ${m}`)
    }
    const types = methods.filter(m => /^[^.]+\.get_all_records$/.test(m)).map(m => m.split('.')[0])
    for (const t of ['VM', 'host', 'pool', 'SR', 'network']) {
      check(types.includes(t), `no ${t}.get_all_records in system.listMethods`)
    }
    ok('system.listMethods', `${methods.length} methods, ${types.length} types`)

    step.name = 'pool.get_all_records'
    const pools = await xapi.call('pool.get_all_records')
    check(checkRecords('pool', pools, transport) === 1, 'want exactly one pool')
    const [poolRef, pool] = Object.entries(pools)[0]
    check(poolRef === xapi.pool.$ref, 'pool ref differs from the one loaded at connect')
    check(isRef(pool.master), `pool.master ${pool.master} is not a ref`)
    ok('pool.get_all_records')

    step.name = 'host.get_all_records'
    const hosts = await xapi.call('host.get_all_records')
    checkRecords('host', hosts, transport)
    const master = hosts[pool.master]
    check(master !== undefined, 'pool.master is not among the hosts')
    check(typeof master.address === 'string' && master.address !== '', 'master has no address')
    check(typeof master.enabled === 'boolean', `host.enabled is ${typeof master.enabled}, want boolean`)
    check(Array.isArray(master.resident_VMs), 'host.resident_VMs is not an array')
    check(isPlainObject(master.software_version), 'host.software_version is not an object')
    // int64: JSON number over JSON-RPC, string over XML-RPC (untyped <value>).
    const wantInt = transport === 'xml-rpc' ? 'string' : 'number'
    check(typeof master.API_version_major === wantInt,
      `host.API_version_major is ${typeof master.API_version_major} (${master.API_version_major}), want ${wantInt}`)
    ok('host.get_all_records', `${Object.keys(hosts).length} host(s), API ${master.API_version_major}.${master.API_version_minor}`)

    step.name = 'VM.get_all_records'
    const vms = await xapi.call('VM.get_all_records')
    const n = checkRecords('VM', vms, transport)
    for (const [ref, vm] of Object.entries(vms)) {
      check(typeof vm.is_a_template === 'boolean', `VM ${ref}: is_a_template is ${typeof vm.is_a_template}`)
      check(typeof vm.power_state === 'string', `VM ${ref}: power_state is ${typeof vm.power_state}`)
      check(Array.isArray(vm.VBDs) && Array.isArray(vm.VIFs), `VM ${ref}: VBDs/VIFs not arrays`)
      check(typeof vm.memory_static_max === wantInt, `VM ${ref}: memory_static_max is ${typeof vm.memory_static_max}, want ${wantInt}`)
    }
    ok('VM.get_all_records', `${n} VMs`)

    step.name = 'get_all_records via getAllRecords'
    const wrapped = await xapi.getAllRecords('host')
    check(Array.isArray(wrapped) && wrapped.length === Object.keys(hosts).length && wrapped.every(h => h.$type === 'host'),
      'getAllRecords(host) did not wrap the records')
    ok('getAllRecords(host)')

    step.name = 'error mapping'
    const badRef = 'OpaqueRef:00000000-0000-0000-0000-00000000dead'
    let err
    try {
      await xapi.call('VM.get_record', badRef)
    } catch (e) {
      err = e
    }
    check(err !== undefined, 'VM.get_record(bad ref) succeeded')
    check(err.code === 'HANDLE_INVALID', `VM.get_record(bad ref): code ${err.code} (${err.message})`)
    check(JSON.stringify(err.params) === JSON.stringify(['VM', badRef]), `HANDLE_INVALID params ${JSON.stringify(err.params)}`)
    ok('HANDLE_INVALID mapped to XapiError')

    step.name = 'disconnect'
    await xapi.disconnect()
    check(xapi.status === 'disconnected', `status after disconnect is ${xapi.status}`)
    ok('disconnect')
  } catch (e) {
    const what = e instanceof CheckFailed ? e.message : `${e?.constructor?.name ?? 'error'}: ${e?.message ?? e}${e?.code ? ' code=' + e.code : ''}${e?.params ? ' params=' + JSON.stringify(e.params) : ''}`
    console.error(`FAIL [${transport}] ${step.name}: ${what}`)
    if (!(e instanceof CheckFailed) && e?.stack) console.error(e.stack)
    try {
      await xapi.disconnect()
    } catch {}
    return false
  }
  return true
}

let failed = 0
for (const t of transports) {
  if (!(await runTransport(t))) failed++
}
if (failed > 0) {
  console.error(`xen-api conformance: ${failed} of ${transports.length} transport(s) failed`)
  process.exit(1)
}
console.log(`xen-api conformance: all checks passed (${transports.join(', ')})`)
// The client's undici agent keeps sockets alive; do not wait for them.
process.exit(0)
