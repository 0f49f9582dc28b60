// A VM's life cycle on xapid with the unchanged npm `xen-api` client (Xen
// Orchestra's connector): a VM made from a template (VM.clone, VM.provision,
// VM.set_is_a_template false, a VIF) is started, rebooted, suspended, resumed
// and shut down with callAsync (Async.VM.* tasks watched through events),
// then destroyed. After every step the client's object cache, kept current by
// event.from, must show the new power state once barrier() returns, and agree
// with VM.get_record. The guest agent's metrics must reach the cache too.
//
// Usage: node xenapi_vm.mjs URL USER PASSWORD [TRANSPORT]
//
// The server's simulated hypervisor takes realistic times (seconds), so the
// waits below are generous.

import { createClient } from 'xen-api'

const [url, user, password, transport = 'json-rpc'] = process.argv.slice(2)
if (password === undefined) {
  console.error('usage: node xenapi_vm.mjs URL USER PASSWORD [TRANSPORT]')
  process.exit(2)
}
const NULL = 'OpaqueRef:NULL'
const TIMEOUT_MS = 30_000

class CheckFailed extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg)
}
const ok = (name, detail = '') => console.log(`ok   [${transport}] ${name}${detail ? ' - ' + detail : ''}`)
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// waitFor polls fn until it returns a truthy value.
async function waitFor(what, fn) {
  const deadline = Date.now() + TIMEOUT_MS
  for (;;) {
    const v = await fn()
    if (v) return v
    check(Date.now() < deadline, `${what}: not seen within ${TIMEOUT_MS / 1000} s`)
    await sleep(100)
  }
}

// failureOf returns the error a call rejects with.
async function failureOf(promise) {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new CheckFailed('call succeeded; a failure was expected')
}

const xapi = createClient({ url, auth: { user, password }, allowUnauthorized: true, transport, syncStackTraces: true })

// cachedAfterBarrier returns the cached VM once every event up to now is in,
// after checking the fields that change with the power state against the
// server (not guest_metrics: the guest agent sets it on its own schedule).
async function cachedAfterBarrier(vm, powerState) {
  const cached = await xapi.barrier(vm)
  check(cached !== undefined && cached.$type === 'VM', `VM ${vm} not in the cache`)
  check(cached.power_state === powerState, `cached power_state ${cached.power_state}, want ${powerState}`)
  const rec = await xapi.call('VM.get_record', vm)
  for (const k of ['power_state', 'resident_on', 'domid', 'allowed_operations', 'current_operations']) {
    check(
      JSON.stringify(cached[k]) === JSON.stringify(rec[k]),
      `cached ${k} ${JSON.stringify(cached[k])} != server ${JSON.stringify(rec[k])}`
    )
  }
  return cached
}

function checkRunning(vm, host) {
  check(vm.resident_on === host, `resident_on ${vm.resident_on}, host ${host}`)
  check(Number(vm.domid) > 0, `domid ${vm.domid}`)
  check(vm.allowed_operations.includes('clean_shutdown'), `allowed_operations ${vm.allowed_operations}`)
  check(!vm.allowed_operations.includes('start'), `allowed_operations ${vm.allowed_operations}`)
  check(Object.keys(vm.current_operations).length === 0, `current_operations ${JSON.stringify(vm.current_operations)}`)
}

function checkStopped(vm) {
  check(vm.resident_on === NULL, `resident_on ${vm.resident_on}`)
  check(Number(vm.domid) === -1, `domid ${vm.domid}`)
  check(Object.keys(vm.current_operations).length === 0, `current_operations ${JSON.stringify(vm.current_operations)}`)
}

// powerStates records, by VM ref, every power_state the cache shows.
const powerStates = {}
// progress values of pending tasks seen in the cache, by task name_label
const taskProgress = {}
let vm, vif
let step = 'connect'
try {
  await xapi.connect()
  await xapi.objectsFetched
  ok(step, `${Object.keys(xapi.objects.all).length} objects`)

  step = 'find a template in the cache'
  const templates = Object.values(xapi.objects.all).filter(
    o => o.$type === 'VM' && o.is_a_template && !o.is_control_domain
  )
  check(templates.length > 0, 'no templates in the cache')
  const tmpl = templates.find(o => o.name_label === 'Debian Bookworm 12') ?? templates[0]
  const host = Object.values(xapi.objects.all).find(o => o.$type === 'host').$ref
  ok(step, tmpl.name_label)

  for (const action of ['add', 'update']) {
    xapi.objects.on(action, objects => {
      for (const o of Object.values(objects)) {
        if (o.$type === 'task' && o.status === 'pending') {
          const seen = (taskProgress[o.name_label] ??= [])
          if (seen.at(-1) !== o.progress) seen.push(o.progress)
        }
        if (o.$type !== 'VM') continue
        const seen = (powerStates[o.$ref] ??= [])
        if (seen.at(-1) !== o.power_state) seen.push(o.power_state)
      }
    })
  }

  step = 'VM.clone, VM.provision, VM.set_is_a_template false, VIF.create'
  vm = await xapi.callAsync('VM.clone', tmpl.$ref, `xen-api ${transport} guest`)
  check(typeof vm === 'string' && vm.startsWith('OpaqueRef:') && vm !== tmpl.$ref, `VM.clone result ${vm}`)
  await xapi.callAsync('VM.provision', vm)
  await xapi.call('VM.set_is_a_template', vm, false)
  const net = Object.values(xapi.objects.all).find(o => o.$type === 'network' && o.PIFs.length > 0)
  check(net !== undefined, 'no network with a PIF in the cache')
  vif = await xapi.call('VIF.create', {
    device: '0',
    network: net.$ref,
    VM: vm,
    MAC: '',
    MTU: 1500,
    other_config: {},
    qos_algorithm_type: '',
    qos_algorithm_params: {},
  })
  let cached = await cachedAfterBarrier(vm, 'Halted')
  check(cached.is_a_template === false, `cached is_a_template ${cached.is_a_template}`)
  check(cached.VIFs.includes(vif), `cached VIFs ${cached.VIFs}, created ${vif}`)
  check(cached.VBDs.length > 0 && !('disks' in cached.other_config), `not provisioned: VBDs ${cached.VBDs}`)
  checkStopped(cached)
  ok(step, vm)

  step = "callAsync('VM.start')"
  const started = await xapi.callAsync('VM.start', vm, false, false)
  check(started === '' || started == null, `VM.start result ${JSON.stringify(started)}`)
  cached = await cachedAfterBarrier(vm, 'Running')
  checkRunning(cached, host)
  ok(step, `domid ${cached.domid}`)

  step = 'task progress of VM.start seen through events'
  const progress = (taskProgress['Async.VM.start'] ?? []).filter(p => p > 0 && p < 1)
  check(progress.length >= 2 && progress.every((p, i) => i === 0 || p > progress[i - 1]),
    `progress of the pending Async.VM.start task in the cache: ${JSON.stringify(taskProgress['Async.VM.start'])}`)
  ok(step, progress.join(' '))

  step = 'VM.start of a running VM'
  let error = await failureOf(xapi.callAsync('VM.start', vm, false, false))
  check(error.code === 'VM_BAD_POWER_STATE', `error ${error}`)
  check(JSON.stringify(error.params) === JSON.stringify([vm, 'halted', 'running']), `params ${JSON.stringify(error.params)}`)
  ok(step, `${error.code} ${error.params.join(' ')}`)

  step = 'guest metrics in the cache'
  const gm = await waitFor('VM.guest_metrics', () => {
    const ref = xapi.getObjectByRef(vm).guest_metrics
    return ref !== NULL && xapi.getObjectByRef(ref, undefined)
  })
  check(gm.$type === 'VM_guest_metrics', `guest_metrics object type ${gm.$type}`)
  const g = await waitFor('os_version and networks', () => {
    const o = xapi.getObjectByRef(gm.$ref)
    return Object.keys(o.os_version).length > 0 && Object.keys(o.networks).length > 0 && o
  })
  check(g.live === true, `live ${g.live}`)
  ok(step, `${g.os_version.name}, networks ${JSON.stringify(g.networks)}`)

  step = "callAsync('VM.clean_reboot')"
  const domid0 = Number(cached.domid)
  await xapi.callAsync('VM.clean_reboot', vm)
  cached = await cachedAfterBarrier(vm, 'Running')
  checkRunning(cached, host)
  ok(step, `domid ${domid0} -> ${cached.domid}`)

  step = "callAsync('VM.suspend')"
  await xapi.callAsync('VM.suspend', vm)
  cached = await cachedAfterBarrier(vm, 'Suspended')
  checkStopped(cached)
  check(cached.allowed_operations.includes('resume'), `allowed_operations ${cached.allowed_operations}`)
  ok(step)

  step = "callAsync('VM.resume')"
  await xapi.callAsync('VM.resume', vm, false, false)
  cached = await cachedAfterBarrier(vm, 'Running')
  checkRunning(cached, host)
  ok(step, `domid ${cached.domid}`)

  step = "callAsync('VM.clean_shutdown')"
  await xapi.callAsync('VM.clean_shutdown', vm)
  cached = await cachedAfterBarrier(vm, 'Halted')
  checkStopped(cached)
  check(cached.allowed_operations.includes('start'), `allowed_operations ${cached.allowed_operations}`)
  check(cached.guest_metrics === NULL, `guest_metrics ${cached.guest_metrics} after shutdown`)
  error = await failureOf(xapi.callAsync('VM.clean_shutdown', vm))
  check(
    error.code === 'VM_BAD_POWER_STATE' && JSON.stringify(error.params) === JSON.stringify([vm, 'running', 'halted']),
    `clean_shutdown when halted: ${error.code} ${JSON.stringify(error.params)}`
  )
  ok(step)

  step = 'power states seen by the object cache'
  // Each change reached the cache: the transient states between are not
  // required (events coalesce), but these are the states each step ended in.
  const settled = ['Halted', 'Running', 'Suspended', 'Running', 'Halted']
  let i = 0
  const seen = powerStates[vm] ?? []
  for (const s of seen) if (s === settled[i]) i++
  check(i === settled.length, `cache showed ${seen.join(' -> ')}, want ${settled.join(' -> ')} in order`)
  ok(step, seen.join(' -> '))

  step = "callAsync('VM.destroy')"
  await xapi.callAsync('VM.destroy', vm)
  await xapi.barrier()
  check(xapi.getObjectByRef(vm, undefined) === undefined, 'destroyed VM still in the cache')
  check(xapi.getObjectByRef(vif, undefined) === undefined, "destroyed VM's VIF still in the cache")
  error = await failureOf(xapi.call('VM.get_record', vm))
  check(
    error.code === 'HANDLE_INVALID' && JSON.stringify(error.params) === JSON.stringify(['VM', vm]),
    `get_record after destroy: ${error.code} ${JSON.stringify(error.params)}`
  )
  vm = undefined
  ok(step)
  console.log(`xen-api VM life cycle: all checks passed (${transport})`)
} catch (error) {
  console.error(`FAIL [${transport}] ${step}: ${error instanceof CheckFailed ? error.message : error?.stack ?? error}`)
  process.exitCode = 1
} finally {
  if (vm !== undefined) {
    await xapi.call('VM.hard_shutdown', vm).catch(() => {})
    await xapi.call('VM.destroy', vm).catch(() => {})
  }
  await xapi.disconnect().catch(() => {})
}
