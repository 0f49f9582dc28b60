// Comparing npm xen-api's object cache with what the server says
// (get_all_records), shared by the event and failover conformance scripts.

// cachedOfType is the cache's objects of one type, by ref.
export function cachedOfType(xapi, type) {
  const out = {}
  for (const o of Object.values(xapi.objects.all)) {
    if (o.$type === type) out[o.$ref] = o
  }
  return out
}

// canon is the canonical form for comparing values: map entries come in any
// order (as from xapi), so object keys are sorted. xen-api's barrier() adds an
// xo:barrier:* key to pool.other_config and removes it without waiting, so
// such keys may differ for a moment; they are not data.
export function canon(value) {
  if (Array.isArray(value)) return value.map(canon)
  if (value === null || typeof value !== 'object') return value
  return Object.fromEntries(
    Object.keys(value)
      .filter(k => !k.startsWith('xo:barrier:'))
      .sort()
      .map(k => [k, canon(value[k])])
  )
}

// cacheDiff lists the differences between the cached objects of one type and
// the server's records of it (empty when they are equal).
export function cacheDiff(type, cached, truth) {
  const out = []
  const tSet = new Set(Object.keys(truth))
  const cSet = new Set(Object.keys(cached))
  for (const r of [...tSet].sort()) if (!cSet.has(r)) out.push(`${type} ${r}: missing from the cache`)
  for (const r of [...cSet].sort()) if (!tSet.has(r)) out.push(`${type} ${r}: in the cache, not on the server`)
  for (const r of [...tSet].sort()) {
    if (!cSet.has(r)) continue
    for (const [k, v] of Object.entries(truth[r])) {
      const a = JSON.stringify(canon(cached[r][k]))
      const b = JSON.stringify(canon(v))
      if (a !== b) out.push(`${type} ${r}: field ${k} cached ${a} != server ${b}`)
    }
  }
  return out
}
