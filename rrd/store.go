package rrd

import (
	"errors"
	"slices"
	"sync"
	"time"
)

// Kind is the kind of object an RRD belongs to; it is the second field of
// /rrd_updates legend entries.
type Kind uint8

const (
	// KindVM is a virtual machine.
	KindVM Kind = iota
	// KindHost is the host answering the request.
	KindHost
	// KindSR is a storage repository.
	KindSR
)

// String returns "vm", "host" or "sr".
func (k Kind) String() string {
	switch k {
	case KindHost:
		return "host"
	case KindSR:
		return "sr"
	}
	return "vm"
}

// ErrNotFound is returned for an object that has no RRD in the Store.
var ErrNotFound = errors.New("rrd: no such RRD")

// StoreOptions configure a Store.
type StoreOptions struct {
	// VMMinMax gives new VM RRDs MIN and MAX archives (xapi's pool flag
	// create_min_max_in_new_VM_RRDs). The host RRD always has them.
	VMMinMax bool
	// Heartbeat and StaleAfter are passed to every RRD (see Options).
	Heartbeat  time.Duration
	StaleAfter time.Duration
	// Now is the clock used when no RRD has data yet; nil means time.Now.
	Now func() time.Time
}

// Store holds the RRDs of one host: the host itself, the VMs resident on
// it and SRs, keyed by uuid. It is safe for concurrent use; the intended
// pattern is one writer adding a sample per object every second while any
// number of readers render /rrd_updates and dumps. Writers and readers
// only contend on the RRD they touch.
type Store struct {
	opts StoreOptions
	host *RRD

	mu     sync.RWMutex
	vms    map[string]*RRD
	srs    map[string]*RRD
	sorted []string // VM uuids, sorted; nil when stale
}

// NewStore returns an empty Store.
func NewStore(o StoreOptions) *Store {
	host, _ := New(Options{Layout: DefaultLayout(true), Heartbeat: o.Heartbeat, StaleAfter: o.StaleAfter})
	return &Store{opts: o, host: host, vms: map[string]*RRD{}, srs: map[string]*RRD{}}
}

func (s *Store) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// Host returns the host RRD.
func (s *Store) Host() *RRD { return s.host }

// VM returns the RRD of a VM, creating it if needed.
func (s *Store) VM(uuid string) *RRD { return s.getOrCreate(s.vms, uuid, s.opts.VMMinMax, true) }

// SR returns the RRD of an SR, creating it if needed.
func (s *Store) SR(uuid string) *RRD { return s.getOrCreate(s.srs, uuid, false, false) }

func (s *Store) getOrCreate(m map[string]*RRD, uuid string, minMax, vm bool) *RRD {
	s.mu.RLock()
	r := m[uuid]
	s.mu.RUnlock()
	if r != nil {
		return r
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r = m[uuid]; r == nil {
		r, _ = New(Options{Layout: DefaultLayout(minMax), Heartbeat: s.opts.Heartbeat, StaleAfter: s.opts.StaleAfter})
		m[uuid] = r
		if vm {
			s.sorted = nil
		}
	}
	return r
}

// LookupVM returns the RRD of a VM if there is one.
func (s *Store) LookupVM(uuid string) (*RRD, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.vms[uuid]
	return r, ok
}

// LookupSR returns the RRD of an SR if there is one.
func (s *Store) LookupSR(uuid string) (*RRD, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.srs[uuid]
	return r, ok
}

// PutVM installs an RRD for a VM (for example one migrated from another
// host), replacing any existing one.
func (s *Store) PutVM(uuid string, r *RRD) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.vms[uuid] = r
	s.sorted = nil
}

// RemoveVM drops the RRD of a VM (it left the host) and returns it.
func (s *Store) RemoveVM(uuid string) (*RRD, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.vms[uuid]
	delete(s.vms, uuid)
	s.sorted = nil
	return r, ok
}

// RemoveSR drops the RRD of an SR.
func (s *Store) RemoveSR(uuid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.srs, uuid)
}

// VMUUIDs returns the uuids of the VMs with an RRD, sorted.
func (s *Store) VMUUIDs() []string { return slices.Clone(s.sortedVMs()) }

// sortedVMs returns the cached sorted uuid list. The slice is never
// modified once built (a change replaces it), so callers may read it
// without the lock.
func (s *Store) sortedVMs() []string {
	s.mu.RLock()
	sorted := s.sorted
	s.mu.RUnlock()
	if sorted != nil {
		return sorted
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sorted == nil {
		s.sorted = make([]string, 0, len(s.vms))
		for u := range s.vms {
			s.sorted = append(s.sorted, u)
		}
		slices.Sort(s.sorted)
	}
	return s.sorted
}

// AddHost records a host sample (see RRD.Add).
func (s *Store) AddHost(ts time.Time, values map[string]float64) bool {
	return s.host.Add(ts, values)
}

// AddVM records a VM sample, creating the VM's RRD if needed.
func (s *Store) AddVM(uuid string, ts time.Time, values map[string]float64) bool {
	return s.VM(uuid).Add(ts, values)
}

// AddSR records an SR sample, creating the SR's RRD if needed.
func (s *Store) AddSR(uuid string, ts time.Time, values map[string]float64) bool {
	return s.SR(uuid).Add(ts, values)
}

// member is one RRD selected for /rrd_updates.
type member struct {
	kind Kind
	uuid string
	rrd  *RRD
}

// selectMembers returns the RRDs a query asks for, in legend order: VMs
// (in the query's order, or sorted by uuid), then the host, then SRs.
func (s *Store) selectMembers(q UpdatesQuery, hostUUID string) []member {
	var sorted []string
	if q.VMUUIDs == nil {
		sorted = s.sortedVMs()
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []member
	if q.VMUUIDs == nil {
		out = make([]member, 0, len(sorted)+1)
		for _, u := range sorted {
			if r, ok := s.vms[u]; ok {
				out = append(out, member{KindVM, u, r})
			}
		}
	} else {
		for _, u := range q.VMUUIDs {
			if r, ok := s.vms[u]; ok && !slices.ContainsFunc(out, func(m member) bool { return m.uuid == u }) {
				out = append(out, member{KindVM, u, r})
			}
		}
	}
	if q.Host {
		out = append(out, member{KindHost, hostUUID, s.host})
	}
	for _, u := range q.SRUUIDs {
		if r, ok := s.srs[u]; ok {
			out = append(out, member{KindSR, u, r})
		}
	}
	return out
}
